"""One writer per store: a lock held in the store's own SQLite file.

Every command that changes the store or Label Studio (pull, collect, score, push, round, and any later
writeback) runs inside ``writer_lock``; readers (status, report, export, annotators) never take it, never wait
for it, and read committed transactions only, so they never see half a round.

    with writer_lock(store, "round", wait=30) as lock:
        ...
        lock.set_round(12)           # shown to whoever is refused: "round 12 is running (pid ... since 10:02)"

Why it looks the way it does:
- The lock is a row in the table ``writer_lock`` of the store itself, so it guards exactly that file, on any
  machine that can open it, with no lock file to forget. It is taken with ``BEGIN IMMEDIATE`` (SQLite's write
  lock), so two processes can never both see "free" and both take it.
- A heartbeat thread refreshes ``heartbeat_at`` every ``HEARTBEAT_SECONDS`` on its own connection. A lock whose
  heartbeat is older than ``STALE_SECONDS``, or whose owner ran on this host under a pid that no longer exists
  (a SIGKILLed run), is taken over: a crash never leaves the store locked for more than ``STALE_SECONDS``, and on
  the same host not at all.
- Re-entrant within one thread of one process (``round`` calls ``collect``, ``pull``, ``score`` and ``push``, each
  of which takes the lock too). Another thread of the same process is another writer and is refused like one.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from relabel.errors import ConfigError, StoreError, StoreLocked

# The heartbeat refreshes the lock this often; a lock not refreshed for STALE_SECONDS belongs to a dead or
# frozen process. 15 s between beats leaves room for a machine under load (a 2-core box running scikit-learn
# can stall a thread for seconds); 60 s of silence is far beyond any such stall.
HEARTBEAT_SECONDS = 15.0
STALE_SECONDS = 60.0
# While waiting for a busy store, look again this often.
POLL_SECONDS = 0.25
# How long one attempt may wait for SQLite's own write lock (held for milliseconds by ordinary store writes).
_BUSY_TIMEOUT_MS = 10_000

_SCHEMA = ("create table if not exists writer_lock (id integer primary key check (id = 1), owner text not null, "
           "pid integer, host text, command text, round integer, started_at text, heartbeat_at text)")

_held: dict[str, "_Held"] = {}          # store file -> the lock this process holds on it
_held_guard = threading.Lock()


@dataclass
class LockOwner:
    """Who holds a store's writer lock (a row of the writer_lock table)."""

    owner: str
    pid: int | None
    host: str | None
    command: str | None
    round: int | None
    started_at: str | None
    heartbeat_at: str | None

    def describe(self) -> str:
        """'round 12 is running (pid 4242 on host x, since 10:02)'."""
        what = self.command or "another relabel command"
        if self.round is not None:
            what = f"round {self.round}" if what == "round" else f"{what} (round {self.round})"
        return f"{what} is running (pid {self.pid} on host {self.host}, since {_clock(self.started_at)})"


class WriterLock:
    """The handle ``writer_lock`` yields: tells waiting writers which round this command works on."""

    def __init__(self, held: "_Held"):
        self._held = held

    @property
    def owner(self) -> str:
        return self._held.owner

    def set_round(self, round_number: int | None) -> None:
        """Record the round this command is working on (shown to a refused second writer)."""
        self._held.run(lambda conn: conn.execute("update writer_lock set round = ? where owner = ?",
                                                 [round_number, self._held.owner]))

    @property
    def lost(self) -> bool:
        """True when another process took the lock over (this one looked dead: heartbeat stale)."""
        return self._held.lost


@contextlib.contextmanager
def writer_lock(store, command: str, *, wait: float = 0.0) -> Iterator[WriterLock]:
    """Hold the store's writer lock for ``command``; wait up to ``wait`` seconds, else raise StoreLocked.

    ``store`` is a relabel Store or the path of its file. Nested calls in the same thread re-enter.
    """
    if wait is None or wait < 0:
        raise StoreError(f"The lock wait must be a number of seconds >= 0. Got {wait!r}.")
    path = _store_file(store)
    me = threading.get_ident()
    with _held_guard:
        held = _held.get(path)
        if held is not None and held.thread == me:
            held.depth += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield WriterLock(held)
        finally:
            with _held_guard:
                held.depth -= 1
        return
    held = _acquire(path, command, wait)
    try:
        yield WriterLock(held)
    finally:
        held.release()
        with _held_guard:
            if _held.get(path) is held:
                del _held[path]


def lock_wait_seconds(seconds) -> float:
    """The validated time a writer waits for the lock (the ``--wait`` option, ``Loop(lock_wait=...)``)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0 \
            or seconds == float("inf"):
        raise ConfigError(f"The lock wait (--wait) must be a number of seconds >= 0. Got {seconds!r}.")
    return float(seconds)


def current_owner(store) -> LockOwner | None:
    """Who holds the store's writer lock right now (None when nobody does); never waits for it."""
    path = _store_file(store)
    if path.startswith(":memory:"):
        with _held_guard:
            held = _held.get(path)
        return None if held is None else LockOwner(held.owner, os.getpid(), socket.gethostname(), held.command,
                                                   None, None, None)
    conn = _connect(path)
    try:
        conn.execute(_SCHEMA)
        return _read_owner(conn)
    finally:
        conn.close()


