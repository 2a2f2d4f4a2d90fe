"""JupyterHub configuration of ``hubkit hub``. Loaded with ``jupyterhub -f`` (``c`` is the
traitlets config object).

Settings come from the JSON file named by ``HUBKIT_HUB_SETTINGS`` (written by
:class:`hubkit.hub.local.LocalHub`); the secrets (the shared password, the gateway's service token)
from the environment of the hub process, never from a file.
"""

import json
import os

c = get_config()  # noqa: F821 - provided by the traitlets config loader
with open(os.environ["HUBKIT_HUB_SETTINGS"]) as f:
    settings = json.load(f)

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = settings["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.JupyterHub.db_url = "sqlite:///" + settings["db"]
c.JupyterHub.cookie_secret_file = settings["cookie_secret"]
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.ConfigurableHTTPProxy.command = [settings["proxy_cmd"]]
c.ConfigurableHTTPProxy.api_url = settings["proxy_api"]
c.ConfigurableHTTPProxy.pid_file = settings["proxy_pid"]

c.JupyterHub.authenticator_class = "jupyterhub.authenticators.shared.SharedPasswordAuthenticator"
c.SharedPasswordAuthenticator.user_password = os.environ["HUBKIT_HUB_PASSWORD"]
c.Authenticator.allowed_users = set(settings["users"])
c.Authenticator.allow_all = False

c.JupyterHub.spawner_class = settings["spawner"]
c.HubkitSpawner.home_dir_template = settings["home_template"]
c.HubkitSpawner.notebooks_dir = settings["notebooks"]
c.HubkitSpawner.log_dir = settings["user_logs"]
c.Spawner.ip = "127.0.0.1"
c.Spawner.cmd = [settings["singleuser_cmd"]]
c.Spawner.args = settings["singleuser_args"]
c.Spawner.default_url = "/lab"
c.Spawner.environment = settings["environment"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90

c.JupyterHub.services = [
    {
        "name": settings["service"],
        "url": settings["gateway_url"],
        "api_token": os.environ["HUBKIT_GATEWAY_TOKEN"],
        "display": False,
    }
]
access = "access:services!service=" + settings["service"]
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", access]},
    {"name": "server", "scopes": ["users:activity!user", "access:servers!server", access]},
]
