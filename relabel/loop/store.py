"""The SQLite store: relabel/loop/store.py and its store_* siblings are the only modules that touch SQLite
(through sqlite-utils, in WAL mode).

It holds what relabel pulled (items, annotations), what each round computed (scores, annotator_scores,
annotation_scores, selections), what it pushed (review_tasks), what reviewers answered (decisions), the embedding
cache, an audit log (events) and a little metadata (project id, classes, pull cursor, schema version).

Every multi-row write runs inside one transaction (``Database.atomic``), so a failure half way leaves nothing
half-written. Secrets (API keys) are never written here.

``Store`` is the one public class. It is put together from parts that each hold one subject's queries:
store_schema (tables, indexes, creation and migration), store_sql (the connection and bulk writes), store_pull
(writing a pull), store_items (reading items and annotations), store_rounds (rounds and scores), store_review
(review tasks and decisions) and store_embeddings (the embedding cache). This module keeps opening the file, the
metadata and the audit log.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from pathlib import Path
from typing import Iterator

from connectors.label_config import is_span_config
from connectors.records import ProjectInfo
from relabel.errors import StoreError
from relabel.loop.store_embeddings import StoreEmbeddings
from relabel.loop.store_items import StoreItems
from relabel.loop.store_multilabel import StoreMultilabel
from relabel.loop.store_pull import StorePull
from relabel.loop.store_review import StoreReview
from relabel.loop.store_rounds import StoreRounds
from relabel.loop.store_schema import TABLES, StoreSchema, now, refuse_unusable
from relabel.loop.store_sql import Database

_events_log = logging.getLogger("relabel.events")
# Another process (a second `relabel` command, a test) may hold the write lock for a moment: wait this many
# milliseconds before giving up with "database is locked".
_BUSY_TIMEOUT_MS = 10_000


class Store(StoreSchema, StorePull, StoreItems, StoreRounds, StoreReview, StoreEmbeddings, StoreMultilabel):
    """A relabel store for one Label Studio project.

    >>> store = Store("relabel.db")            # doctest: +SKIP
    >>> store.bind_project(info)               # refuses a store made for another project
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            if self.path.parent and not self.path.parent.exists():
                raise StoreError(f"The folder {str(self.path.parent)!r} of the store does not exist; "
                                 "create it or point the 'store' setting elsewhere.")
            if str(self.path) != ":memory:":
                refuse_unusable(self.path)
            self.db = Database(self.path)
            self.db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            if str(self.path) != ":memory:":
                self.db.enable_wal()
            self._create_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Cannot open the store {str(self.path)!r} ({exc}); is it a relabel store? "
                             "Point the 'store' setting at a new file or fix the file.") from exc

    # ---- lifecycle --------------------------------------------------------------------------------------
    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one consistent state (a WAL read transaction), whatever writers commit meanwhile."""
        if self.db.conn.in_transaction:      # already inside a transaction: it is the snapshot
            yield
            return
        self.db.execute("begin")
        try:
            yield
        finally:
            self.db.execute("rollback")       # nothing was written; ends the read transaction

    # ---- meta ---------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("select value from meta where key = ?", [key]).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str | None) -> None:
        with self.db.atomic():
            self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    @property
    def project_id(self) -> int | None:
        value = self.get_meta("project_id")
        return None if value is None else int(value)

    @property
    def classes(self) -> tuple[str, ...]:
        value = self.get_meta("classes")
        return tuple(json.loads(value)) if value else ()

    def check_project(self, project_id: int) -> None:
        """Raise StoreError when this store was made for another project."""
        mine = self.project_id
        if mine is not None and int(project_id) != mine:
            raise StoreError(f"The store {str(self.path)!r} belongs to project {mine}, not project {project_id}; "
                             "use another 'store' path for this project.")

    def bind_project(self, info: ProjectInfo) -> None:
        """Record the project this store is for (its id, classes, label tag); refuse a different project."""
        self.check_project(info.project_id)
        self._check_kind(info)
        with self.db.atomic():
            for key, value in (("project_id", str(info.project_id)), ("project_title", info.title),
                               ("classes", json.dumps(list(info.classes))), ("label_tag", info.label_tag),
                               ("text_field", info.text_field),
                               # multi-label and span projects take their own round (relabel/loop/
                               # multilabel_round.py, span_round.py)
                               ("project_kind", _kind(info))):
                self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    def _check_kind(self, info: ProjectInfo) -> None:
        """Refuse a labeling config switched between one class and a set of classes per task since this store
        holds labels: its stored labels are of the other kind (a class name vs a set, relabel/loop/store_multilabel)."""
        kind = _kind(info)
        had = self.get_meta("project_kind")
        if had is None or had == kind or not (self.count("annotations") or self.count("span_annotations")):
            return
        said = {"multilabel": 'several choices per task (choice="multiple")', "classification": "one choice per task",
                "spans": "spans (<Labels>)"}
        raise StoreError(f"Project {info.project_id}'s labeling config ({info.label_tag!r}) now takes {said[kind]}, "
                         f"but the store {str(self.path)!r} holds labels made with {said.get(had, had)}; point the "
                         "'store' setting at a new file and run `relabel init` again.")

    # ---- events (audit log) -----------------------------------------------------------------------------
    def log_event(self, step: str, message: str, round: int | None = None, details: dict | None = None) -> None:
        """Append one line to the audit log (and to the "relabel.events" logger, which `relabel -v` shows).
        Never pass secrets in ``details``."""
        _events_log.info("%s%s: %s", f"round {round} " if round is not None else "", step, message)
        with self.db.atomic():
            self.db["events"].insert({"at": now(), "round": round, "step": step, "message": message,
                                      "details": json.dumps(details) if details else None})

    def events(self, step: str | None = None) -> list[dict]:
        where, params = ("where step = ?", [step]) if step else ("", [])
        return list(self.db.query(f"select * from events {where} order by id", params))

    def count(self, table: str, where: str = "", params: list | None = None) -> int:
        if table not in TABLES:
            raise StoreError(f"No table {table!r} in the store.")
        sql = f"select count(*) from {table}" + (f" where {where}" if where else "")
        return int(self.db.execute(sql, params or []).fetchone()[0])


def _kind(info: ProjectInfo) -> str:
    """The store's project kind for a project: spans (<Labels> on a text), multilabel or classification."""
    if is_span_config(getattr(info, "label_config", "") or ""):
        return "spans"
    return "multilabel" if getattr(info, "multi_label", False) else "classification"
