"""How the store's rows go in and out of SQLite: the connection (with IMMEDIATE transactions), bulk inserts, and
lookups chunked under SQLite's limit on bound parameters.

Part of the store (relabel/loop/store.py and its store_* siblings, the only modules that touch SQLite).
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import sqlite_utils

from relabel.errors import StoreError, preview
from relabel.loop.store_schema import MAX_SQL_PARAMS, TABLES


class Database(sqlite_utils.Database):
    """sqlite-utils' Database whose outermost ``atomic()`` begins IMMEDIATE: the write lock is taken (waiting up to
    the busy timeout) before the transaction's first read. With sqlite-utils' deferred BEGIN a transaction that
    read first and wrote second failed at once with "database is locked" (SQLITE_BUSY_SNAPSHOT, which no busy
    timeout retries) whenever another connection committed in between: the lock's heartbeat did, during the
    thousand batches of a 1M-item pull (bench_scale, issue 15)."""

    @contextlib.contextmanager
    def atomic(self):
        if self.conn.in_transaction:       # nested: sqlite-utils' savepoint
            with super().atomic():
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise


def insert_rows(db: sqlite_utils.Database, table: str, rows: list[dict]) -> None:
    if rows:
        db[table].insert_all(rows, pk=TABLES[table][1])


def insert_stream(db: sqlite_utils.Database, table: str, rows: Iterable[dict], **fixed) -> None:
    """Insert dicts row by row with one prepared statement (sqlite3's executemany over a generator): no list of
    the rows and no copy of each dict, where sqlite-utils' insert_all built each batch's parameters in Python
    (at a million items the copies of the round's score rows were GBs). ``fixed`` columns are the same for every
    row. A key that is not a column of the table is refused, as insert_all refused it."""
    columns = list(TABLES[table][0])
    known = set(columns)
    positions = [(c, fixed[c]) if c in fixed else (c, None) for c in columns]

    def values(row: dict) -> tuple:
        if not row.keys() <= known:
            raise StoreError(f"Rows for {table!r} have no column {preview(sorted(set(row) - known))}; the columns "
                             f"are {', '.join(columns)}.")
        return tuple(value if column in fixed else row.get(column) for column, value in positions)

    db.conn.executemany(f"insert into [{table}] ({', '.join(f'[{c}]' for c in columns)}) "
                        f"values ({', '.join('?' * len(columns))})", map(values, rows))


def chunks(values: list, size: int = MAX_SQL_PARAMS) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
