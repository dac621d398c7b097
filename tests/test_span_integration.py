"""Span project end to end against a real Label Studio (issue 23), at the level of the pieces that exist: the
labeling config with two <Labels> controls (one choice="multiple"), tasks and annotations read back from Label
Studio's export, consensus, review tasks showing each annotator's spans as predictions, a reviewer's correction
read back as gold, round 2, and the write-back visible in Label Studio's own JSON export.

Not covered (not built yet): `relabel init` / `relabel round` on a span project, the store's span tables and
the HTML report; this test drives the same steps through the SDK and relabel's functions.
"""
import uuid

import httpx
import pytest
from label_studio_helpers import import_tasks, make_members

import relabel
from connectors.label_config import is_span_config, parse_span_config
from connectors.span_records import consensus_regions, span_table
from connectors.span_review import (
    CONSENSUS_VERSION,
    annotator_version,
    regions_by_annotator,
    span_review_label_config,
    span_review_task,
    writeback_predictions,
    writeback_version,
)

pytestmark = pytest.mark.integration
# On a machine shared by many jobs the first start (migrations) can take minutes; only this module waits longer.
START_TIMEOUT = 900


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    from conftest import LABEL_STUDIO_ADMIN, LABEL_STUDIO_PASSWORD

    from relabel.server import start_label_studio

    server = start_label_studio(tmp_path_factory.mktemp("label_studio_spans"), username=LABEL_STUDIO_ADMIN,
                                password=LABEL_STUDIO_PASSWORD, timeout=START_TIMEOUT)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ls_admin(label_studio):
    from label_studio_helpers import admin_client

    return admin_client(label_studio.url, label_studio.api_key)

CONFIG = """<View>
  <Text name="text" value="$body"/>
  <Labels name="entity" toName="text"><Label value="PER"/><Label value="ORG"/><Label value="LOC"/></Labels>
  <Labels name="phi" toName="text" choice="multiple"><Label value="NAME"/><Label value="ID"/></Labels>
</View>"""

SENTENCES = [("Alice joined Acme in Paris.", [("entity", 0, 5, "PER"), ("entity", 13, 17, "ORG"),
                                              ("entity", 21, 26, "LOC"), ("phi", 0, 5, "NAME")]),
             ("Bob left Initech for Berlin.", [("entity", 0, 3, "PER"), ("entity", 9, 16, "ORG"),
                                               ("entity", 21, 27, "LOC"), ("phi", 0, 3, "NAME")]),
             ("Carol met Dave at Globex.", [("entity", 0, 5, "PER"), ("entity", 10, 14, "PER"),
                                            ("entity", 18, 24, "ORG")]),
             ("Patient 4411 was seen by Eve.", [("phi", 8, 12, "ID"), ("entity", 25, 28, "PER"),
                                                ("phi", 25, 28, "NAME")])] * 3


def region(text, control, start, end, labels):
    return {"from_name": control, "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": labels}}


def result_of(text, spans):
    """Label Studio results for spans; the same range in phi with two labels is one region (choice=multiple)."""
    grouped = {}
    for control, start, end, label in spans:
        grouped.setdefault((control, start, end), []).append(label)
    return [region(text, c, s, e, labels) for (c, s, e), labels in grouped.items()]


