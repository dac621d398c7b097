"""Read what relabel needs from a Label Studio labeling config: the classes, the Choices tag and the text field.

The classes come from the config, in config order, never from "labels seen so far": a class nobody has used yet
is still a class, and an annotation whose choice is not in the config is invalid rather than a new class.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from relabel.errors import ConfigError, preview


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
    choices_tags = [tag for tag in root.iter() if tag.tag == "Choices"]
    names = [tag.get("name", "") for tag in choices_tags]
    if not choices_tags:
        raise ConfigError(
            "The project's labeling config has no <Choices> tag, so relabel has no classes to score; "
            "relabel works on classification projects."
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
    refuse_multi_label(tag)
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


def refuse_multi_label(tag: ET.Element) -> None:
    """Refuse a Choices tag that takes several choices per task: relabel's scores assume one class per item, and
    an annotation holding two choices would be left out of scoring, a reviewer's answer with it dropped. This is the
    one place multi-label projects are turned away; multi-label support replaces it."""
    if (tag.get("choice") or "single").strip().lower() == "multiple":
        raise ConfigError(f"The <Choices name={tag.get('name', '')!r}> tag takes several choices per task "
                          "(choice=\"multiple\"); relabel scores single-label projects only, so use "
                          "choice=\"single\" or another <Choices> tag (--label-tag).")


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
