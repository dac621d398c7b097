"""Read what relabel needs from a Label Studio labeling config: the classes, the Choices tag and the text field.

The classes come from the config, in config order, never from "labels seen so far": a class nobody has used yet
is still a class, and an annotation whose choice is not in the config is invalid rather than a new class.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from relabel.errors import ConfigError, preview


# The name of the review projects' "flag the item" control (connectors/review_config.py).
FLAG_TAG = "relabel_flag"


@dataclass(frozen=True)
class LabelConfig:
    """The parts of a labeling config relabel uses."""

    classes: tuple[str, ...]
    label_tag: str
    text_field: str | None
    to_name: str = ""  # the object tag the Choices tag labels, needed to write a prediction's result
    # <Choices choice="multiple">: an annotation is a set of classes (possibly empty: "none apply"), a multi-label
    # project (issue 24); "single" and "single-radio" are one class per annotation.
    multiple: bool = False


def parse_label_config(xml: str, *, label_tag: str | None = None, text_field: str | None = None) -> LabelConfig:
    """Classes (config order), the Choices tag to score and the task data field holding the text.

    ``label_tag`` picks one Choices tag by name when the config has several; ``text_field`` overrides the field
    found from the ``<Text value="$field">`` tag the Choices tag points to. Raises ConfigError naming the tags.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ConfigError(f"The project's labeling config is not valid XML ({exc}); fix it in Label Studio's settings.") from None
    # relabel's own "flag the item" control on review projects (connectors/review_config.py) is never scored.
    choices_tags = [tag for tag in root.iter() if tag.tag == "Choices" and tag.get("name") != FLAG_TAG]
    names = [tag.get("name", "") for tag in choices_tags]
    if not choices_tags:
        raise ConfigError(
            "The project's labeling config has no <Choices> tag, so relabel has no classes to score; "
            "relabel works on classification projects (<Choices>) and span projects (<Labels> on a <Text>)."
        )
    if label_tag is None:
        if len(choices_tags) > 1:
            raise ConfigError(
                f"The labeling config has {len(choices_tags)} <Choices> tags ({preview(names)}); "
                f"choose the one relabel should score with `relabel init --label-tag NAME` (the 'label_tag' "
                f"setting in [label_studio])."
            )
        tag = choices_tags[0]
    else:
        matching = [t for t in choices_tags if t.get("name") == label_tag]
        if not matching:
            raise ConfigError(
                f"The 'label_tag' setting is {label_tag!r} but the labeling config's <Choices> tags are "
                f"{preview(names)}; set it to one of them."
            )
        tag = matching[0]
    name = tag.get("name", "")
    classes = tuple(_class_name(choice) for choice in tag.iter("Choice"))
    if len(classes) < 2:
        raise ConfigError(
            f"The <Choices name={name!r}> tag has {len(classes)} <Choice> values; relabel needs at least 2 classes."
        )
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise ConfigError(
            f"The <Choices name={name!r}> tag repeats the choices {preview(duplicates)}; make every choice value unique."
        )
    if text_field is None:
        text_field = _text_field_of(root, tag.get("toName", ""))
    return LabelConfig(classes=classes, label_tag=name, text_field=text_field, to_name=tag.get("toName", ""),
                       multiple=(tag.get("choice") or "single").strip().lower() == "multiple")


def _class_name(choice: ET.Element) -> str:
    # Label Studio stores the alias in the annotation result when a Choice has one.
    return choice.get("alias") or choice.get("value", "")


def _text_field_of(root: ET.Element, to_name: str) -> str | None:
    """The data field behind the object tag the Choices tag labels: `<Text name=to_name value="$field">`."""
    targets = set(to_name.split(","))
    for tag in root.iter():
        value = tag.get("value", "")
        if tag.get("name") in targets and tag.tag in ("Text", "HyperText", "Paragraphs") and value.startswith("$"):
            return value[1:]
    return None


# ---- span projects (issue 23): <Labels> on <Text> --------------------------------------------------------------
SPAN_OBJECT_TAGS = ("Text", "HyperText")
# Tags relabel keeps but cannot score yet; named once in the round output.
UNSCORED_TAGS = ("Relations",)


@dataclass(frozen=True)
class SpanControl:
    """One ``<Labels>`` tag: its name, the object tag it labels, its labels (config order) and whether a region
    may carry several of them (``choice="multiple"``)."""

    name: str
    to_name: str
    labels: tuple[str, ...]
    multiple: bool


@dataclass(frozen=True)
class SpanConfig:
    """The parts of a span project's labeling config relabel uses."""

    controls: tuple[SpanControl, ...]
    text_field: str
    object_name: str
    unscored: tuple[str, ...]      # tags kept in the store but not scored (relations, per-region text areas)


def is_span_config(xml: str) -> bool:
    """True when the config labels a text with ``<Labels>`` and has no ``<Choices>`` to score instead."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return False
    tags = {tag.tag for tag in root.iter()}
    return "Labels" in tags and "Choices" not in tags


def parse_span_config(xml: str, *, text_field: str | None = None) -> SpanConfig:
    """Every ``<Labels>`` control on one ``<Text>`` (or ``<HyperText>``) object, with its labels. Raises
    ConfigError naming the tag when a control has no labels, repeats a label, or the controls label different
    texts (relabel scores one text per task)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ConfigError(f"The project's labeling config is not valid XML ({exc}); fix it in Label Studio's settings.") from None
    tags = [tag for tag in root.iter() if tag.tag == "Labels"]
    if not tags:
        raise ConfigError("The project's labeling config has no <Labels> tag, so it is not a span project.")
    controls = []
    for tag in tags:
        name = tag.get("name", "")
        labels = tuple(_class_name(label) for label in tag.iter("Label"))
        if not labels:
            raise ConfigError(f"The <Labels name={name!r}> tag has no <Label> values; add the labels annotators "
                              "choose from.")
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ConfigError(f"The <Labels name={name!r}> tag repeats the labels {preview(duplicates)}; make every "
                              "label value unique.")
        controls.append(SpanControl(name, tag.get("toName", ""), labels, tag.get("choice", "single") == "multiple"))
    objects = {c.to_name for c in controls}
    if len(objects) > 1:
        raise ConfigError(f"The <Labels> tags label different objects ({preview(sorted(objects))}); relabel scores "
                          "spans on one text per task.")
    object_name = controls[0].to_name
    kinds = {tag.get("name"): tag.tag for tag in root.iter() if tag.tag in SPAN_OBJECT_TAGS}
    if object_name not in kinds:
        raise ConfigError(f"The <Labels> tags label {object_name!r}, which is not a <Text> or <HyperText> tag of the "
                          "config; relabel scores spans on text.")
    field = text_field or _text_field_of(root, object_name)
    if not field:
        raise ConfigError(f"The <{kinds[object_name]} name={object_name!r}> tag has no value=\"$field\"; set the "
                          "'text_field' setting to the task data field holding the text.")
    unscored = [f"<{tag.tag} name={tag.get('name', '')!r}>" for tag in root.iter() if tag.tag in UNSCORED_TAGS]
    unscored += [f"<TextArea name={tag.get('name', '')!r}> (per region)" for tag in root.iter()
                 if tag.tag == "TextArea" and tag.get("perRegion", "").lower() == "true"]
    return SpanConfig(tuple(controls), field, object_name, tuple(unscored))
