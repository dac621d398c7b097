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

    python benchmarks/majority_guard.py --scale 1000000

The guard's cost instead: a synthetic annotation-only project of that many items x 3 labels (5 classes, 200
annotators of accuracy 0.45-0.95), the consensus without the guard (``allow_overrides="never"``) and with it (the
default), each in a fresh process: CPU seconds of the call and the process's peak RSS.

    python benchmarks/majority_guard.py --simulate 300

Tiny simulated projects instead (8-59 items, 2, 3 or 5 classes, balanced or skewed, 2-5 annotators of accuracy
0.55-0.95 with uniform errors, 1 to all annotators per item, and a weak model: logits N(0, 1) plus U(0, 2) on the
true class): relabel's default with the model, against the majority vote's expected accuracy, summed by the
model's override regime and split into items with a strict plurality and tied items.
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


def synthetic(n_items: int, per_item: int = 3, k: int = 5, n_annotators: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    accuracy = rng.uniform(0.45, 0.95, n_annotators)
    item = np.repeat(np.arange(n_items), per_item)
    annotator = np.concatenate([rng.choice(n_annotators, per_item, replace=False) for _ in range(n_items)])
    right = rng.random(item.size) < accuracy[annotator]
    label = np.where(right, truth[item], (truth[item] + rng.integers(1, k, item.size)) % k)
    return Annotations(item, annotator, label, np.arange(n_items), np.array([f"a{j}" for j in range(n_annotators)]),
                       tuple(range(k))), truth


def cost(n_items: int, mode: str) -> None:
    """One mode in this process: CPU seconds of the consensus call and the peak RSS."""
    import resource
    import time
    a, truth = synthetic(n_items)
    started = time.process_time()
    result = consensus(a, allow_overrides=mode)
    seconds = time.process_time() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    verdict = result.majority_evidence
    print(f"| {mode} | {seconds:.1f} | {peak:.0f} | {(result.consensus_label == truth).mean():.4f} | "
          f"{'-' if verdict is None else f'{verdict.regime}, {verdict.overturned:,} overturned'} |", flush=True)


def simulate(n_projects: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    sums: dict[str, list] = collections.defaultdict(lambda: [0, 0.0, 0.0, 0])
    for _ in range(n_projects):
        n, k, m = int(rng.integers(8, 60)), int(rng.choice([2, 3, 5])), int(rng.integers(2, 6))
        truth = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 0.5 if rng.random() < 0.5 else 5)))
        accuracy = rng.uniform(0.55, 0.95, size=m)
        items, annotators, labels = [], [], []
        for i in range(n):
            for j in rng.choice(m, size=int(rng.integers(1, m + 1)), replace=False):
                items.append(i)
                annotators.append(f"a{j}")
                labels.append(truth[i] if rng.random() < accuracy[j] else int(rng.integers(k)))
        a = Annotations.from_records(items, annotators, labels, classes=list(range(k)))
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), truth] += rng.uniform(0, 2)
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        where = np.asarray(a.item_ids, dtype=int)
        t = truth[where]
        result = consensus(a, p[where])
        votes = a.vote_counts()
        tied = votes == votes.max(axis=1, keepdims=True)
        strict = tied.sum(axis=1) == 1
        right = result.consensus_label == t
        row = sums[result.override_evidence.regime]
        row[0] += 1
        row[1] += float((right & strict).sum() - ((votes.argmax(axis=1) == t) & strict).sum())
        row[2] += float(right[~strict].sum() - (tied[np.arange(n), t] / tied.sum(axis=1))[~strict].sum())
        row[3] += n
    print("| model's override regime | projects | items | strict pluralities: relabel − vote (items) | ties: relabel − "
          "a coin's expected (items) |\n|---|---|---|---|---|")
    for regime, (projects, strict_diff, tie_diff, items) in sums.items():
        print(f"| {regime} | {projects} | {items:,} | {strict_diff:+.0f} | {tie_diff:+.1f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--sizes", default="20,50,100,300", help="items per small project (the whole set is added)")
    parser.add_argument("--reps", type=int, default=20, help="random subsets per size")
    parser.add_argument("--scale", type=int, default=0, help="time the guard on this many synthetic items instead")
    parser.add_argument("--simulate", type=int, default=0, help="this many tiny simulated projects instead")
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)     # one --scale mode, in a child process
    args = parser.parse_args(argv)
    if args.mode:
        return cost(args.scale, args.mode)
    if args.simulate:
        return simulate(args.simulate)
    if args.scale:
        import subprocess
        print(f"{args.scale:,} items x 3 labels, annotation only\n\n| allow_overrides | CPU s | peak RSS MB | accuracy | "
              "guard |\n|---|---|---|---|---|", flush=True)
        for mode in ("never", "earned"):
            subprocess.run([sys.executable, __file__, "--data-dir", str(args.data_dir), "--scale", str(args.scale),
                            "--mode", mode], check=True)
        return
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
