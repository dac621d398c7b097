"""Warnings as the CLI prints them: one line, ``warning: <message>``, never Python's ``file:line: Category``.

relabel's own warnings (relabel.models.featurizers.ModelWarning) name the classes by their labels and say what to
do; a library's warning (scikit-learn's ConvergenceWarning, ...) keeps its category name in front, since its
message alone may not say where it comes from. Each distinct warning is printed once per command.
"""
from __future__ import annotations

import sys
import warnings

_OURS = ("ModelWarning",)


def one_line(message, category) -> str:
    text = " ".join(str(message).split())
    name = getattr(category, "__name__", "Warning")
    return f"warning: {text}" if name in _OURS else f"warning ({name}): {text}"


def install() -> None:
    """Print every warning of this process as one line on stderr (the CLI calls it once per command)."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = one_line(message, category)
        if text not in seen:
            seen.add(text)
            print(text, file=file or sys.stderr, flush=True)

    warnings.showwarning = show
