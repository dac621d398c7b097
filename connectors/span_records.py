"""Label Studio span annotations as relabel's long table: one row per (task, annotator, control, region, label).

    table = span_table(tasks, config)       # tasks as Label Studio exports them (data + annotations)
    table.spans      # DataFrame task, annotator, control, start, end, label, text
    table.answered   # DataFrame task, annotator: every submitted annotation, empty ones included
    table.problems   # one-line messages naming the task, for regions that cannot be scored

A region with several labels (``choice="multiple"``) becomes several rows. Regions that cannot be scored are not
dropped silently: each gets one line in ``problems`` naming the task, the annotator and what to fix, and the
task's raw annotations stay wherever they were stored. What is checked: a region with an empty label list, a
region past the end of the task's text, a region whose stored ``text`` differs from the task's text at its
offsets (the text changed after annotation), a label not in the config. Overlapping regions of one annotator
within one control are kept and named in ``problems`` too (the scoring merges same-label overlaps into their
union and scores different labels as nested ones, relabel.scoring.span_input), so the user can fix a slip.
``spans`` also carries the annotation's id (column ``annotation``), for the store.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from connectors.label_config import SpanConfig

SPAN_TABLE_COLUMNS = ["task", "annotator", "control", "start", "end", "label", "text", "annotation"]


@dataclass(frozen=True)
class SpanTable:
    spans: pd.DataFrame
    answered: pd.DataFrame
    problems: tuple[str, ...]
    texts: dict            # task id -> text


def _annotator(annotation: dict) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return str(who)


def span_table(tasks, config: SpanConfig) -> SpanTable:
    controls = {c.name: c for c in config.controls}
    rows, answered, problems, texts = [], [], [], {}
    for task in tasks:
        task_id = task.get("id")
        text = (task.get("data") or {}).get(config.text_field)
        if not isinstance(text, str):
            problems.append(f"task {task_id}: no text in data field {config.text_field!r}; check the 'text_field' "
                            "setting.")
            continue
        texts[task_id] = text
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled") or annotation.get("skipped"):
                continue
            who = _annotator(annotation)
            answered.append((task_id, who))
            kept = []
            for region in annotation.get("result") or []:
                control = controls.get(region.get("from_name"))
                if control is None or region.get("type") != "labels":
                    continue
                value = region.get("value") or {}
                start, end, labels = value.get("start"), value.get("end"), value.get("labels")
                where = f"task {task_id}, annotator {who!r}, region [{start}, {end})"
                if not labels:
                    problems.append(f"{where}: the region has an empty label list; give it a label in Label Studio "
                                    "or delete it.")
                    continue
                if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end:
                    problems.append(f"{where}: offsets are not 0 <= start < end; fix or delete the region.")
                    continue
                if end > len(text):
                    problems.append(f"{where}: the region ends past the end of the task's text ({len(text)} "
                                    "characters); the text changed after annotation: re-annotate the task.")
                    continue
                if "text" in value and value["text"] != text[start:end]:
                    problems.append(f"{where}: the region's text {value['text'][:30]!r} is not the task's text at "
                                    "those offsets; the text changed after annotation: re-annotate the task.")
                    continue
                unknown = [label for label in labels if label not in control.labels]
                if unknown:
                    problems.append(f"{where}: labels {unknown} are not in <Labels name={control.name!r}>; add them "
                                    "to the config or fix the region.")
                    continue
                kept.append((control.name, start, end, tuple(labels)))
                rows.extend((task_id, who, control.name, start, end, label, text[start:end], annotation.get("id"))
                            for label in labels)
            problems.extend(_overlap_problems(task_id, who, kept))
    spans = pd.DataFrame(rows, columns=SPAN_TABLE_COLUMNS)
    return SpanTable(spans, pd.DataFrame(answered, columns=["task", "annotator"]).drop_duplicates(ignore_index=True),
                     tuple(problems), texts)


def _overlap_problems(task_id, who, regions) -> list[str]:
    """One line per pair of one annotator's regions that overlap within one control (first pair per control)."""
    out = []
    by_control: dict = {}
    for control, start, end, labels in sorted(regions):
        by_control.setdefault(control, []).append((start, end, labels))
    for control, spans in by_control.items():
        reach, reach_span = -1, None
        for start, end, labels in spans:
            if start < reach:
                same = set(labels) & set(reach_span[2])
                how = ("they are scored as one span, their union" if same else
                       "they are scored as nested spans of different labels")
                out.append(f"task {task_id}, annotator {who!r}: regions [{reach_span[0]}, {reach_span[1]}) and "
                           f"[{start}, {end}) of <Labels name={control!r}> overlap; {how}; delete or fix one of them "
                           "in Label Studio if they were not meant to overlap.")
                break
            if end > reach:
                reach, reach_span = end, (start, end, labels)
    return out


def consensus_regions(consensus: pd.DataFrame, texts: dict, config: SpanConfig) -> dict:
    """Consensus spans (task, control, start, end, label) as Label Studio results per task: one region per
    (control, start, end) with all its labels (several only under choice="multiple")."""
    out: dict = {}
    grouped = consensus.groupby(["task", "control", "start", "end"], sort=True)["label"].agg(list)
    for (task, control, start, end), labels in grouped.items():
        text = texts[task]
        out.setdefault(task, []).append({
            "id": f"relabel-{control}-{start}-{end}", "from_name": control, "to_name": config.object_name,
            "type": "labels", "origin": "prediction",
            "value": {"start": int(start), "end": int(end), "text": text[start:end], "labels": list(labels)}})
    return out
