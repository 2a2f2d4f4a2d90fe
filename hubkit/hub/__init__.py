"""The local hub: JupyterHub, Dask Gateway and a store on one machine, bound to 127.0.0.1.

``hubkit hub`` (or :func:`run_local_hub`) starts, in this order:

1. a ``dask-gateway-server`` with the local-process backend, its API and proxy on 127.0.0.1,
   authenticated by JupyterHub (``JupyterHubAuthenticator`` with a service name, so only tokens
   carrying ``access:services!service=dask-gateway`` may create clusters);
2. JupyterHub with the PyPI ``configurable-http-proxy``, ``SimpleLocalProcessSpawner`` (user
   servers run as the hub's own Unix user, each with a home directory under the hub's state
   directory), the shared-password authenticator with a generated password, and the gateway
   registered as the hub service ``dask-gateway`` (reached through the hub proxy at
   ``/services/dask-gateway``) with a generated API token.

Every user server gets ``HUBKIT_STORE`` (a local directory store shared by the users of this
hub) and the ``DASK_GATEWAY__*`` settings, so :func:`hubkit.store.open_store` and
:func:`hubkit.compute.client` find the store and the gateway without any setup; the example
notebooks are copied into each home on the first start of its server.

By default this is for one person, a workshop or the tests on a trusted machine: every user
server runs as the same Unix user, so the hub separates users' browsers and tokens, not their
files. As root there are two ways to start:

* ``system_users`` (``hubkit hub --system-users``): one Unix account per hub user (created when
  missing, marked ``hubkit hub user``; an existing account not made by hubkit is never taken
  over). Each user server runs as its user (JupyterHub's ``LocalProcessSpawner``), each Dask
  Gateway cluster too (the gateway's ``LocalBackend``); homes are private (0700), the hub's
  state (database, cookie secret, logs, configs) is readable by root only, and the secrets live
  only in the environment of the hub and the gateway, which run as root, so no user server can
  read them in ``/proc``. The store is shared through the group :data:`SHARED_GROUP`.
* ``unsafe_root`` (``hubkit hub --unsafe-root``): every user's notebook runs as root and could
  read the hub's environment (the shared password, the gateway's token) in ``/proc``; for one
  trusted person in a throw-away container only.

Without either, it refuses. The Kubernetes deployment is the Helm chart in ``helm/``.
"""

from hubkit.errors import HubError
from hubkit.hub.accounts import ACCOUNT_MARK, SHARED_GROUP, ensure_account, unreachable_folder
from hubkit.hub.local import (
    GATEWAY_SERVICE,
    LocalHub,
    copy_notebooks,
    default_state_dir,
    free_port,
    run_local_hub,
)
from hubkit.hub.logs import explain_exit, explain_spawn_failure

__all__ = [
    "ACCOUNT_MARK", "GATEWAY_SERVICE", "SHARED_GROUP", "HubError", "LocalHub", "copy_notebooks",
    "default_state_dir", "ensure_account", "explain_exit", "explain_spawn_failure", "free_port",
    "run_local_hub", "unreachable_folder",
]
