"""A multi-label project's rounds in the store (issue 24): per item its consensus set, per-class probabilities and
quality; per annotator and class the sensitivity and specificity. Sets are JSON arrays of class names in config
order, as annotations.label and decisions.label hold them in such a project (connectors.label_studio_common).

Part of the store (relabel/loop/store.py and its store_* siblings, the only modules that touch SQLite).
"""
from __future__ import annotations

from typing import Iterable

from relabel.errors import StoreError
from relabel.loop.store_sql import insert_rows

MULTILABEL_KIND = "multilabel"


class StoreMultilabel:
    """The multi-label records of Store (mixed into relabel.loop.store.Store, whose ``db`` and ``get_meta`` they
    use)."""

    @property
    def is_multilabel(self) -> bool:
        """True when the project's scored <Choices> takes several choices per task (recorded by bind_project)."""
        return self.get_meta("project_kind") == MULTILABEL_KIND

    def save_multilabel_round(self, round_row: dict, item_rows: list[dict], annotator_rows: list[dict],
                              class_rows: list[dict]) -> None:
        """Write a multi-label round and all its scores in one transaction, replacing an unpushed scoring of it."""
        rnd = int(round_row["round"])
        existing = self.db.execute("select status from rounds where round = ?", [rnd]).fetchone()
        if existing is not None and existing[0] == "pushed":
            raise StoreError(f"Round {rnd} was already pushed; its scores are final. Start a new round.")
        with self.db.atomic():
            for table in ("multilabel_scores", "multilabel_annotator_classes", "annotator_scores", "selections"):
                self.db.execute(f"delete from {table} where round = ?", [rnd])
            self.db["rounds"].upsert(round_row, pk="round")
            insert_rows(self.db, "multilabel_scores", [{**r, "round": rnd} for r in item_rows])
            insert_rows(self.db, "annotator_scores", [{**r, "round": rnd} for r in annotator_rows])
            insert_rows(self.db, "multilabel_annotator_classes", [{**r, "round": rnd} for r in class_rows])

    def multilabel_scores(self, round: int, item_ids: Iterable[str] | None = None) -> list[dict]:
        """A round's per-item rows, in pull order (optionally of some items only)."""
        rows = list(self.db.query("select s.* from multilabel_scores s join items i on i.item_id = s.item_id "
                                  "where s.round = ? order by i.rowid", [round]))
        if item_ids is None:
            return rows
        wanted = {str(i) for i in item_ids}
        return [r for r in rows if r["item_id"] in wanted]

    def multilabel_annotator_classes(self, round: int) -> list[dict]:
        return list(self.db.query("select * from multilabel_annotator_classes where round = ? "
                                  "order by annotator_id, rowid", [round]))
