"""dask-gateway-server configuration of ``hubkit hub``: a gateway on 127.0.0.1, authenticated by
JupyterHub. Loaded with ``dask-gateway-server -f`` (``c`` is the traitlets config object).

Settings come from the JSON file named by ``HUBKIT_GATEWAY_SETTINGS`` (written by
:class:`hubkit.hub.local.LocalHub`); the hub API URL, token and service name from the environment
(``JUPYTERHUB_*``). No secret is ever in a file.
"""

import json
import os

c = get_config()  # noqa: F821 - provided by the traitlets config loader
with open(os.environ["HUBKIT_GATEWAY_SETTINGS"]) as f:
    settings = json.load(f)

c.DaskGateway.address = settings["api"]
c.DaskGateway.backend_class = settings["backend"]
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
c.JupyterHubAuthenticator.jupyterhub_service_name = settings["service"]
c.Proxy.address = settings["proxy"]
c.Proxy.tcp_address = settings["proxy"]
c.Proxy.prefix = settings["prefix"]
c.ClusterConfig.scheduler_cmd = [settings["dask"], "scheduler"]
c.ClusterConfig.worker_cmd = [settings["dask"], "worker", "--host", "127.0.0.1"]
c.ClusterConfig.worker_cores = 1
c.ClusterConfig.worker_memory = settings["worker_memory"]
c.ClusterConfig.cluster_max_workers = settings["max_workers"]
c.ClusterConfig.idle_timeout = settings["idle_timeout"]
c.LocalBackend.clusters_directory = settings["clusters"]
c.LocalBackend.cluster_status_period = 0.5
c.LocalBackend.cluster_start_timeout = 60
