"""Run `relabel` commands as real processes that a test can SIGKILL, started in milliseconds.

A fresh Python needs ~3-10 s on this machine to import relabel, the Label Studio SDK and scikit-learn; a fault
suite that kills dozens of runs cannot pay that each time. So runs are forked from a forkserver (stdlib
multiprocessing) that imported all of it once. Each run is still a separate process with its own pid, its own
SQLite connections and sockets, killed with a real SIGKILL.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

_PRELOAD = ["relabel.cli", "relabel.loop.rounds", "relabel.models.fit", "relabel.models.featurizers", "relabel.report.page",
            "connectors.label_studio", "sklearn.linear_model", "sklearn.model_selection",
            "sklearn.feature_extraction.text", "fault_runs"]
_context = None


def _ctx():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(_PRELOAD)
    return _context


def _child(workdir: str, args: list[str], env: dict[str, str], out: str) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.chdir(workdir)
    os.environ.update(env)
    from relabel.cli import cli
    try:
        cli(args, obj={}, prog_name="relabel")
    except SystemExit as exc:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.code if isinstance(exc.code, int) else 1)
    os._exit(0)


class Run:
    """One `relabel ARGS` process in ``workdir``: ``start()``, ``kill()``, ``wait()`` -> exit code, ``output``."""

    _n = 0

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None):
        Run._n += 1
        self.workdir, self.args = Path(workdir), list(args)
        self.out = self.workdir / f"run-{os.getpid()}-{Run._n}.out"
        self.env = {**os.environ, **(env or {})}   # the key, PATH, ... as the test sees them now
        self.process = None
        self.killed_at: float | None = None

    def start(self) -> "Run":
        self.process = _ctx().Process(target=_child, args=(str(self.workdir), self.args, self.env, str(self.out)),
                                      daemon=True)
        self.process.start()
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        if self.killed_at is None:
            self.killed_at = time.monotonic()
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float = 240) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.kill()
            self.process.join(10)
            raise AssertionError(f"relabel {' '.join(self.args)} did not finish in {timeout} s:\n{self.output}")
        return self.process.exitcode

    @property
    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""
