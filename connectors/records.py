"""The records every connector yields and accepts, and the interface a connector implements.

A connector speaks to one outside system (Label Studio, or files); the store and the rounds only ever see
these records, so the scoring never knows where the labels came from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Item:
    """One task of the source project: its data as the labelling tool holds it, and the text to model."""

    item_id: str
    data: dict
    text: str | None
    updated_at: str | None = None


@dataclass(frozen=True)
class AnnotationRecord:
    """One annotation. ``label`` is None when the annotation was skipped or carries no choice.

    ``valid`` is False when the choice is not a class of the labeling config: stored, never scored.
    ``kind`` is "annotation" (source project) or "review" (an answer to a relabel review task).
    ``lead_time`` is the seconds the annotator spent on it, as the labelling tool measured (None if unknown).
    """

    annotation_id: str
    item_id: str
    annotator_id: str
    label: str | None
    created_at: str | None
    updated_at: str | None
    kind: str = "annotation"
    skipped: bool = False
    valid: bool = True
    lead_time: float | None = None


@dataclass(frozen=True)
class ProjectInfo:
    """What `relabel init` prints and what scoring needs to know about the project."""

    project_id: int
    title: str
    classes: tuple[str, ...]
    label_tag: str
    text_field: str | None
    n_tasks: int
    n_annotations: int          # finished (not skipped) annotations
    label_config: str = ""
    # Skipped (cancelled) annotations, which n_annotations leaves out; and, when this project is relabel's own
    # review project, the id of the source project it reviews (relabel refuses it as a source).
    n_skipped: int = 0
    review_of: int | None = None
    # The scored <Choices> takes several choices per task (choice="multiple"): a multi-label project (issue 24).
    multi_label: bool = False


@dataclass(frozen=True)
class Pull:
    """What one pull brought back. ``all_annotation_ids`` and ``all_item_ids`` are set on a full reconcile, to
    detect deleted annotations and deleted tasks."""

    items: list[Item]
    annotations: list[AnnotationRecord]
    all_annotation_ids: set[str] | None = None
    cursor: str | None = None
    warnings: list[str] = field(default_factory=list)
    all_item_ids: set[str] | None = None


@dataclass(frozen=True)
class ReviewRequest:
    """An item relabel wants a person to look at in a round."""

    item_id: str
    round: int
    data: dict
    quality: float
    reason: str
    suggested_label: str
    # The review panel: who said what, in the order given, and the model's top classes with probabilities.
    annotators: tuple[tuple[str, str], ...] = ()
    model_top: tuple[tuple[str, float], ...] = ()
    # "label" for a label issue, or a data issue kind (relabel/scoring/data_issues.py KINDS): data-issue tasks
    # also offer the reviewer "flag the item" (bad data).
    kind: str = "label"
    # A multi-label project's suggestion: the consensus set (``suggested_label`` then only describes it).
    suggested_labels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PushedTask:
    """Where a review request landed: the project and task id in the labelling tool."""

    item_id: str
    round: int
    target_project: int
    task_id: int
    mode: str


@dataclass(frozen=True)
class ReviewAnswer:
    """An answer to a pushed task (by a reviewer or not: relabel/loop/decisions.py tells). ``label`` is None for a
    skip; ``answered_at`` is when it was last changed (Label Studio's ``updated_at``)."""

    item_id: str
    round: int
    task_id: int
    reviewer: str
    label: str | None
    answered_at: str | None
    annotation_id: str | None = None
    # The reviewer flagged the item as bad data (excluded from scoring and final labels, kept with the flag).
    flagged: bool = False


class Connector(Protocol):
    """What relabel needs from a labelling tool. Every write is idempotent: calling it twice creates nothing new."""

    def describe(self) -> ProjectInfo: ...

    def pull(self, since: str | None = None, reconcile: bool = False) -> Pull: ...

    def push(self, requests: list[ReviewRequest], *, mode: str = "project", show_suggestion: bool = True,
             preselect: bool = False, unsure_since: float | None = None) -> list[PushedTask]:
        """``unsure_since``: an earlier push started then and may have sent writes that are still landing."""

    def collect(self, pushed: list[PushedTask]) -> list[ReviewAnswer]:
        """Every answer on the pushed tasks as it stands now (edits included), not only the newest."""
        ...

    # Optional: ``review_project_exists(project_id) -> bool`` lets collect notice a review project deleted in
    # the labelling tool (relabel.loop.rounds.Loop looks it up with getattr).
