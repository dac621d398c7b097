"""Small projects: relabel's annotation-only consensus against a majority vote, with and without the majority guard.

    python benchmarks/majority_guard.py --data-dir ../shared/data

Every set of ``crowd/`` and Snow 2008 (real annotators, ground truth), as a small project: ``--reps`` random
subsets of ``n`` items with ground truth, each with all of its items' annotations (so each annotator has only the
labels of those items, as in a small project), and the whole set. Per subset: accuracy against the truth of

* the majority vote, counting a tie as the tied classes' share (a random tie-break's expected accuracy);
* the fitted Dawid-Skene labels as they were before the guard (``allow_overrides="never"``: the EM's most
  probable class among those the item's annotators gave, free to overturn a majority);
* relabel's default (``consensus``), which overturns a strict plurality only when held-out annotations side
  with the fitted annotator weights (relabel.scoring.majority_evidence).

Printed: mean difference from the majority vote in accuracy points with its standard error over the subsets,
the subsets where it is below the majority vote, and the guard's verdicts.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shared_data import CROWD_SETS, SNOW_SETS, load_crowd, load_snow  # noqa: E402
from relabel.scoring.annotations import Annotations  # noqa: E402
from relabel.scoring.consensus_em import consensus  # noqa: E402


def subset(a: Annotations, truth: np.ndarray, items: np.ndarray) -> tuple[Annotations, np.ndarray]:
    rows = np.isin(a.item, items)
    sub = Annotations.from_records(a.item_ids[a.item[rows]], a.annotator_ids[a.annotator[rows]], a.label[rows],
                                   classes=list(range(a.n_classes)))
    where = {v: i for i, v in enumerate(a.item_ids)}
    return sub, truth[np.array([where[v] for v in sub.item_ids])]


def accuracies(a: Annotations, truth: np.ndarray) -> tuple[float, float, float, str]:
    ok = truth >= 0
    votes = a.vote_counts()
    tied = votes == votes.max(axis=1, keepdims=True)
    majority = (tied[np.arange(a.n_items), np.maximum(truth, 0)] / tied.sum(axis=1))[ok].mean()
    before = np.asarray(consensus(a, allow_overrides="never").consensus_label)
    default = consensus(a)
    after = np.asarray(default.consensus_label)
    return majority, (before == truth)[ok].mean(), (after == truth)[ok].mean(), default.majority_evidence.regime


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--sizes", default="20,50,100,300", help="items per small project (the whole set is added)")
    parser.add_argument("--reps", type=int, default=20, help="random subsets per size")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] + [0]
    print("| set | items | subsets | fitted DS − majority (pts) | below majority | relabel default − majority (pts) "
          "| below majority | guard's verdicts |\n|---|---|---|---|---|---|---|---|")
    for folder, name in [("crowd", n) for n in CROWD_SETS] + [("snow2008", n) for n in SNOW_SETS]:
        a, truth = load_crowd(args.data_dir, name) if folder == "crowd" else load_snow(args.data_dir, name)
        known = np.flatnonzero(truth >= 0)
        for n in sizes:
            if n > known.size:
                continue
            rng = np.random.default_rng(n)
            rows, verdicts = [], collections.Counter()
            for _ in range(args.reps if n else 1):
                sub, t = subset(a, truth, np.sort(rng.choice(known, size=n, replace=False))) if n else (a, truth)
                majority, before, after, regime = accuracies(sub, t)
                rows.append((100 * (before - majority), 100 * (after - majority)))
                verdicts[regime] += 1
            d = np.array(rows)
            se = d.std(axis=0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.zeros(2)
            print(f"| {name} | {n or f'all {a.n_items:,}'} | {len(d)} | {d[:, 0].mean():+.2f} ± {se[0]:.2f} | "
                  f"{int((d[:, 0] < -1e-9).sum())} | {d[:, 1].mean():+.2f} ± {se[1]:.2f} | "
                  f"{int((d[:, 1] < -1e-9).sum())} | {', '.join(f'{k} {v}' for k, v in verdicts.items())} |",
                  flush=True)


if __name__ == "__main__":
    main()
