"""Progress bars for the steps that can take a while (pull, embedding, cross-validation, push, collect).

    with progress.bar("Cross-validating", total=5) as bar:
        for fold in range(5):
            ...
            bar.update()

A bar draws on standard error only when standard error is a terminal and nothing asked for quiet (`relabel
--quiet`, or ``progress.set_quiet(True)``); otherwise ``bar`` hands out a bar that does nothing, so library code
calls it unconditionally and pipes, logs, CI and tests stay clean.
"""
from __future__ import annotations

import contextvars
import sys
import time
from typing import IO

# Redraw at most this often: a bar updated once per task of a 100,000-task pull must not cost a write each time.
REDRAW_SECONDS = 0.1
BAR_WIDTH = 28

_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("relabel_progress_quiet", default=False)


def set_quiet(quiet: bool) -> None:
    """Turn every progress bar off (True) or back to the terminal's say (False)."""
    _quiet.set(bool(quiet))


def enabled(stream: IO | None = None) -> bool:
    """Whether bars draw: not quiet, and the stream (default standard error) is a terminal."""
    stream = sys.stderr if stream is None else stream
    if _quiet.get():
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Bar:
    """A one-line bar: `label [#######.......]  45%  450/1000  0:12`, redrawn in place."""

    def __init__(self, label: str, total: int | None, stream: IO):
        self.label, self.total, self.stream = label, total, stream
        self.done = 0
        self._start = time.monotonic()
        self._drawn = 0.0

    def __enter__(self) -> "Bar":
        self._draw()
        return self

    def __exit__(self, *exc) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def update(self, n: int = 1) -> None:
        self.done += n
        if time.monotonic() - self._drawn >= REDRAW_SECONDS or (self.total is not None and self.done >= self.total):
            self._draw()

    def line(self) -> str:
        elapsed = int(time.monotonic() - self._start)
        clock = f"{elapsed // 60}:{elapsed % 60:02d}"
        if not self.total:
            return f"{self.label}  {self.done:,}  {clock}"
        share = min(self.done / self.total, 1.0)
        filled = int(round(share * BAR_WIDTH))
        return (f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%}  "
                f"{self.done:,}/{self.total:,}  {clock}")

    def _draw(self) -> None:
        self._drawn = time.monotonic()
        self.stream.write("\r" + self.line() + "\033[K")  # \033[K clears what a longer earlier line left
        self.stream.flush()


class _Silent:
    """The bar handed out when bars are off: every call does nothing."""

    done = 0

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None


def bar(label: str, total: int | None = None, stream: IO | None = None) -> Bar | _Silent:
    """A progress bar for ``total`` steps (None: a counter) when bars are on, else one that does nothing."""
    stream = sys.stderr if stream is None else stream
    return Bar(label, total, stream) if enabled(stream) else _Silent()
