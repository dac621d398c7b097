"""The store's writer lock (relabel/loop/lock.py) against real SQLite files and real processes."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from relabel.loop import lock as lock_module
from relabel.errors import StoreLocked
from relabel.loop.lock import current_owner, writer_lock
from relabel.loop.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _holder(db: Path, command: str = "round", round_number: int = 12) -> subprocess.Popen:
    """A separate process that takes the lock, says so on stdout, and then sleeps until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from relabel.loop.lock import writer_lock
        with writer_lock({str(db)!r}, {command!r}) as lock:
            lock.set_round({round_number})
            print("held", flush=True)
            time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "relabel.db"
    Store(path).close()
    return path


@pytest.fixture
def holder(db):
    """Another process holding the lock of ``db`` for round 12; killed afterwards whatever happened."""
    proc = _holder(db)
    yield proc
    proc.kill()
    proc.wait()


def _tamper(db: Path, sql: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_second_writer_is_refused_with_the_owners_details(db, holder):
    with pytest.raises(StoreLocked) as err:
        with writer_lock(db, "push"):
            pass
    message = str(err.value)
    assert message.startswith(f"round 12 is running (pid {holder.pid} on host ")
    assert "since " in message and "try again later" in message
    owner = current_owner(db)
    assert owner.pid == holder.pid and owner.command == "round" and owner.round == 12


def test_waiting_writer_gets_the_lock_when_the_owner_finishes(db, holder):
    threading.Timer(0.5, holder.terminate).start()   # SIGTERM: Python dies without releasing; pid gone
    started = time.monotonic()
    with writer_lock(db, "push", wait=10) as held:
        assert current_owner(db).owner == held.owner
    assert time.monotonic() - started >= 0.4
    assert current_owner(db) is None               # released on exit


def test_a_killed_owner_on_this_host_is_taken_over_at_once(db, holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with writer_lock(db, "round") as held:         # no wait needed: the pid is gone
        assert current_owner(db).owner == held.owner


def test_an_owner_with_a_stale_heartbeat_is_taken_over(db, holder):
    # alive, but on another host and silent for long
    _tamper(db, "update writer_lock set heartbeat_at = '2000-01-01T00:00:00+00:00', host = 'elsewhere'")
    with writer_lock(db, "round") as held:
        assert current_owner(db).owner == held.owner


def test_a_fresh_heartbeat_on_another_host_is_respected(db, holder):
    _tamper(db, "update writer_lock set host = 'elsewhere', pid = 1")   # we cannot check a remote pid
    with pytest.raises(StoreLocked, match="on host elsewhere"):
        with writer_lock(db, "round"):
            pass


def test_reentrant_in_one_thread_refused_in_another(db):
    refused = []
    with writer_lock(db, "round") as outer:
        with writer_lock(db, "push") as inner:     # round -> push in the same thread
            assert inner.owner == outer.owner

        def other():
            try:
                with writer_lock(db, "collect"):
                    pass
            except StoreLocked as exc:
                refused.append(str(exc))
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert current_owner(db).owner == outer.owner   # the inner exit did not release it
    assert refused and refused[0].startswith("round is running")
    assert current_owner(db) is None


def test_heartbeat_refreshes_the_lock(db, monkeypatch):
    monkeypatch.setattr(lock_module, "HEARTBEAT_SECONDS", 0.05)
    with writer_lock(db, "round"):
        _tamper(db, "update writer_lock set heartbeat_at = '2000-01-01T00:00:00+00:00'")
        time.sleep(0.3)
        assert not current_owner(db).heartbeat_at.startswith("2000")


def test_lost_lock_is_noticed(db, monkeypatch):
    monkeypatch.setattr(lock_module, "HEARTBEAT_SECONDS", 0.05)
    with writer_lock(db, "round") as held:
        _tamper(db, "update writer_lock set owner = 'someone-else'")   # as a takeover would
        time.sleep(0.3)
        assert held.lost


def test_in_memory_stores_are_independent():
    a, b = Store(":memory:"), Store(":memory:")
    with writer_lock(a, "round"), writer_lock(b, "round"):
        pass


def test_every_mutating_command_takes_the_lock_and_readers_do_not(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from relabel.cli import cli
    from relabel.config import API_KEY_ENV
    from test_rounds import FakeLabelStudio

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(API_KEY_ENV, "test-key-not-secret")
    runner, fake = CliRunner(), FakeLabelStudio()

    def run(*args):
        return runner.invoke(cli, list(args), obj={"connector": fake}, catch_exceptions=False)
    assert run("init", "--url", "http://ls.example:8080", "--project", "7", "--featurizer", "tfidf").exit_code == 0
    assert run("round", "--budget", "5").exit_code == 0
    proc = _holder(tmp_path / "relabel.db", "round", 2)
    try:
        for command in (["pull"], ["score"], ["push"], ["collect"], ["round"]):
            result = run(*command)
            assert result.exit_code == 1, command
            assert f"Error: round 2 is running (pid {proc.pid} on host" in result.output, command
            assert len(result.output.strip().splitlines()) == 1
        for command in (["status"], ["annotators"], ["export", "--format", "csv", "--out", "x.csv"]):
            assert run(*command).exit_code == 0, command
        started = time.monotonic()
        threading.Timer(0.5, proc.terminate).start()
        result = run("push", "--wait", "20")
        assert result.exit_code == 0, result.output
        assert "0 new review tasks" in result.output and time.monotonic() - started >= 0.4
    finally:
        proc.kill()
        proc.wait()
