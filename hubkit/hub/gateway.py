"""The Dask Gateway backend of the local hub with one Unix account per user (imported by
``dask-gateway-server`` with the configuration of ``hubkit hub --system-users``).

:class:`AccountBackend` is dask-gateway-server's ``LocalBackend`` (each cluster's scheduler and
workers run as the Unix account of the cluster's user, in a working folder of its own) with one
repair: in dask-gateway-server 2026.3, ``LocalBackend.setup_working_directory`` adds the TLS
certificate and key paths to the list it hands to ``set_file_permissions`` with
``list.extend``, one character at a time, so the first cluster fails with
``FileNotFoundError: 't'`` (the last character of the folder name) and the key stays root's.
Here the whole working folder (certificates and logs included) is given to the user instead.
"""

from __future__ import annotations

import os
import pwd

from dask_gateway_server.backends.local import LocalBackend

__all__ = ["AccountBackend"]


class AccountBackend(LocalBackend):
    """``LocalBackend`` that gives each cluster's whole working folder to its user."""

    def set_file_permissions(self, paths, username):
        """Give the working folder (``paths[0]``) and all it holds to ``username``."""
        account = pwd.getpwnam(username)
        # the working folder comes first; the other entries are inside it (or broken)
        top = paths[0]
        os.lchown(top, account.pw_uid, account.pw_gid)
        for folder, dirs, files in os.walk(top):
            for name in dirs + files:
                os.lchown(os.path.join(folder, name), account.pw_uid, account.pw_gid)
