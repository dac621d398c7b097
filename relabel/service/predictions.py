"""What /predict answers: relabel's consensus label and quality from the latest scored round.

Label Studio sends ``{"tasks": [...], "project": "<id>.<created-at>", "label_config": ..., "params": ...}`` and
expects ``{"results": [...]}`` with one entry per task, in order (label_studio/ml/models.py pairs them by
position). An entry is one prediction ``{"result": [...], "score": ..., "model_version": ...}``, or a list of
them; an empty list gives that task no prediction.
"""
from __future__ import annotations

from connectors.label_config import LabelConfig, parse_label_config
from relabel.errors import RelabelError
from relabel.loop.store import Store


def model_version(round_number: int) -> str:
    """The model_version of the service's predictions: Label Studio shows it and fetches again when it changes."""
    return f"relabel round {round_number}"


def current_model_version(store: Store) -> str:
    """The version /setup reports: the latest scored round's, or "relabel" before the first round."""
    latest = store.latest_round()
    return model_version(latest["round"]) if latest is not None else "relabel"


def project_of(payload: dict) -> int | None:
    """The Label Studio project id of a /predict or /setup request ("12.1700000000" is project 12)."""
    value = payload.get("project")
    if isinstance(value, (int, str)) and str(value).split(".", 1)[0].isdigit():
        return int(str(value).split(".", 1)[0])
    tasks = payload.get("tasks") or []
    if tasks and isinstance(tasks[0], dict) and isinstance(tasks[0].get("project"), int):
        return tasks[0]["project"]
    return None


def predict(store: Store, payload: dict, *, project_id: int, label_tag: str | None = None) -> dict:
    """One result per task of ``payload``: the latest round's consensus label scored with its quality.

    A task the round has no consensus for (unlabelled when it was scored) gets the round's model prediction,
    scored with the model's probability; a task the round never saw (created since) gets none. Tasks of another
    project than ``project_id`` get none either.
    """
    tasks = payload.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and "id" in t for t in tasks):
        raise ValueError("'tasks' must be a list of Label Studio tasks, each with an 'id'")
    latest = store.latest_round()
    if latest is None or project_of(payload) not in (None, project_id):
        return {"results": [[] for _ in tasks]}
    config = _label_config(store, payload, label_tag)
    rnd = latest["round"]
    rows = store.scores_of(rnd, (str(t["id"]) for t in tasks))
    version = model_version(rnd)
    results = []
    for task in tasks:
        row = rows.get(str(task["id"]))
        label, score = _label_and_score(row)
        if label is None or config is None or label not in config.classes:
            results.append([])
            continue
        results.append({"result": [{"from_name": config.label_tag, "to_name": config.to_name, "type": "choices",
                                    "value": {"choices": [label]}}],
                        "score": score, "model_version": version})
    return {"results": results, "model_version": version}


def _label_and_score(row: dict | None) -> tuple[str | None, float | None]:
    if row is None:
        return None, None
    if row.get("labelled") and row.get("consensus_label") is not None:
        # A reviewed item's final label is the reviewer's; its quality is still the round's consensus quality.
        return row.get("final_label") or row["consensus_label"], _float(row.get("quality"))
    if row.get("model_label") is not None:
        return row["model_label"], _float(row.get("model_prob"))
    return None, None


def _float(value) -> float | None:
    return None if value is None else float(value)


def _label_config(store: Store, payload: dict, label_tag: str | None) -> LabelConfig | None:
    """The project's Choices tag, from the label_config Label Studio sends (the store knows only its name)."""
    xml = payload.get("label_config")
    if not isinstance(xml, str) or not xml.strip():
        return None
    try:
        return parse_label_config(xml, label_tag=label_tag or store.get_meta("label_tag"))
    except RelabelError:
        return None