# ---- internals ------------------------------------------------------------------------------------------
class _Held:
    """The lock as this process holds it: the owner token, a connection and the heartbeat thread."""

    def __init__(self, path: str, owner: str, command: str, conn: sqlite3.Connection | None):
        self.path, self.owner, self.command = path, owner, command
        self.thread = threading.get_ident()
        self.depth = 1
        self.lost = False
        self._conn = conn
        self._conn_guard = threading.Lock()   # the heartbeat thread and the owner share the connection
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        if conn is not None:
            self._beat = threading.Thread(target=self._heartbeat, name=f"relabel-lock-{command}", daemon=True)
            self._beat.start()

    def run(self, statement) -> int:
        if self._conn is None:
            return 1
        with self._conn_guard:
            return statement(self._conn).rowcount

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                n = self.run(lambda conn: conn.execute("update writer_lock set heartbeat_at = ? where owner = ?",
                                                       [_now(), self.owner]))
            except sqlite3.Error:
                continue     # a busy store: the next beat tries again, well within STALE_SECONDS
            if n == 0:
                self.lost = True
                return

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.run(lambda conn: conn.execute("delete from writer_lock where owner = ?", [self.owner]))
            self._conn.close()


def _acquire(path: str, command: str, wait: float) -> _Held:
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    if path.startswith(":memory:"):   # a private in-memory store: only this process can write it
        with _held_guard:
            if path in _held:
                raise StoreLocked(f"The in-memory store is in use by {_held[path].command}; try again later.")
            held = _held[path] = _Held(path, owner, command, None)
        return held
    conn = _connect(path)
    try:
        while True:
            holder = _try_take(conn, owner, command)
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise StoreLocked(f"{holder.describe()}; try again later, or pass --wait SECONDS to wait for it.")
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    except BaseException:
        conn.close()
        raise
    held = _Held(path, owner, command, conn)
    with _held_guard:
        _held[path] = held
    return held


def _try_take(conn: sqlite3.Connection, owner: str, command: str) -> LockOwner | None:
    """Take the lock if it is free or its owner is dead; otherwise return who holds it. One transaction."""
    try:
        conn.execute("begin immediate")
    except sqlite3.OperationalError as exc:   # another writer held SQLite's lock past the busy timeout
        return LockOwner("?", None, None, f"a write to the store ({exc})", None, _now(), _now())
    try:
        conn.execute(_SCHEMA)
        holder = _read_owner(conn)
        if holder is not None and not _is_dead(holder):
            conn.execute("rollback")
            return holder
        stamp = _now()
        conn.execute("insert or replace into writer_lock (id, owner, pid, host, command, round, started_at, "
                     "heartbeat_at) values (1, ?, ?, ?, ?, null, ?, ?)",
                     [owner, os.getpid(), socket.gethostname(), command, stamp, stamp])
        conn.execute("commit")
        return None
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("rollback")
        raise


def _read_owner(conn: sqlite3.Connection) -> LockOwner | None:
    row = conn.execute("select owner, pid, host, command, round, started_at, heartbeat_at from writer_lock "
                       "where id = 1").fetchone()
    return None if row is None else LockOwner(*row)


def _is_dead(holder: LockOwner) -> bool:
    """A holder is dead when its heartbeat is stale, or it ran on this host and its pid is gone."""
    beat = _parse(holder.heartbeat_at)
    if beat is None or (datetime.now(timezone.utc) - beat).total_seconds() > STALE_SECONDS:
        return True
    if holder.host == socket.gethostname() and holder.pid is not None:
        if holder.pid == os.getpid():
            # This very process holds no such lock (else it would have re-entered): a leftover of a thread that
            # died without releasing, or of an earlier process that had our pid.
            with _held_guard:
                return not any(h.owner == holder.owner for h in _held.values())
        return not _pid_alive(holder.pid)
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # alive, owned by another user
        return True
    except OSError:
        return False
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    """A SIGKILLed child not yet reaped by its parent still answers kill(pid, 0); its status is Z."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True               # no /proc (macOS): trust kill()
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: transactions are spelled out (BEGIN IMMEDIATE), nothing is opened implicitly.
    # check_same_thread=False: the heartbeat thread uses the connection too, serialised by _Held._conn_guard.
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    return conn


def _store_file(store) -> str:
    path = getattr(store, "path", store)
    if str(path) == ":memory:":
        # Every in-memory store is a private database of its own: key it by the object, not the name.
        return f":memory:{id(store)}"
    return str(Path(path).resolve())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _clock(value: str | None) -> str:
    """'10:02' for a start time today (local time), the date too for an older one."""
    moment = _parse(value)
    if moment is None:
        return "an unknown time"
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")
