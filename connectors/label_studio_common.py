"""How relabel reads and writes Label Studio's task JSON, shared by every part of the connector: times and user
ids as Label Studio writes them, an annotation's choice, a round's prediction (its ``model_version``), the review
project's description marker, and the progress helper the connector's loops use.

Plain functions of JSON values; this module imports no other part of the connector.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone

from relabel.errors import InputError, preview

from connectors.label_config import LabelConfig
from connectors.records import ReviewRequest

# The review project's description carries this marker, so it is found again whatever its title became.
REVIEW_MARKER = "relabel:review-of-project="


def model_version(round_number: int) -> str:
    """The model_version of a round's predictions.

    The trailing ';' keeps a substring match for round 3 ("contains" is the only model-version filter Label
    Studio offers) from also matching round 30.
    """
    return f"relabel-round-{round_number};"


def review_of(description: str | None) -> int | None:
    """The source project id in a relabel review project's description marker, else None."""
    for word in (description or "").split():
        if word.startswith(REVIEW_MARKER) and word[len(REVIEW_MARKER):].isdigit():
            return int(word[len(REVIEW_MARKER):])
    return None


def advancing(values, bar):
    """Yield ``values``, advancing ``bar`` (a relabel.progress bar, silent off a terminal) once per value."""
    with bar:
        for value in values:
            yield value
            bar.update()


def readable_task(task) -> bool:
    """A task as relabel reads it: an object with an integer id, a data object, and annotations that have ids."""
    if not isinstance(task, dict) or not isinstance(task.get("id"), int):
        return False
    annotations = task.get("annotations") or []
    return isinstance(task.get("data") or {}, dict) and isinstance(annotations, list) and \
        all(isinstance(a, dict) and a.get("id") is not None for a in annotations)


def normalise_time(value: str) -> str:
    """An ISO 8601 time as Label Studio writes and filters it: UTC with microseconds and a Z.

    The Data Manager's datetime filter answers 500 to any other format, and the same form lets the cursor be
    compared with updated_at values as plain strings.
    """
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"The pull cursor must be an ISO 8601 time like 2024-05-01T12:00:00.000000Z. "
                         f"Got {value!r}.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # Label Studio's times are UTC
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seconds(value) -> float | None:
    """Label Studio's ``lead_time`` (seconds spent on the annotation) as a float; None when absent or not a
    non-negative finite number (old annotations and API-made ones have none)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def user_id(completed_by) -> int | None:
    """An annotation's author id: ``completed_by`` is an id in lists and exports but a dict from a single-task GET."""
    if isinstance(completed_by, dict):
        return completed_by.get("id")
    return completed_by


def choice_of(annotation: dict, config: LabelConfig) -> tuple[str | None, bool, str | None]:
    """(label, valid, problem) of one annotation: its single choice in the scored Choices tag."""
    if annotation.get("was_cancelled"):
        return None, True, None
    chosen: list[str] = []
    results = annotation.get("result") or []
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        return None, False, "has a result that is not a list of regions"
    for result in results:
        if result.get("from_name") == config.label_tag:
            chosen.extend((result.get("value") or {}).get("choices") or [])
    if not chosen:
        return None, True, None
    if len(chosen) > 1:
        return None, False, f"chose {len(chosen)} classes ({preview(chosen)}) where relabel scores one"
    if chosen[0] not in config.classes:
        return chosen[0], False, f"chose {chosen[0]!r}, which is not a class of the labeling config"
    return chosen[0], True, None


def choice_set_of(annotation: dict, config: LabelConfig) -> tuple[tuple[str, ...] | None, bool, str | None]:
    """(classes, valid, problem) of one multi-label annotation: the set of choices in the scored Choices tag, in
    config order. A submitted annotation with no choice there is the empty set ("none apply"), an answer; a
    cancelled (skipped) annotation is None."""
    if annotation.get("was_cancelled"):
        return None, True, None
    results = annotation.get("result") or []
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        return None, False, "has a result that is not a list of regions"
    chosen: set[str] = set()
    for result in results:
        if result.get("from_name") == config.label_tag:
            chosen.update((result.get("value") or {}).get("choices") or [])
    unknown = sorted(chosen - set(config.classes))
    if unknown:
        return None, False, f"chose {preview(unknown)}, not classes of the labeling config"
    return tuple(c for c in config.classes if c in chosen), True, None


def encode_label_set(labels) -> str:
    """A set of classes as the store keeps it in a multi-label project: JSON text of the class names in config
    order ("[]" is the answer "none apply"; a skip has no label at all). One spelling per set, so equal sets are
    equal strings and a reviewer's edit that keeps the set is no change."""
    return json.dumps(list(labels), ensure_ascii=False)


def decode_label_set(label: str | None) -> tuple[str, ...] | None:
    """The classes of a stored multi-label label (None for a skip)."""
    return None if label is None else tuple(json.loads(label))


def choice_set_label(annotation: dict, config: LabelConfig) -> tuple[str | None, bool, str | None]:
    """``choice_set_of`` with the set as the store keeps it (``encode_label_set``): (label, valid, problem)."""
    labels, valid, problem = choice_set_of(annotation, config)
    return (None if labels is None else encode_label_set(labels)), valid, problem


def choice_set_result(config: LabelConfig, labels) -> dict:
    """A multi-label result region: the given classes (config order); an empty list is "none apply"."""
    chosen = [c for c in config.classes if c in set(labels)]
    return {"from_name": config.label_tag, "to_name": config.to_name, "type": "choices", "value": {"choices": chosen}}


def choice_result(config: LabelConfig, label: str) -> dict:
    return {"from_name": config.label_tag, "to_name": config.to_name, "type": "choices", "value": {"choices": [label]}}


def round_prediction(task: dict, round_number: int) -> dict | None:
    """The prediction a push of ``round_number`` put on ``task``, else None."""
    version = model_version(round_number)
    for prediction in task.get("predictions") or []:
        if isinstance(prediction, dict) and prediction.get("model_version") == version:
            return prediction
    return None


def prediction(request: ReviewRequest, config: LabelConfig, task_id: int | None = None, *,
               preselect: bool) -> dict:
    """The prediction a review request puts on a task (a review project's or, in place, the item's own)."""
    # Without preselect the prediction is empty: it still marks the round (model_version) and carries the
    # quality (score) the saved view sorts on, but selects nothing in the reviewer's editor.
    if config.multiple:   # a multi-label suggestion is a set (suggested_labels)
        shown = [choice_set_result(config, request.suggested_labels or ())]
    else:
        shown = [choice_result(config, request.suggested_label)]
    made = {"model_version": model_version(request.round), "score": float(request.quality),
            "result": shown if preselect else []}
    if task_id is not None:
        made["task"] = task_id
    return made
