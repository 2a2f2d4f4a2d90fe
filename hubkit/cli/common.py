"""What the commands share: the store of ``--store``, S3 limits, printable text, quiet Dask."""

from __future__ import annotations

import logging

__all__ = ["printable", "quiet_dask", "s3_limits", "store_of"]


def s3_limits(args):
    """Timeouts and attempts for S3 stores: ``HUBKIT_S3_*``, overridden by the options."""
    from hubkit.store import S3Limits

    return S3Limits.from_env(connect_timeout=args.s3_connect_timeout,
                             read_timeout=args.s3_read_timeout, attempts=args.s3_attempts)


def store_of(args, *, create: bool = False):
    """The store of ``--store`` (or ``HUBKIT_STORE``); one that does not exist is an error
    unless the command creates stores (``create``) or ``--create`` was given."""
    from hubkit.store import open_store

    return open_store(args.store, create=create or getattr(args, "create", False),
                      s3_limits=s3_limits(args))


def printable(text) -> str:
    """Text from files (names, attributes, messages quoting them) with control characters
    escaped: an ANSI sequence or a newline in a file name cannot act on the terminal."""
    from hubkit.io.sanitise import printable as escaped

    return escaped(text)


def quiet_dask(args) -> None:
    """distributed sets its loggers to INFO when imported: keep the terminal readable."""
    import distributed  # noqa: F401  (import first, so its logging set-up is done)

    if not args.verbose:
        logging.getLogger("distributed").setLevel(logging.WARNING)