def test_span_project_end_to_end(label_studio, ls_admin):
    client = ls_admin
    members = make_members(client, f"span-{uuid.uuid4().hex[:8]}-", 4)
    (a, _), (b, _), (c, _), (reviewer, _) = members
    tasks = []
    for i, (text, spans) in enumerate(SENTENCES):
        noisy = list(spans)
        if i == 2:       # annotator c calls Dave an ORG: a label disagreement on one task
            noisy = [(ct, s, e, "ORG" if (s, e) == (10, 14) else lab) for ct, s, e, lab in spans]
        if i == 0:       # annotator c also gives "Alice" both phi labels (choice="multiple")
            noisy = spans + [("phi", 0, 5, "ID")]
        tasks.append({"data": {"body": text}, "annotations": [
            {"result": result_of(text, spans), "completed_by": a, "ground_truth": False},
            {"result": result_of(text, spans if i % 4 else spans[:-1]), "completed_by": b, "ground_truth": False},
            {"result": result_of(text, noisy), "completed_by": c, "ground_truth": False}]})
    project = client.projects.create(title="relabel spans e2e", label_config=CONFIG)
    task_ids = import_tasks(client, project.id, tasks)
    http = httpx.Client(base_url=label_studio.url, headers={"Authorization": f"Token {label_studio.api_key}"},
                        timeout=120)

    def export(project_id):
        response = http.get(f"/api/projects/{project_id}/export", params={"exportType": "JSON"})
        response.raise_for_status()
        return response.json()

    # init: the config says span project, two controls, one multiple
    xml = client.projects.get(id=project.id).label_config
    assert is_span_config(xml)
    config = parse_span_config(xml)
    assert [(ct.name, ct.multiple) for ct in config.controls] == [("entity", False), ("phi", True)]

    # round 1: read tasks back from Label Studio, long table, consensus
    exported = export(project.id)
    table = span_table(exported, config)
    assert table.problems == ()
    assert len(table.answered) == 3 * len(SENTENCES)
    order = sorted(table.texts)
    index = {t: i for i, t in enumerate(order)}
    texts = [table.texts[t] for t in order]
    spans = table.spans.assign(item=table.spans["task"].map(index))
    answered = table.answered.assign(item=table.answered["task"].map(index))
    result = relabel.span_consensus(texts, spans, answered=answered, model=None)
    consensus = result.spans.assign(task=[order[i] for i in result.spans["item"]])
    dave = consensus[(consensus["task"] == task_ids[2]) & (consensus["start"] == 10)]
    assert dave["label"].tolist() == ["PER"]                       # two of three say PER
    alice_phi = consensus[(consensus["task"] == task_ids[0]) & (consensus["control"] == "phi")]
    assert alice_phi["label"].tolist() == ["NAME"]                 # one annotator's extra ID is outvoted

    # review tasks: each annotator's spans and the consensus as predictions, nothing preselected
    worst = result.items.sort_values("quality").iloc[0]
    review_task_id = order[int(worst["item"])]
    review = client.projects.create(title="relabel spans review", label_config=span_review_label_config(xml, config),
                                    show_collab_predictions=False)
    text = table.texts[review_task_id]
    payload = span_review_task(review_task_id, {"body": text},
                               regions_by_annotator(table.spans, review_task_id, text, config, table.answered),
                               consensus_regions(consensus, table.texts, config).get(review_task_id, []),
                               reason="annotators disagree on the label", quality=float(worst["quality"]),
                               round_number=1)
    (pushed,) = import_tasks(client, review.id, [payload])
    shown = http.get(f"/api/tasks/{pushed}").json()
    versions = sorted(p["model_version"] for p in shown["predictions"])
    assert versions == sorted([CONSENSUS_VERSION] + [annotator_version(w) for w in (a, b, c)])
    assert shown["annotations"] == []                              # nothing preselected as an answer

    # the reviewer corrects the item: their spans are the decision
    truth_spans = dict(SENTENCES)[text]
    corrected = result_of(text, truth_spans)
    client.annotations.create(id=pushed, result=corrected, completed_by=reviewer, ground_truth=False,
                              request_options={"max_retries": 0})
    review_table = span_table(export(review.id), config)
    gold = review_table.spans.assign(item=index[review_task_id])[["item", "control", "start", "end", "label"]]

    # round 2 with the reviewer's spans as gold
    result2 = relabel.span_consensus(texts, spans, answered=answered, model=None, gold=gold,
                                     gold_items=[index[review_task_id]])
    mine = result2.spans[result2.spans["item"] == index[review_task_id]]
    assert sorted(map(tuple, mine[["control", "start", "end", "label"]].values.tolist())) == sorted(truth_spans)
    assert bool(result2.items.loc[index[review_task_id], "reviewed"])

    def snapshot_export(project_id):
        """Label Studio's own JSON export, as a snapshot that serialises predictions in full (the plain export
        lists prediction ids only)."""
        created = http.post(f"/api/projects/{project_id}/exports/",
                            json={"title": "relabel e2e", "serialization_options": {"predictions": {"only_id": False}}})
        created.raise_for_status()
        response = http.get(f"/api/projects/{project_id}/exports/{created.json()['id']}/download",
                            params={"exportType": "JSON"})
        response.raise_for_status()
        return response.json()

    # write-back as predictions; Label Studio's own export shows them
    consensus2 = result2.spans.assign(task=[order[i] for i in result2.spans["item"]])
    regions = consensus_regions(consensus2, table.texts, config)
    quality = {order[i]: q for i, q in zip(result2.items["item"], result2.items["quality"])}
    client.projects.import_predictions(id=project.id, request=writeback_predictions(regions, quality, 2))
    after = {t["id"]: t for t in snapshot_export(project.id)}
    reviewed_predictions = after[review_task_id]["predictions"]
    assert any(isinstance(p, dict) and p.get("model_version") == writeback_version(2) for p in reviewed_predictions), \
        reviewed_predictions
    written = next(p for p in reviewed_predictions if p.get("model_version") == writeback_version(2))
    got = sorted((r["from_name"], r["value"]["start"], r["value"]["end"], tuple(r["value"]["labels"]))
                 for r in written["result"])
    want = sorted((ct, s, e, (lab,)) for ct, s, e, lab in truth_spans)
    assert got == want

    # span agreement for the report: per annotator and pairwise
    stats = result2.annotators.set_index("annotator")
    assert stats.loc[str(a), "exact_f1"] >= stats.loc[str(c), "exact_f1"]   # ids as exported, as strings
