"""Span projects on the Label Studio side (issue 23): the labeling config, task JSON to the long span table with
one-line messages for regions that cannot be scored, consensus back to Label Studio regions, and the exports."""
import json

import pandas as pd
import pytest

from connectors.label_config import is_span_config, parse_span_config
from connectors.span_records import consensus_regions, span_table
from relabel.errors import ConfigError
from relabel.loop.span_export import conll_lines, jsonl_lines, write_conll, write_jsonl

CONFIG = """<View>
  <Labels name="entity" toName="text">
    <Label value="PER"/><Label value="ORG"/><Label value="LOC" alias="Location"/>
  </Labels>
  <Labels name="phi" toName="text" choice="multiple">
    <Label value="NAME"/><Label value="ID"/>
  </Labels>
  <Text name="text" value="$body"/>
  <Relations><Relation value="works_for"/></Relations>
</View>"""

TEXT = "Alice works at Acme in Paris."


def region(control, start, end, labels, text=None):
    value = {"start": start, "end": end, "labels": labels}
    value["text"] = TEXT[start:end] if text is None else text
    return {"from_name": control, "to_name": "text", "type": "labels", "value": value}


def task(task_id, *annotations, text=TEXT):
    return {"id": task_id, "data": {"body": text},
            "annotations": [{"completed_by": who, "result": list(result)} for who, result in annotations]}


def test_config_with_two_labels_controls():
    config = parse_span_config(CONFIG)
    assert is_span_config(CONFIG)
    assert [(c.name, c.labels, c.multiple) for c in config.controls] == [
        ("entity", ("PER", "ORG", "Location"), False), ("phi", ("NAME", "ID"), True)]
    assert config.text_field == "body" and config.object_name == "text"
    assert config.unscored == ("<Relations name=''>",)


@pytest.mark.parametrize("xml, message", [
    ('<View><Labels name="e" toName="t"></Labels><Text name="t" value="$x"/></View>', "no <Label> values"),
    (('<View><Labels name="e" toName="t"><Label value="A"/><Label value="A"/></Labels><Text name="t" value="$x"/>'
      '</View>'), "repeats the labels"),
    ('<View><Labels name="e" toName="img"><Label value="A"/></Labels><Image name="img" value="$x"/></View>',
     "not a <Text>"),
    ('<View><Choices name="c" toName="t"><Choice value="A"/></Choices><Text name="t" value="$x"/></View>',
     "no <Labels> tag"),
])
def test_bad_span_configs(xml, message):
    with pytest.raises(ConfigError, match=message):
        parse_span_config(xml)


def test_tasks_to_long_table_multiple_labels_and_empty_answers():
    config = parse_span_config(CONFIG)
    tasks = [task(1, ("a", [region("entity", 0, 5, ["PER"]), region("phi", 0, 5, ["NAME", "ID"])]),
                  ("b", [])),
             task(2, ("a", [region("entity", 23, 28, ["Location"])]))]
    table = span_table(tasks, config)
    assert table.problems == ()
    assert table.spans[["task", "annotator", "control", "start", "end", "label"]].values.tolist() == [
        [1, "a", "entity", 0, 5, "PER"], [1, "a", "phi", 0, 5, "NAME"], [1, "a", "phi", 0, 5, "ID"],
        [2, "a", "entity", 23, 28, "Location"]]
    assert table.answered.values.tolist() == [[1, "a"], [1, "b"], [2, "a"]]   # b's empty answer counts


@pytest.mark.parametrize("bad, message", [
    (region("entity", 0, 5, []), "empty label list"),
    (region("entity", 20, 40, ["PER"], text="x"), "past the end of the task's text"),
    (region("entity", 0, 5, ["PER"], text="Alicia"), "text changed after annotation"),
    (region("entity", 0, 5, ["CITY"]), "not in <Labels name='entity'>"),
])
def test_regions_that_cannot_be_scored_are_one_line_messages_naming_the_task(bad, message):
    config = parse_span_config(CONFIG)
    good = region("entity", 6, 11, ["ORG"])
    table = span_table([task(7, ("a", [bad, good]))], config)
    assert len(table.problems) == 1 and message in table.problems[0]
    assert table.problems[0].startswith("task 7, annotator 'a'") and "\n" not in table.problems[0]
    assert table.spans["label"].tolist() == ["ORG"]            # the rest of the annotation is kept


def test_consensus_regions_group_multiple_labels_into_one_region():
    config = parse_span_config(CONFIG)
    consensus = pd.DataFrame({"task": [1, 1, 1], "control": ["phi", "phi", "entity"], "start": [0, 0, 0],
                              "end": [5, 5, 5], "label": ["NAME", "ID", "PER"]})
    regions = consensus_regions(consensus, {1: TEXT}, config)[1]
    assert [(r["from_name"], r["value"]["labels"], r["value"]["text"]) for r in regions] == [
        ("entity", ["PER"], "Alice"), ("phi", ["NAME", "ID"], "Alice")]
    assert all(r["to_name"] == "text" and r["type"] == "labels" for r in regions)


def test_exports(tmp_path):
    texts = [TEXT, "Nothing here."]
    consensus = pd.DataFrame({"item": [0, 0, 0], "control": ["entity", "entity", "phi"], "start": [0, 23, 0],
                              "end": [5, 28, 5], "label": ["PER", "LOC", "NAME"]})
    records = [json.loads(line) for line in jsonl_lines(["t1", "t2"], texts, consensus)]
    assert records[0]["spans"][0] == {"start": 0, "end": 5, "label": "PER", "text": "Alice", "control": "entity"}
    assert records[1] == {"id": "t2", "text": "Nothing here.", "spans": []}
    lines, clashes = conll_lines(["t1", "t2"], texts, consensus)
    assert clashes == 0
    assert lines[:3] == ["# id = t1", "Alice\tB-PER\tB-NAME", "works\tO\tO"]
    assert "Paris\tB-LOC\tO" in lines
    assert lines[-5:] == ["# id = t2", "Nothing\tO\tO", "here\tO\tO", ".\tO\tO", ""]
    write_jsonl(tmp_path / "s.jsonl", ["t1", "t2"], texts, consensus)
    assert write_conll(tmp_path / "s.conll", ["t1", "t2"], texts, consensus) == 0
    assert (tmp_path / "s.conll").read_text().count("# id =") == 2
