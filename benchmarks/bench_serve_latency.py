"""How long after the last review answer of a drained queue the next batch is pushed: relabel's own share.

    python benchmarks/bench_serve_latency.py                      # 1,000 IMDB reviews, 4 rounds (quick)
    python benchmarks/bench_serve_latency.py --n 10000 --rounds 10

What it runs: ``--n`` IMDB reviews (../shared/data/label_errors/texts), each labelled by 3 of 5 simulated
annotators (15% of their labels wrong), in a store driven through relabel's Loop with an in-process stand-in for
Label Studio (tests/test_rounds.FakeLabelStudio: pushing and collecting are list operations). Round 1 runs; then
each round a reviewer answers every task of the batch with the true label. ``prefit`` (what `relabel serve` does
while reviewers answer) fits the next round's model after all but the last answer; then the last answer comes,
and the clock runs from there through collect and round (pull, score, select, push). ``cold``: the same without
the model fitted ahead. Both variants run on the same data, alternating round by round is not possible (each
has its own store), so they run one after the other; the load average is printed.

It measures relabel's part of the issue's latency only: Label Studio's webhook, its API calls and the network are
not in it (the real connector pushes a 50-task batch in a few HTTP calls, benchmarks/bench_label_studio.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from benchmarks.shared_data import label_errors_dir  # noqa: E402


def imdb_fake(n: int, seed: int):
    from connectors.records import Item
    from test_rounds import CLASSES, FakeLabelStudio
    with gzip.open(label_errors_dir() / "texts" / "imdb_test_texts.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(rows), size=n, replace=False)
    names = tuple(CLASSES[:2])       # IMDB's negative and positive under the stand-in's class names
    fake = FakeLabelStudio(n_items=n, classes=names, seed=seed,
                           annotators=tuple(f"a{i}@x" for i in range(5)))
    # Real review texts, and every simulated annotation re-drawn around the review's own label.
    truth = {}
    for item, row in zip(fake.items, (rows[i] for i in pick)):
        truth[item.item_id] = names[row["label"]]
        item_text = row["text"]
        fake.items[fake.items.index(item)] = Item(item_id=item.item_id, data={"text": item_text}, text=item_text,
                                                  updated_at=item.updated_at)
    for k, a in enumerate(fake.annotations):
        right = rng.random() > 0.15
        label = truth[a.item_id] if right else names[1 - names.index(truth[a.item_id])]
        fake.annotations[k] = dataclasses.replace(a, label=label)
    fake.truth = truth
    return fake


def run(variant: str, args) -> list[tuple[float, float]]:
    from relabel.config import ReviewSettings
    from relabel.loop.rounds import Loop
    from relabel.loop.store import Store
    fake = imdb_fake(args.n, args.seed)
    out = []
    with tempfile.TemporaryDirectory(prefix="relabel-serve-") as tmp:
        loop = Loop(Store(Path(tmp) / "relabel.db"), fake, model={"featurizer": "tfidf"},
                    review=ReviewSettings(budget=args.budget, min_expected_errors=0))
        loop.round()
        for rnd in range(2, args.rounds + 1):
            tasks = loop.store.review_tasks(loop.store.latest_round()["round"])
            if not tasks:
                break
            for t in tasks[:-1]:
                fake.answer(t["task_id"], "eve@x", fake.truth[t["item_id"]], at=f"2026-02-{rnd:02d}T00:00:00")
            if variant == "prefit":
                loop.collect()
                loop.prefit()       # the worker does this while the last answers are pending
            last = tasks[-1]
            fake.answer(last["task_id"], "eve@x", fake.truth[last["item_id"]], at=f"2026-02-{rnd:02d}T00:00:01")
            wall, cpu = time.perf_counter(), time.process_time()
            loop.collect()
            summary = loop.round()
            out.append((time.perf_counter() - wall, time.process_time() - cpu))
            print(f"  {variant} round {rnd}: {out[-1][0]:.1f} s wall, {out[-1][1]:.1f} s CPU; "
                  f"{summary.score.model if summary.score else ''}", flush=True)
        loop.close()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"{args.n} IMDB reviews, {args.rounds} rounds, batches of {args.budget} (load average "
          f"{os.getloadavg()[0]:.1f})", flush=True)
    results = {v: run(v, args) for v in ("prefit", "cold")}
    print("\n| variant | rounds timed | median wall s | p95 wall s | median CPU s | p95 CPU s |")
    print("|---|---|---|---|---|---|")
    for v, rows in results.items():
        wall, cpu = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        print(f"| {v} | {len(rows)} | {np.median(wall):.1f} | {np.percentile(wall, 95):.1f} | {np.median(cpu):.1f} | "
              f"{np.percentile(cpu, 95):.1f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
