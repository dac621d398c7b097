"""Review tasks and write-back for span projects, as Label Studio JSON (nothing here talks to Label Studio).

Review: a review task holds the item's text and, as *predictions*, each annotator's spans (``model_version``
"annotator <id>") and relabel's consensus ("relabel consensus"); the reviewer switches between them in Label
Studio's prediction tabs and draws the answer in a fresh annotation. The review project is created with
``show_collab_predictions`` off, so no prediction is copied into the reviewer's annotation (nothing preselected)
unless ``[review] preselect`` asks for the consensus to be pre-filled. The reason for review and the item's
quality are task data fields shown in a read-only panel. The reviewer's spans are the decision: they are read
back with connectors.span_records.span_table like any annotation, and passed to span_consensus as ``gold``.

Write-back: the consensus goes back to the source project as **predictions** with a model version
("relabel-consensus-r<round>"), not as annotations. Why: a prediction is shown by Label Studio as relabel's
suggestion beside the people's annotations and exported with them (JSON export with predictions), it never
counts as a person's work in Label Studio's own statistics or ground truth, and a later round replaces it by
version instead of piling up annotations by a robot user.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from connectors.label_config import SpanConfig
from relabel.errors import ConfigError

CONSENSUS_VERSION = "relabel consensus"
REASON_FIELD = "relabel_reason"
_PANEL_STYLE = "background: #f5f6f8; border-left: 3px solid #8a94a6; padding: 0.4em 1em; font-size: 90%"


def annotator_version(annotator) -> str:
    return f"annotator {annotator}"


def writeback_version(round_number: int) -> str:
    return f"relabel-consensus-r{round_number}"


def span_review_label_config(source_xml: str, config: SpanConfig) -> str:
    """The source's text object and ``<Labels>`` controls (relations and other controls dropped) under a
    read-only panel that shows ``$relabel_reason``."""
    try:
        root = ET.fromstring(source_xml)
    except ET.ParseError as exc:
        raise ConfigError(f"The source project's labeling config is not valid XML ({exc}); fix it in Label "
                          "Studio's settings.") from None
    names = {c.name for c in config.controls}
    view = ET.Element("View")
    panel = ET.SubElement(view, "View", style=_PANEL_STYLE)
    ET.SubElement(panel, "Header", value="Why relabel asks", size="6")
    ET.SubElement(panel, "Text", name="relabel_reason_panel", value=f"${REASON_FIELD}")
    for tag in root.iter():
        if tag.tag == "Labels" and tag.get("name") in names:
            view.append(tag)
    for tag in root.iter():
        if tag.get("name") == config.object_name and tag.tag in ("Text", "HyperText"):
            view.append(tag)
    return ET.tostring(view, encoding="unicode")


def span_review_task(item_id, data: dict, annotator_regions: dict, consensus_regions: list, *, reason: str,
                     quality: float, round_number: int, preselect: bool = False) -> dict:
    """One review task: the item's data plus relabel fields, and one prediction per annotator and the consensus.

    ``annotator_regions``: {annotator id: [Label Studio region, ...]} (an empty list shows "marked nothing").
    With ``preselect`` the consensus prediction comes first (Label Studio pre-fills from the first one when the
    project's show_collab_predictions is on); otherwise it comes last.
    """
    task_data = {k: v for k, v in data.items() if not str(k).startswith("relabel_")}
    task_data.update({"relabel_item": item_id, "relabel_round": round_number, "relabel_quality": float(quality),
                      REASON_FIELD: reason})
    people = [{"model_version": annotator_version(who), "result": [dict(r, origin="prediction") for r in regions]}
              for who, regions in sorted(annotator_regions.items(), key=lambda kv: str(kv[0]))]
    consensus = {"model_version": CONSENSUS_VERSION, "score": float(quality), "result": consensus_regions}
    return {"data": task_data, "predictions": [consensus] + people if preselect else people + [consensus]}


def regions_by_annotator(spans, task_id, text: str, config: SpanConfig, answered) -> dict:
    """{annotator: regions} for one task from the long span table (task, annotator, control, start, end, label)
    and the answered pairs (annotators with an empty answer get an empty list)."""
    from connectors.span_records import consensus_regions

    out = {who: [] for who in answered.loc[answered["task"] == task_id, "annotator"]}
    mine = spans[spans["task"] == task_id]
    for who, group in mine.groupby("annotator"):
        out[who] = consensus_regions(group, {task_id: text}, config).get(task_id, [])
    return out


def writeback_predictions(regions_by_task: dict, quality_by_task: dict, round_number: int) -> list[dict]:
    """Predictions for ``client.projects.import_predictions``: one per task, the consensus regions."""
    version = writeback_version(round_number)
    return [{"task": task, "model_version": version, "score": float(quality_by_task.get(task, 1.0)),
             "result": regions} for task, regions in regions_by_task.items()]
