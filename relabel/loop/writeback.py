"""`relabel writeback`: the final labels back into the source project, so Label Studio's own exports carry them.

Choice (README "Writeback"): each source task gets a task data field ``relabel_final`` holding the item's final
label, the same one `relabel export` writes (the reviewer's where a reviewer decided, the consensus elsewhere);
items without a final label (nobody labelled them) lose the field. Why a field rather than ground-truth
annotations by a relabel user:

- exactly one relabel value per task by construction: rewriting it replaces the earlier writeback, with nothing
  to find and delete;
- an annotation would be pulled back as one more annotator's label, would count towards Label Studio's overlap and
  "completed" state, and in in-place review would look like a reviewer's answer;
- a data field shows as a Data Manager column that can be filtered and sorted, and every Label Studio export
  (JSON, CSV) carries it under ``data.relabel_final``.

Idempotent: only tasks whose field differs are written, so a second run writes nothing. Label Studio has no
bulk task update in Community, so each changed task is one request (~0.1-0.3 s); after the first writeback
only items whose final label changed are written.
"""
from __future__ import annotations

from dataclasses import dataclass

from connectors.records import Connector

from relabel.errors import ConfigError
from relabel.loop.export import export_rows
from relabel.loop.store import Store


@dataclass(frozen=True)
class WritebackSummary:
    """What a writeback changed in the source project."""

    written: int      # tasks that got the field for the first time
    updated: int      # tasks whose final label changed since the last writeback
    removed: int      # tasks that lost the field (no final label any more)
    unchanged: int
    missing: int      # items of the store that are no longer tasks of the project

    @property
    def changed(self) -> int:
        return self.written + self.updated + self.removed


def final_labels_to_write(store: Store) -> dict[str, str | list[str] | None]:
    """Item id -> the final label `relabel export` gives it (None: no final label, the field is removed). In a
    multi-label project the final set, as a list of class names (``[]``: "none apply")."""
    if store.is_multilabel:
        from relabel.loop.multilabel_export import multilabel_export_rows
        return {r["item_id"]: r["final_labels"] for r in multilabel_export_rows(store)}
    return {r["item_id"]: r["final_label"] for r in export_rows(store)}


def write_back(store: Store, connector: Connector) -> WritebackSummary:
    """Write every item's final label into its source task's ``relabel_final`` field (idempotent)."""
    write = getattr(connector, "write_task_field", None)
    if write is None:
        raise ConfigError(f"The connector {type(connector).__name__} cannot write labels back; writeback needs "
                          "the Label Studio connector.")
    labels = final_labels_to_write(store)
    counts = write(labels)
    summary = WritebackSummary(**counts)
    latest = store.latest_round()
    store.log_event("writeback", f"{summary.written} written, {summary.updated} updated, {summary.removed} "
                                 f"removed, {summary.unchanged} unchanged final labels in Label Studio",
                    round=latest["round"] if latest else None, details=counts)
    return summary
