"""Progress of long operations: a tqdm bar on a terminal or in a notebook, plain lines in a log.

tqdm redraws its bar with carriage returns, and several bars at once move the cursor with escape
codes; in a log file or a pipe (``make demo > demo.log``, a CI log, ``kubectl logs``) those end
up as one unreadable line full of ``\\r`` and ``\\x1b[A``. :func:`progress_bar` therefore gives a
tqdm bar only when the stream is a terminal or a Jupyter kernel's output, and otherwise a
:class:`LineProgress` that writes one plain line now and then: ``upload: 3/12 file(s)``.
"""

from __future__ import annotations

import sys
import time

__all__ = ["LineProgress", "progress_bar"]


class LineProgress:
    """A tqdm-like counter that writes plain lines: at most one every ``interval`` seconds, and
    always the last one (on completion or close). Only the methods hubkit uses: ``update``,
    ``set_postfix``, ``close`` and the context manager."""

    def __init__(self, total: int, desc: str, unit: str, stream, interval: float = 5.0):
        self.total, self.desc, self.unit, self.stream = total, desc.strip(), unit, stream
        self.interval, self.n, self.postfix = interval, 0, {}
        self._written_at = time.monotonic()
        self._written_n = None
        self._closed = False

    def update(self, n: int = 1) -> None:
        """Count ``n`` more done; write a line if ``interval`` has passed or all are done."""
        self.n += n
        if self.n >= self.total or time.monotonic() - self._written_at >= self.interval:
            self._write()

    def set_postfix(self, refresh: bool = True, **values) -> None:
        """Add ``values`` to the end of the line (``, key value``); write it with ``refresh``."""
        self.postfix.update(values)
        if refresh:
            self._write()

    def _write(self) -> None:
        if self._written_n == (self.n, tuple(self.postfix.items())):
            return
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        self.stream.write(f"{self.desc}: {self.n}/{self.total} {self.unit}(s){extra}\n")
        self.stream.flush()
        self._written_at = time.monotonic()
        self._written_n = (self.n, tuple(self.postfix.items()))

    def close(self) -> None:
        """Write the last line (once, unless ``total`` is 0)."""
        if not self._closed:
            self._closed = True
            if self.total:
                self._write()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _interactive(stream) -> bool:
    """A terminal, or the output of a Jupyter kernel (where tqdm draws a widget)."""
    if type(stream).__module__.startswith("ipykernel"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(*, total: int, desc: str, unit: str, disable: bool = False,
                 position: int = 0, stream=None):
    """A progress counter over ``total`` items on ``stream`` (default: standard error).

    A tqdm bar (``tqdm.auto``) on a terminal or in a notebook; a :class:`LineProgress`
    elsewhere; a disabled tqdm with ``disable``. ``position`` places one of several bars.
    """
    from tqdm.auto import tqdm

    stream = sys.stderr if stream is None else stream
    if disable:
        return tqdm(total=total, disable=True)
    if _interactive(stream):
        return tqdm(total=total, desc=desc, unit=unit, position=position, leave=True,
                    dynamic_ncols=True, file=stream)
    return LineProgress(total, desc, unit, stream)
