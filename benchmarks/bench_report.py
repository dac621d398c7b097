"""How long `relabel report` takes and how big the page is, for a store of 100,000 items and 3 rounds.

    .venv/bin/python benchmarks/bench_report.py                 # 100,000 items (the acceptance size)
    .venv/bin/python benchmarks/bench_report.py --items 20000

The store is synthetic but written through the real Store API (bind_project, apply_pull, save_scores,
save_selection, record_pushed, record_decisions), with 3 annotations per item from 25 annotators, so the report
reads exactly what a real round leaves behind. The baseline in the same run is `relabel status` over the same
store (Loop.status), so the printed ratio says what the report costs compared with the cheapest command that
reads every round; the acceptance limits (under 20 s, under 5 MB) are checked and printed.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.records import AnnotationRecord, Item, ProjectInfo, Pull, PushedTask, ReviewAnswer  # noqa: E402
from relabel.report.page import write_report  # noqa: E402
from relabel.loop.rounds import Loop  # noqa: E402
from relabel.loop.store import Store  # noqa: E402

CLASSES = ("business", "entertainment", "politics", "sport", "tech")
LIMIT_SECONDS = 20.0
LIMIT_BYTES = 5_000_000


def build_synthetic_store(path: Path, n_items: int, n_rounds: int = 3, n_annotators: int = 25, per_item: int = 3,
                          budget: int = 200, seed: int = 0) -> Store:
    """A store of ``n_items`` items and ``n_rounds`` pushed rounds whose reviews were answered, via the Store API."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    store = Store(path)
    store.bind_project(ProjectInfo(project_id=1, title="Synthetic news", classes=CLASSES, label_tag="topic",
                                   text_field="text", n_tasks=n_items, n_annotations=n_items * per_item))
    store.set_meta("label_studio_url", "http://localhost:8080")
    truth = rng.integers(0, k, n_items)
    annotators = [f"annotator{a:02d}@example.com" for a in range(n_annotators)]
    skill = rng.uniform(0.6, 0.97, n_annotators)
    who = np.stack([rng.choice(n_annotators, per_item, replace=False) for _ in range(n_items)])
    right = rng.random((n_items, per_item)) < skill[who]
    given = np.where(right, truth[:, None], (truth[:, None] + rng.integers(1, k, (n_items, per_item))) % k)
    items = [Item(item_id=str(i), data={"text": f"news story {i} " + CLASSES[truth[i]] * 3},
                  text=f"news story {i} about {CLASSES[truth[i]]}, " + "words " * 30, updated_at="2026-01-01")
             for i in range(n_items)]
    records = [AnnotationRecord(annotation_id=f"{i}-{j}", item_id=str(i), annotator_id=annotators[who[i, j]],
                                label=CLASSES[given[i, j]], created_at="2026-01-01", updated_at="2026-01-01")
               for i in range(n_items) for j in range(per_item)]
    store.apply_pull(Pull(items=items, annotations=records, cursor="2026-01-01"))
    votes = np.zeros((n_items, k), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(n_items), per_item), given.ravel()), 1)
    majority = votes.argmax(axis=1)
    reviewed: dict[int, int] = {}
    for rnd in range(1, n_rounds + 1):
        quality = np.clip(votes.max(axis=1) / per_item - rng.uniform(0, 0.3, n_items), 0, 1)
        done = np.zeros(n_items, dtype=bool)
        done[list(reviewed)] = True
        item_rows = [{"item_id": str(i), "labelled": 1, "consensus_label": CLASSES[majority[i]],
                      "majority_label": CLASSES[majority[i]], "quality": float(quality[i]),
                      "agreement": float(votes[i].max() / per_item), "num_annotations": per_item,
                      "posterior": float(quality[i]), "model_label": CLASSES[truth[i]], "model_prob": 0.8,
                      "label_issue": int(majority[i] != truth[i]), "active_score": float(quality[i]),
                      "reviewed": int(done[i]),
                      "final_label": CLASSES[reviewed.get(i, majority[i])]} for i in range(n_items)]
        annotator_rows = [{"annotator_id": a, "quality": float(np.clip(skill[n] + rng.normal(0, 0.02), 0, 1)),
                           "agreement": float(skill[n]), "worst_class": CLASSES[n % k],
                           "num_labels": int(np.sum(who == n)), "weight": 1.0} for n, a in enumerate(annotators)]
        joint = np.full((k, k), n_items // (10 * k * k)) + np.diag(np.full(k, n_items // k))
        stats = {"annotator_confusion": joint.tolist(), "confident_joint": joint.tolist(),
                 "noise_matrix": (joint / joint.sum(axis=0)).tolist(), "py": [1 / k] * k}
        store.save_scores({"round": rnd, "status": "scored", "method": "synthetic", "items": n_items,
                           "labelled_items": n_items, "annotations": n_items * per_item,
                           "annotators": n_annotators, "expected_remaining_errors": float(np.sum(1 - quality[~done])),
                           "label_issues": int(np.sum(majority != truth)), "scored_at": f"2026-01-0{rnd}T00:00:00",
                           "class_stats": json.dumps(stats)}, item_rows, annotator_rows, [])
        order = np.flatnonzero(~done)[np.argsort(quality[~done], kind="stable")][:budget]
        selection = [{"item_id": str(i), "rank": n, "quality": float(quality[i]), "reason": f"quality {quality[i]:.2f}",
                      "suggested": CLASSES[majority[i]]} for n, i in enumerate(order)]
        store.save_selection(rnd, selection, budget=budget, mode="project")
        tasks = [PushedTask(item_id=str(i), round=rnd, target_project=2, task_id=rnd * 10 ** 7 + int(i), mode="project")
                 for i in order]
        store.record_pushed(rnd, tasks, selection, mark_pushed=True)
        store.record_decisions([ReviewAnswer(item_id=t.item_id, round=rnd, task_id=t.task_id, reviewer="lead@example.com",
                                             label=CLASSES[truth[int(t.item_id)]], answered_at=f"2026-01-0{rnd}T12:00:00",
                                             annotation_id=f"r{t.task_id}") for t in tasks])
        reviewed.update({int(t.item_id): int(truth[int(t.item_id)]) for t in tasks})
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = build_synthetic_store(Path(tmp) / "relabel.db", args.items, args.rounds)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        Loop(store).status()
        baseline = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = write_report(store, Path(tmp) / "report.html")
        seconds = time.perf_counter() - t0
        store.close()
    print(f"store: {args.items:,} items, {args.rounds} rounds, built in {built:.1f} s")
    print(f"baseline `relabel status`: {baseline:.2f} s")
    print(f"report (round {summary.round}): {seconds:.2f} s = {seconds / baseline:.1f}x status; "
          f"{summary.bytes / 1e6:.2f} MB, {summary.items_listed} items listed")
    print(f"limits: time < {LIMIT_SECONDS:.0f} s {'OK' if seconds < LIMIT_SECONDS else 'EXCEEDED'}; "
          f"size < {LIMIT_BYTES / 1e6:.0f} MB {'OK' if summary.bytes < LIMIT_BYTES else 'EXCEEDED'}")


if __name__ == "__main__":
    main()
