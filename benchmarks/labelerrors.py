"""Reproduce the flagged sets of "Pervasive Label Errors in Test Sets" (Northcutt, Athalye, Mueller, NeurIPS 2021)
with relabel.scoring.confident's primitives, and measure find_label_issues against the human-validated errors.

The paper's rule (see shared/data/README.md): the *uncalibrated* confident joint C gives
n = int(N * (1 - trace(C) / sum(C))); the n items with the lowest normalized margin are flagged. MNIST took n
from prune_by_class instead, and its 100 flagged items are the 100 lowest normalized margins.

    python benchmarks/labelerrors.py                       # data from RELABEL_SHARED_DATA or ../shared/data
    python benchmarks/labelerrors.py --data-dir ../shared/data/label_errors

Validated errors are items Mechanical Turk workers rejected (fewer than 3 of 5 chose the given label). They
are known only among the items the paper flagged, so precision/recall below are measured on that subset:
"recall" = share of validated errors a filter flags, "precision" = share of its flags that are validated
errors among its flags that were checked by people at all.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from relabel.scoring.confident import (  # noqa: E402  (the repo root is put on the path above)
    FILTER_BY,
    compute_confident_joint,
    find_label_issues,
    get_label_quality_scores,
)

# name on disk, mturk file, pred_probs file, and whether the paper took n from prune_by_class.
DATASETS = {
    "mnist": ("mnist_test_set", "mnist_mturk.json", "mnist_test_set_pyx.npy", True),
    "cifar10": ("cifar10_test_set", "cifar10_mturk.json", "cifar10_test_set_pyx.npy", False),
    "cifar100": ("cifar100_test_set", "cifar100_mturk.json", "cifar100_test_set_pyx.float16.npy", False),
    "20news": ("20news_test_set", "20news_mturk.json", "20news_test_set_pyx.npy", False),
    "imdb": ("imdb_test_set", "imdb_mturk.json", "imdb_test_set_pyx.npy", False),
}
# Mechanical Turk: 5 workers per item; fewer than this many choosing the given label = validated error.
VALIDATED_BELOW = 3


def default_data_dir() -> Path:
    """RELABEL_SHARED_DATA/label_errors, else ../shared/data/label_errors beside the repository (read at call time)."""
    shared = os.environ.get("RELABEL_SHARED_DATA")
    return (Path(shared) if shared else REPO.parent / "shared" / "data") / "label_errors"


@dataclass
class Dataset:
    name: str
    labels: np.ndarray
    pred_probs: np.ndarray
    flagged: set          # row indices the paper flagged (every entry of the mturk json)
    validated: set        # the flagged rows people confirmed as label errors
    n_from_prune_by_class: bool


def load(data_dir: Path, name: str) -> Dataset:
    stem, mturk_file, probs_file, by_class = DATASETS[name]
    labels = np.load(data_dir / "labels" / f"{stem}_original_labels.npy").astype(np.int64)
    pred_probs = np.load(data_dir / "pred_probs" / probs_file)
    # The published IMDB probabilities were clipped to [1e-5, 1 + 1e-5] (2,744 entries are 1.00001), which
    # relabel (like cleanlab) rejects as not probabilities; clip those to 1 (rows then sum to 1 within 2e-5).
    pred_probs = np.clip(pred_probs, 0, 1)
    with open(data_dir / "mturk" / mturk_file) as f:
        entries = json.load(f)
    row_of = _imdb_rows(data_dir) if name == "imdb" else None  # IMDB ids are file names
    rows = [row_of[e["id"]] if row_of else int(e["id"]) for e in entries]
    flagged = set(rows)
    validated = {r for r, e in zip(rows, entries) if e["mturk"]["given"] < VALIDATED_BELOW}
    return Dataset(name, labels, pred_probs, flagged, validated, by_class)


def _imdb_rows(data_dir: Path) -> dict:
    with gzip.open(data_dir / "texts" / "imdb_test_texts.jsonl.gz", "rt") as f:
        return {json.loads(line)["file"].removesuffix(".txt"): json.loads(line)["idx"] for line in f}


def paper_flags(ds: Dataset) -> tuple[np.ndarray, int]:
    """Indices the paper's rule flags with this library (lowest normalized margins first) and the rule's n."""
    if ds.n_from_prune_by_class:
        n = int(find_label_issues(ds.labels, ds.pred_probs, filter_by="prune_by_class").sum())
    else:
        joint = compute_confident_joint(ds.labels, ds.pred_probs, calibrate=False)
        n = int(len(ds.labels) * (1 - np.trace(joint) / joint.sum()))
    margins = get_label_quality_scores(ds.labels, ds.pred_probs, method="normalized_margin")
    # For MNIST the paper showed reviewers a round 100 lowest margins, not the rule's n.
    n_shown = len(ds.flagged) if ds.n_from_prune_by_class else n
    return np.argsort(margins, kind="stable")[:n_shown], n


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the label_errors folder (default: $RELABEL_SHARED_DATA/label_errors or "
                             "../shared/data/label_errors beside the repository)")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    if not data_dir.is_dir():
        parser.error(f"{data_dir} is not a folder; pass --data-dir pointing at shared/data/label_errors.")

    print("Paper's rule with relabel.scoring.confident (uncalibrated joint -> n; n lowest normalized margins)")
    print(f"{'dataset':9s} {'N':>6s} {'K':>4s} {'rule n':>7s} {'flagged':>8s} {'paper':>6s} {'overlap':>8s} "
          f"{'validated':>9s} {'found':>6s}")
    loaded = []
    for name in args.datasets:
        ds = load(data_dir, name)
        loaded.append(ds)
        flags, n = paper_flags(ds)
        ours = set(flags.tolist())
        print(f"{name:9s} {len(ds.labels):6d} {ds.pred_probs.shape[1]:4d} {n:7d} {len(ours):8d} {len(ds.flagged):6d} "
              f"{len(ours & ds.flagged):8d} {len(ds.validated):9d} {len(ours & ds.validated):6d}")
    print("(MNIST: 'rule n' = prune_by_class count, which is also what cleanlab 2.9.0 gives; the data README's 87 is\n"
          " the predicted_neq_given count. 'flagged' = the 100 lowest margins; the paper showed reviewers 100.)")

    print("\nfind_label_issues vs human-validated errors. Validated errors are known only among the paper's "
          "flagged items,\nso precision = validated / (our flags that people checked); recall = validated found / "
          "all validated.")
    print(f"{'dataset':9s} {'filter_by':22s} {'flags':>6s} {'checked':>8s} {'valid.':>6s} {'precision':>9s} "
          f"{'recall':>7s}")
    for ds in loaded:
        for filter_by in FILTER_BY:
            mask = find_label_issues(ds.labels, ds.pred_probs, filter_by=filter_by)
            ours = set(np.flatnonzero(mask).tolist())
            checked, hits = ours & ds.flagged, ours & ds.validated
            precision = len(hits) / len(checked) if checked else float("nan")
            recall = len(hits) / len(ds.validated) if ds.validated else float("nan")
            print(f"{ds.name:9s} {filter_by:22s} {len(ours):6d} {len(checked):8d} {len(hits):6d} {precision:9.3f} "
                  f"{recall:7.3f}")


if __name__ == "__main__":
    main()
