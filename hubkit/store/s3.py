"""S3 for the store: options from the environment, bounded waits, and one clear error.

A sick endpoint (one that accepts connections and never answers, or resets them) must fail a
command in seconds with a :class:`~hubkit.errors.StoreError` that says which endpoint, what
timed out and how to wait longer, not hang for minutes or end in a botocore traceback. s3fs
retries a failed request itself and botocore retries again underneath (up to 5 x 5 tries of
15 s by default); here botocore makes ``attempts`` tries (``total_max_attempts``), each
bounded by the connect and read timeouts of ``botocore.config.Config``
(https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html), and the
store's own file system makes no s3fs retries on top. The file systems Zarr opens itself to
read chunks lazily (from the same storage options) keep s3fs's retry loop of 5.

==========================  ==========================  =======  ============================
environment variable        ``hubkit`` option           default  meaning
==========================  ==========================  =======  ============================
``HUBKIT_S3_CONNECT_TIMEOUT``  ``--s3-connect-timeout``  5        seconds to open a connection
``HUBKIT_S3_READ_TIMEOUT``     ``--s3-read-timeout``     10       seconds to wait for an answer
``HUBKIT_S3_ATTEMPTS``         ``--s3-attempts``         3        tries per request
==========================  ==========================  =======  ============================

A request to an endpoint that never answers thus fails after about ``attempts x read_timeout``
seconds (30 s by default) plus botocore's back-off between tries (under a second each).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from dataclasses import dataclass

from hubkit.errors import StoreError

__all__ = ["S3Limits", "GuardedFileSystem", "s3_options_from_env", "translate_error"]

log = logging.getLogger(__name__)

_ENV = {"connect_timeout": "HUBKIT_S3_CONNECT_TIMEOUT", "read_timeout": "HUBKIT_S3_READ_TIMEOUT",
        "attempts": "HUBKIT_S3_ATTEMPTS"}
_FLAGS = {"connect_timeout": "--s3-connect-timeout", "read_timeout": "--s3-read-timeout",
          "attempts": "--s3-attempts"}


@dataclass(frozen=True)
class S3Limits:
    """How long the store waits for an S3 endpoint, and how often it tries.

    Parameters
    ----------
    connect_timeout : float
        To open a connection. [s]
    read_timeout : float
        To wait for (each part of) an answer once the request is sent. [s]
    attempts : int
        Tries per request, the first included (s3fs retries; botocore does not).
    """

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    attempts: int = 3

    def __post_init__(self):
        for name in ("connect_timeout", "read_timeout", "attempts"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0) or (
                    name == "attempts" and int(value) != value):
                raise StoreError(
                    f"S3 {name.replace('_', ' ')} {value!r}: expected a positive "
                    f"{'whole number' if name == 'attempts' else 'number of seconds'} "
                    f"({_ENV[name]} or {_FLAGS[name]})"
                )

    @classmethod
    def from_env(cls, environ=None, **overrides) -> S3Limits:
        """Defaults, then ``HUBKIT_S3_*`` from ``environ`` (default ``os.environ``), then
        ``overrides`` that are not None (e.g. command-line options)."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, var in _ENV.items():
            text = environ.get(var)
            if text and overrides.get(name) is None:
                try:
                    values[name] = int(text) if name == "attempts" else float(text)
                except ValueError:
                    raise StoreError(f"{var}={text!r}: expected a positive "
                                     f"{'whole number' if name == 'attempts' else 'number'}"
                                     ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def storage_options(self) -> dict:
        """s3fs options that apply these limits (botocore's ``Config``: they travel with the
        storage options to Dask workers and to Zarr's own file systems)."""
        return {"config_kwargs": {"connect_timeout": self.connect_timeout,
                                  "read_timeout": self.read_timeout,
                                  "retries": {"total_max_attempts": int(self.attempts)}}}


def s3_options_from_env(limits: S3Limits | None = None) -> dict:
    """s3fs options from the standard environment: endpoint and keys (``FSSPEC_S3_*``/
    ``AWS_*``), and the waiting limits (:class:`S3Limits`, ``HUBKIT_S3_*``)."""
    opts = (limits or S3Limits.from_env()).storage_options()
    endpoint = os.environ.get("FSSPEC_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["endpoint_url"] = endpoint
    key = os.environ.get("FSSPEC_S3_KEY") or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("FSSPEC_S3_SECRET") or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        opts["key"], opts["secret"] = key, secret
    return opts


def _limits_of(options: dict) -> tuple[float | None, float | None, int | None]:
    config = options.get("config_kwargs") or {}
    return (config.get("connect_timeout"), config.get("read_timeout"),
            (config.get("retries") or {}).get("total_max_attempts"))


def translate_error(exc: BaseException, url: str, options: dict) -> StoreError | None:
    """One clear :class:`StoreError` for a network failure talking to S3, or None when ``exc``
    is something else (a missing object, an existing one, a bug) to let through as it is."""
    import aiohttp
    import botocore.exceptions as bex
    from fsspec.exceptions import FSTimeoutError

    endpoint = options.get("endpoint_url") or "the AWS default endpoint"
    connect, read, attempts = _limits_of(options)
    tries = f"{attempts} attempt(s)" if attempts else "every attempt"
    if isinstance(exc, (bex.ConnectTimeoutError, aiohttp.ConnectionTimeoutError)):
        what = f"could not connect within {connect} s ({tries})"
        hint = f"{_ENV['connect_timeout']} or {_FLAGS['connect_timeout']}"
    elif isinstance(exc, (bex.ReadTimeoutError, aiohttp.ServerTimeoutError, FSTimeoutError,
                          asyncio.TimeoutError, TimeoutError)):
        what = f"timed out waiting {read} s for an answer ({tries})"
        hint = f"{_ENV['read_timeout']} or {_FLAGS['read_timeout']}"
    elif isinstance(exc, (bex.EndpointConnectionError, bex.ConnectionClosedError,
                          bex.HTTPClientError, bex.ConnectionError, aiohttp.ClientError,
                          ConnectionError)):
        what = f"connection failed ({tries}): {type(exc).__name__}: {exc}"
        hint = f"{_ENV['attempts']} or {_FLAGS['attempts']}"
    else:
        return None
    return StoreError(
        f"store {url}: the S3 endpoint {endpoint} {what}. Check that the endpoint is up and "
        f"reachable (`hubkit doctor`); on a slow one raise the limit with {hint}"
    )


class GuardedFileSystem:
    """An s3fs filesystem whose network failures arrive as one clear :class:`StoreError`.

    Every method of the wrapped filesystem is called as it is; an exception that
    :func:`translate_error` recognises is re-raised as a StoreError (chained to it). Missing
    and existing objects (FileNotFoundError, FileExistsError) pass through unchanged.
    """

    def __init__(self, fs, url: str):
        fs.retries = 1  # s3fs's own retry loop (5 tries) on top of botocore's: one try
        self._fs = fs
        self._url = url

    def __getattr__(self, name):
        if name in ("_fs", "_url"):  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        attr = getattr(self._fs, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args, **kwargs):
            try:
                return attr(*args, **kwargs)
            except Exception as exc:
                err = translate_error(exc, self._url, self._fs.storage_options)
                if err is None:
                    raise
                raise err from exc

        return call
