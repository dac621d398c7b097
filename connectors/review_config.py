"""The review project's labeling config and the panel data of a review task.

A reviewer has to see why relabel asks, without being told what to answer. So the review project's config,
generated from the source project's, holds only three things:

- the item: the object tags (``<Text>``, ``<Image>``, ...) the reviewed ``<Choices>`` labels, copied as they are;
- a read-only panel fed from task data fields (``$relabel_reason``, ``$relabel_annotators``, ``$relabel_model``):
  ``<Header>`` and ``<Text>`` tags no control points at, so nothing in it can be selected or labelled;
- the reviewed ``<Choices>`` alone (``required``, so an empty submit is not mistaken for an answer).

Every other control of the source config (a second ``<Choices>``, a comment ``<TextArea>``, ratings) is dropped:
its answers would not be read, and it distracts. Conditional-display attributes (``visibleWhen`` and friends) are
removed because the tags they point at are gone. Nothing here talks to Label Studio.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from relabel.errors import ConfigError

from connectors.label_config import FLAG_TAG, LabelConfig
from connectors.records import ReviewRequest

# Task data fields the panel shows. They are plain data fields, so the Data Manager can also show and filter them.
REASON_FIELD = "relabel_reason"
ANNOTATORS_FIELD = "relabel_annotators"
MODEL_FIELD = "relabel_model"
SUGGESTED_FIELD = "relabel_suggested"
PANEL_FIELDS = (REASON_FIELD, ANNOTATORS_FIELD, MODEL_FIELD)
# The optional "flag the item" control: bad data (out of scope, boilerplate, a broken import) that should leave
# scoring and the final labels. The reviewed label stays required, so a flagged item still gets the reviewer's
# best label, kept in the store beside the flag.
FLAG_CHOICE = "Flag the item: bad data (leave it out of scoring and final labels)"
# Attributes that tie a tag's display to other tags of the source config, which the review config drops.
_CONDITIONAL = ("visibleWhen", "whenTagName", "whenLabelValue", "whenChoiceValue", "whenRole")
# Shown beside the item on a wide screen, under it on a narrow one.
_ROW_STYLE = "display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start"
_PANEL_STYLE = ("flex: 1 1 18em; background: #f5f6f8; border-left: 3px solid #8a94a6; padding: 0.4em 1em; "
                "font-size: 90%")


def review_label_config(source_xml: str, config: LabelConfig, *, show_suggestion: bool = False) -> str:
    """The review project's labeling config for a source config whose reviewed tag is ``config.label_tag``.

    ``show_suggestion`` adds a line naming relabel's suggested label (``$relabel_suggested``) to the panel.
    """
    try:
        root = ET.fromstring(source_xml)
    except ET.ParseError as exc:
        raise ConfigError(f"The source project's labeling config is not valid XML ({exc}); fix it in Label "
                          "Studio's settings.") from None
    choices = next((t for t in root.iter("Choices") if t.get("name") == config.label_tag), None)
    if choices is None:
        raise ConfigError(f"The source project's labeling config has no <Choices name={config.label_tag!r}>; "
                          "set 'label_tag' to the tag relabel scores.")
    targets = set(filter(None, (choices.get("toName") or "").split(",")))
    objects = [t for t in root.iter() if t.get("name") in targets and t is not choices]
    if not objects:
        raise ConfigError(f"The <Choices name={config.label_tag!r}> points at {sorted(targets)} but no tag of the "
                          "labeling config has that name; fix its toName in Label Studio's settings.")
    view = ET.Element("View")
    row = ET.SubElement(view, "View", style=_ROW_STYLE)
    item = ET.SubElement(row, "View", style="flex: 2 1 24em")
    for tag in objects:
        item.append(_unconditional(tag))
    reviewed = _unconditional(choices)
    if not config.multiple:
        # A multi-label reviewer may tick nothing: the empty set is the answer "none apply".
        reviewed.set("required", "true")
    item.append(reviewed)
    flag = ET.SubElement(item, "Choices", name=FLAG_TAG, toName=objects[0].get("name"), choice="single")
    ET.SubElement(flag, "Choice", value=FLAG_CHOICE)
    panel = ET.SubElement(row, "View", style=_PANEL_STYLE)
    lines = [("Why relabel asks", REASON_FIELD), ("Who said what", ANNOTATORS_FIELD),
             ("The model's top classes", MODEL_FIELD)]
    if show_suggestion:
        lines.append(("relabel's suggestion", SUGGESTED_FIELD))
    for title, data_field in lines:
        ET.SubElement(panel, "Header", value=title, size="6")
        ET.SubElement(panel, "Text", name=f"{data_field}_panel", value=f"${data_field}")
    return ET.tostring(view, encoding="unicode")


def panel_data(request: ReviewRequest, *, show_suggestion: bool = False) -> dict:
    """The task data fields the panel reads, as plain text (one line per annotator, per class)."""
    annotators = "\n".join(f"{who}: {label}" for who, label in request.annotators) or "no annotator labelled it"
    model = "\n".join(f"{label} {prob:.2f}" for label, prob in request.model_top) or "no model view recorded"
    data = {REASON_FIELD: request.reason, ANNOTATORS_FIELD: annotators, MODEL_FIELD: model}
    if show_suggestion:
        data[SUGGESTED_FIELD] = request.suggested_label
    return data


def is_flagged(annotation: dict) -> bool:
    """Whether a review annotation's result ticks the flag control (Label Studio's result JSON)."""
    for result in annotation.get("result") or ():
        if result.get("from_name") == FLAG_TAG and FLAG_CHOICE in ((result.get("value") or {}).get("choices") or ()):
            return True
    return False


def _unconditional(tag: ET.Element) -> ET.Element:
    """A deep copy of ``tag`` without attributes that refer to tags the review config drops."""
    copy = ET.fromstring(ET.tostring(tag))
    for element in copy.iter():
        for attribute in _CONDITIONAL:
            element.attrib.pop(attribute, None)
    copy.tail = None
    return copy
