"""How right are the final labels, and does the review queue find the wrong ones? Real annotators, real models.

    python benchmarks/quality.py --data-dir ../shared/data            # everything, ~10 minutes on 2 cores
    python benchmarks/quality.py --only snow                          # one section
    python benchmarks/quality.py --out benchmarks/results/quality.json

Sections (each prints a markdown table; all are written to --out as JSON):
* cifar10n: CIFAR-10N (50,000 images, 747 real annotators, clean labels) with each model's out-of-fold
  pred_probs (trained on the majority vote: pred_probs_aggre; on the 40%-noise label: pred_probs_worst), with
  the annotations thinned (seeded) to 3, 2 and 1 per item. Methods: majority vote, Dawid-Skene, CROWDLAB
  (relabel's cleanlab-compatible one), cleanlab's own CROWDLAB run in this script, the model alone, and
  relabel's default consensus. Metrics: consensus accuracy against the clean label; AUROC and AUPRC of the
  quality score for finding wrong consensus labels (with 1 label per item, "majority vote" is the given label); Spearman correlation of each method's annotator quality
  with the annotator's true accuracy (annotators with >= 20 labels).
* snow: Snow et al. 2008 RTE (with a text model trained on the text pairs, out-of-fold), TEMP and WSD
  (annotations only): consensus accuracy against gold.
* rounds: 5 simulated relabel rounds on CIFAR-10N (3 labels per item, resnet18) with 500 reviews per round by an
  expert who answers with the clean label; selection by relabel's default, lowest annotator agreement,
  ActiveLab and random; final labels are the reviewer's where reviewed and relabel's consensus elsewhere (the
  same for every strategy, so only the selection differs). Per round: wrong final labels left and the share of
  reviewed items that were really wrong.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.datasets import CIFAR10N_MODELS, default_data_dir, load_cifar10n  # noqa: E402
from relabel.active import get_active_learning_scores  # noqa: E402
from relabel.annotations import Annotations  # noqa: E402
from relabel.consensus import consensus, crowdlab, get_majority_vote_label  # noqa: E402
from relabel.dawid_skene import dawid_skene  # noqa: E402

MIN_LABELS_FOR_SPEARMAN = 20


# ---- metrics ------------------------------------------------------------------------------------------------
def auroc(is_wrong: np.ndarray, quality: np.ndarray) -> float:
    """Probability that a wrong label scores lower than a right one (ties count half): Mann-Whitney U."""
    from scipy.stats import rankdata

    pos = np.asarray(is_wrong, bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(-np.asarray(quality, float))      # low quality = high rank = "predicted wrong"
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(is_wrong: np.ndarray, quality: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(is_wrong, -np.asarray(quality, float))) if is_wrong.any() else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok]).statistic) if ok.sum() > 2 else float("nan")


def true_annotator_accuracy(a: Annotations, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.bincount(a.annotator, minlength=a.n_annotators)
    right = np.bincount(a.annotator, weights=(a.label == truth[a.item]), minlength=a.n_annotators)
    return right / np.maximum(n, 1), n


def thin(a: Annotations, per_item: int, seed: int) -> Annotations:
    """Keep ``per_item`` randomly chosen annotations of every item (seeded)."""
    if per_item >= int(a.num_annotations().max()):
        return a
    key = np.random.default_rng(seed).random(len(a))
    order = np.lexsort((key, a.item))                  # by item, random within item
    rank = np.empty(len(a), np.intp)
    starts = np.r_[0, np.cumsum(a.num_annotations())[:-1]]
    rank[order] = np.arange(len(a)) - np.repeat(starts, a.num_annotations())
    return a.select(rank < per_item)


# ---- methods: each returns (consensus, quality score, annotator quality or None) -----------------------------
def m_majority(a, p):
    votes = a.vote_counts()
    label = get_majority_vote_label(a)
    agreement = votes[np.arange(a.n_items), label] / votes.sum(axis=1)
    per_annotation = a.label == label[a.item]
    q = np.bincount(a.annotator, weights=per_annotation, minlength=a.n_annotators) / np.maximum(
        np.bincount(a.annotator, minlength=a.n_annotators), 1)
    return label, agreement, q


def m_dawid_skene(a, p):
    r = dawid_skene(a)
    label = r.consensus_label
    accuracy = np.einsum("k,jkk->j", r.prior, r.confusion)
    return label, r.posterior[np.arange(a.n_items), label], accuracy


def m_crowdlab(a, p):
    r = crowdlab(a, p)
    return r.consensus_label, r.consensus_quality_score, r.annotator_quality


def m_cleanlab(a, p):
    from cleanlab.multiannotator import get_label_quality_multiannotator

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        r = get_label_quality_multiannotator(a.to_dense(), p, verbose=False, return_detailed_quality=False)
    stats = r["annotator_stats"].reindex(np.arange(a.n_annotators))
    lq = r["label_quality"]
    return (lq["consensus_label"].to_numpy(), lq["consensus_quality_score"].to_numpy(),
            stats["annotator_quality"].to_numpy(dtype=float))


def m_model(a, p):
    label = p.argmax(axis=1)
    return label, p.max(axis=1), None


def m_relabel(a, p):
    r = consensus(a, p)
    return r.consensus_label, r.consensus_quality_score, r.annotator_quality


METHODS = {"majority vote": m_majority, "Dawid-Skene": m_dawid_skene, "CROWDLAB (relabel)": m_crowdlab,
           "CROWDLAB (cleanlab)": m_cleanlab, "model alone": m_model, "relabel default": m_relabel}


def evaluate(a: Annotations, p, truth, methods) -> list[dict]:
    true_acc, n_labels = true_annotator_accuracy(a, truth)
    enough = n_labels >= MIN_LABELS_FOR_SPEARMAN
    rows = []
    for name in methods:
        started = time.perf_counter()
        try:
            label, quality, annotator_quality = METHODS[name](a, p)
        except ValueError as exc:           # cleanlab and CROWDLAB refuse one label per item
            rows.append({"method": name, "refused": str(exc).splitlines()[0][:80]})
            continue
        wrong = np.asarray(label) != truth
        rows.append({"method": name, "accuracy": float(1 - wrong.mean()), "auroc": auroc(wrong, quality),
                     "auprc": auprc(wrong, quality),
                     "annotator_spearman": (spearman(np.asarray(annotator_quality, float)[enough], true_acc[enough])
                                            if annotator_quality is not None else float("nan")),
                     "seconds": time.perf_counter() - started})
    return rows


def cifar10n_section(data_dir: Path, quick: bool, with_cleanlab: bool) -> list[dict]:
    annotations, clean, _ = load_cifar10n(data_dir)
    results = []
    for kind in ("aggre", "worst"):
        for per_item in (3, 2, 1):
            a = thin(annotations, per_item, seed=per_item)
            for model in (CIFAR10N_MODELS[:2] if quick else CIFAR10N_MODELS):
                p = np.load(Path(data_dir) / "cifar10n" / f"pred_probs_{kind}" / model / "pred_probs.npy")
                # cleanlab's own run (slow: dense matrix) is the reference for the aggre models only.
                methods = [m for m in METHODS if (with_cleanlab and kind == "aggre") or m != "CROWDLAB (cleanlab)"]
                if per_item == 1:
                    methods = [m for m in methods if "CROWDLAB" not in m] + ["CROWDLAB (relabel)"]
                for row in evaluate(a, p, clean, methods):
                    row.update(pred_probs=kind, labels_per_item=per_item, model=model)
                    results.append(row)
                    _print_row(row)
    return results


def _print_row(row: dict) -> None:
    if "refused" in row:
        print(f"| {row.get('pred_probs', '')} | {row.get('labels_per_item', '')} | {row.get('model', '')} | "
              f"{row['method']} | refused: {row['refused']} | | | |", flush=True)
        return
    print(f"| {row.get('pred_probs', '')} | {row.get('labels_per_item', '')} | {row.get('model', '')} | "
          f"{row['method']} | {row['accuracy']:.4f} | {row['auroc']:.4f} | {row['auprc']:.4f} | "
          f"{row['annotator_spearman']:.3f} |", flush=True)


# ---- Snow 2008 ------------------------------------------------------------------------------------------------
def snow_section(data_dir: Path, featurizer: str) -> list[dict]:
    import pandas as pd

    from relabel.model import predict_probs

    results = []
    folder = Path(data_dir) / "snow2008"
    for name in ("rte", "temp", "wsd"):
        df = pd.read_csv(folder / f"{name}.standardized.tsv", sep="\t")
        classes = sorted(df["response"].unique().tolist())
        a = Annotations.from_records(df["orig_id"].to_numpy(), df["!amt_worker_ids"].to_numpy(),
                                     df["response"].to_numpy(), classes=classes)
        gold = df.groupby("orig_id")["gold"].first().reindex(a.item_ids).map(classes.index).to_numpy()
        p = None
        if name == "rte":
            pairs = pd.read_csv(folder / "rte1.tsv", sep="\t").set_index("id").reindex(a.item_ids)
            texts = (pairs["text"].astype(str) + " [SEP] " + pairs["hypothesis"].astype(str)).tolist()
            # The model learns from the majority vote, out-of-fold: it never sees gold.
            p = predict_probs([str(i) for i in a.item_ids], texts, get_majority_vote_label(a), len(classes),
                              {"featurizer": featurizer})
        methods = ["majority vote", "Dawid-Skene", "relabel default"] + (
            ["CROWDLAB (relabel)", "model alone"] if p is not None else [])
        for row in evaluate(a, p, gold, methods):
            row.update(dataset=name, model=featurizer if p is not None else "none (annotations only)")
            results.append(row)
            print(f"| {name} | {row['model']} | {row['method']} | {row['accuracy']:.4f} |", flush=True)
    return results


# ---- simulated relabel rounds ----------------------------------------------------------------------------------
def rounds_section(data_dir: Path, n_rounds: int = 5, budget: int = 500, model: str = "resnet18",
                   seed: int = 0) -> list[dict]:
    annotations, clean, probs = load_cifar10n(data_dir)
    p = probs[model]
    votes = annotations.vote_counts()
    agreement = votes.max(axis=1) / votes.sum(axis=1)
    results = []
    for strategy in ("relabel default", "lowest agreement", "ActiveLab", "random"):
        rng = np.random.default_rng(seed)
        known = np.full(annotations.n_items, -1)
        for rnd in range(1, n_rounds + 1):
            r = consensus(annotations, p, known_labels=known)
            final = np.where(known >= 0, known, r.consensus_label)
            candidates = np.flatnonzero(known < 0)
            if strategy == "relabel default":
                # The chance the final label is wrong, i.e. that a review would change it.
                key = r.posterior[candidates].max(axis=1)
            elif strategy == "lowest agreement":
                key = agreement[candidates]
            elif strategy == "ActiveLab":
                key = get_active_learning_scores(annotations, p)[0][candidates]
            else:
                key = rng.random(candidates.size)
            chosen = candidates[np.argsort(key, kind="stable")[:budget]]
            really_wrong = int((final[chosen] != clean[chosen]).sum())
            known[chosen] = clean[chosen]          # the expert answers with the clean label
            after = consensus(annotations, p, known_labels=known) if rnd == n_rounds else None
            row = {"strategy": strategy, "round": rnd, "wrong_before": int((final != clean).sum()),
                   "reviewed": int(chosen.size), "really_wrong": really_wrong,
                   "precision": really_wrong / chosen.size}
            if after is not None:
                row["wrong_after_last_round"] = int((np.where(known >= 0, known, after.consensus_label) != clean).sum())
            results.append(row)
            print(f"| {strategy} | {rnd} | {row['wrong_before']} | {really_wrong} of {chosen.size} "
                  f"({row['precision']:.0%}) |" + (f" after: {row['wrong_after_last_round']}" if after is not None
                                                   else ""), flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="the shared data folder (default: "
                        "RELABEL_SHARED_DATA or ../shared/data)")
    parser.add_argument("--only", nargs="*", choices=("cifar10n", "snow", "rounds"), default=None)
    parser.add_argument("--quick", action="store_true", help="two models only")
    parser.add_argument("--no-cleanlab", action="store_true", help="skip cleanlab's CROWDLAB (slow)")
    parser.add_argument("--featurizer", default="tfidf", help="text model for Snow RTE")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality.json")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    sections = args.only or ["cifar10n", "snow", "rounds"]
    out = {}
    started = time.perf_counter()
    if "cifar10n" in sections:
        print("\n## CIFAR-10N\n\n| pred_probs | labels/item | model | method | accuracy | AUROC | AUPRC | "
              "annotator Spearman |\n|---|---|---|---|---|---|---|---|")
        out["cifar10n"] = cifar10n_section(data_dir, args.quick, not args.no_cleanlab)
    if "snow" in sections:
        print("\n## Snow 2008\n\n| dataset | model | method | accuracy |\n|---|---|---|---|")
        out["snow"] = snow_section(data_dir, args.featurizer)
    if "rounds" in sections:
        print("\n## Simulated rounds (CIFAR-10N, resnet18, 500 reviews/round)\n\n"
              "| strategy | round | wrong final labels before | reviewed items really wrong |\n|---|---|---|---|")
        out["rounds"] = rounds_section(data_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
