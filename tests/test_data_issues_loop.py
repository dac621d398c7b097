"""Data issues in the loop (issue 25), against the in-memory fake of Label Studio: a planted duplicate pair with
conflicting labels and an out-of-domain text reach review with their reasons; a reviewer's flag takes the item out
of scoring in round 2 and the export shows it."""
from __future__ import annotations

from connectors.records import AnnotationRecord, Item, ReviewAnswer
from relabel.config import ReviewSettings
from relabel.loop.rounds import Loop
from relabel.loop.store import Store
from tests.test_rounds import MODEL, FakeLabelStudio

OUT_OF_DOMAIN = ("Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
                 "labore et dolore magna aliqua quis nostrud exercitation ullamco laboris nisi aliquip")


class FlaggingFake(FakeLabelStudio):
    """The fake, plus a planted duplicate pair labelled two ways, an out-of-domain text, and flags in answers."""

    def __init__(self):
        super().__init__(n_items=90, noise=0.05, seed=1)
        self.flags = {}
        original = self.items[4]
        self.dup = "dup-1"
        self.items.append(Item(item_id=self.dup, data={"text": "  " + original.text.upper()},
                               text="  " + original.text.upper(), updated_at="2026-01-01T00:00:00"))
        self.ood = "ood-1"
        self.items.append(Item(item_id=self.ood, data={"text": OUT_OF_DOMAIN}, text=OUT_OF_DOMAIN,
                               updated_at="2026-01-01T00:00:00"))
        self.original = original.item_id
        wrong = next(c for c in self.classes if c != self.truth[original.item_id])
        for item, label in ((self.dup, wrong), (self.ood, self.classes[0])):
            for who in ("ann@x", "bob@x"):
                self.annotations.append(AnnotationRecord(
                    annotation_id=str(len(self.annotations) + 1), item_id=item, annotator_id=who, label=label,
                    created_at="2026-01-01", updated_at="2026-01-01T00:00:00"))

    def flag(self, task_id, reviewer, label, at="2026-02-01T00:00:00"):
        self.answer(task_id, reviewer, label, at)
        self.flags[(task_id, reviewer)] = True

    def collect(self, pushed):
        return [ReviewAnswer(**{**a.__dict__, "flagged": self.flags.get((a.task_id, a.reviewer), False)})
                for a in super().collect(pushed)]


def test_planted_issues_reach_review_and_a_flag_removes_the_item(tmp_path):
    fake = FlaggingFake()
    loop = Loop(Store(tmp_path / "relabel.db"), fake, model=MODEL,
                review=ReviewSettings(budget=10, min_expected_errors=0))
    loop.round()
    requests = {r.item_id: r for r in fake.last_requests}
    pair = {fake.dup, fake.original}
    conflict = [r for r in requests.values() if r.kind == "conflicting_duplicate"]
    assert len(conflict) == 1 and conflict[0].item_id in pair
    other = (pair - {conflict[0].item_id}).pop()
    assert f"possible duplicate of task {other}, labelled" in conflict[0].reason
    assert requests[fake.ood].kind == "outlier" and "unlike any other item" in requests[fake.ood].reason
    # data issues first among the ranked items (audit items, on by default, are shuffled in anywhere)
    audited = {r["item_id"] for r in loop.store.selection(1) if r["audit"]}
    assert [i for i in requests if i not in audited][0] == conflict[0].item_id

    task = fake.review_tasks[(1, fake.ood)]
    fake.flag(task, "lead@x", fake.classes[0])
    loop.round()
    store = loop.store
    assert store.flagged_items() == {fake.ood}
    assert fake.ood not in {r["item_id"] for r in store.scores(2)}        # out of scoring in round 2
    assert fake.ood not in store.final_labels()
    rows = {r["item_id"]: r for r in loop.export_rows()}
    assert rows[fake.ood]["flagged"] is True and rows[fake.ood]["final_label"] is None
    assert rows[fake.ood]["source"] == "flagged"
    assert rows[fake.dup]["conflicting_duplicate"] is True and fake.original in rows[fake.dup]["duplicate_of"]
    assert all(r["outlier_score"] is not None for iid, r in rows.items() if iid != fake.ood)

    from relabel.report.page import render_report
    page = render_report(store)
    assert "<h2>Data issues</h2>" in page and "1 items flagged as bad data" in page
    assert "conflicting</td>" in page and fake.dup in page


def test_data_issues_off_sends_label_issues_only(tmp_path):
    fake = FlaggingFake()
    loop = Loop(Store(tmp_path / "relabel.db"), fake, model=MODEL,
                review=ReviewSettings(budget=10, min_expected_errors=0, data_issues=()))
    loop.round()
    assert {r.kind for r in fake.last_requests} == {"label"}
