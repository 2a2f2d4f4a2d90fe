"""Signals: SIGTERM unwinds a command like Ctrl-C, so Dask clusters close and nothing leaks.

:func:`stop_on_signals` installs the handlers for one command (``main`` restores them after it);
:func:`stopped` says what an interrupted command leaves and how to carry on.
"""

from __future__ import annotations

import logging

__all__ = ["Terminated", "stop_on_signals", "stopped"]


class Terminated(BaseException):
    """SIGTERM (``kill``, Kubernetes, systemd), raised where the main thread is, so that the
    command unwinds as on Ctrl-C: Dask clusters close, their processes and semaphores go."""


def stop_on_signals():
    """SIGTERM raises :class:`Terminated`; after a first SIGINT or SIGTERM both are caught
    and dropped, so the shutdown it started is not broken off half-way (a handler, not
    ``SIG_IGN``: a Dask worker restarted meanwhile must not inherit an ignored SIGTERM), and
    Dask's warnings about the workers it stops are not shown (``-v`` shows them). Returns a
    function restoring the handlers (``main`` is also called in-process by the tests). Main
    thread only."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def drop(_signum, _frame):
        pass

    def stop(signum, _frame):
        for s in previous:
            signal.signal(s, drop)
        if not logging.getLogger().isEnabledFor(logging.INFO):  # not -v
            logging.getLogger("distributed").setLevel(logging.CRITICAL)
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated

    for s in previous:
        if previous[s] is not signal.SIG_IGN:  # nohup: an ignored signal stays ignored
            signal.signal(s, stop)

    def restore():
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore


def stopped(args) -> str:
    """What an interrupted command leaves, and how to carry on."""
    again = "`hubkit chain run` or `hubkit chain watch`" if args.command == "chain" else \
        f"`hubkit {args.command}`"
    return f"stopped; nothing half-written is visible in the store, and {again} carries on"
