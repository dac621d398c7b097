"""How right are the final labels, how well do the scores find the wrong ones, and are the confidences honest?

    python benchmarks/quality.py --data-dir ../shared/data            # everything, ~10-15 minutes on 2 cores
    python benchmarks/quality.py --only crowd                         # one section
    python benchmarks/quality.py --only cifar10n --models resnet18 --seeds 1 --labels 2   # a subset
    python benchmarks/quality.py --out benchmarks/results/quality.json

Sections (each prints markdown tables; all rows are written to --out as JSON):
* crowd: annotation-only consensus on every set of ``crowd/`` and Snow 2008 (rte, temp, wsd), none of which
  relabel was developed on. Methods: majority vote (quality = winning vote share), crowd-kit's Dawid-Skene,
  GLAD and MACE (on the sets under 10,000 annotations: they are slow), relabel's classic Dawid-Skene and
  relabel's default. Metrics on the items with ground truth: accuracy; AUROC of the quality score for finding
  wrong consensus labels; ECE of the confidence (10 equal-width bins); expected wrong labels (the sum of
  1 - confidence) against the measured count, with relabel's 90% interval.
* cifar10n: CIFAR-10N (50,000 images, 747 real annotators, clean labels) with each model's out-of-fold
  pred_probs (trained on the majority vote: pred_probs_aggre; on the 40%-noise label: pred_probs_worst), the
  annotations thinned to 3, 2 and 1 per item with 3 seeds. Methods: majority vote (with 1 label: the given
  label), CROWDLAB (relabel's, identical to cleanlab 2.9's, see tests/test_consensus_parity.py), the model
  alone, and relabel's default. Also: relabel's overrides (consensus labels no annotator gave) and how often
  they are right, for the default and for "overrides allowed everywhere" (the same with a model). Tables: mean over seeds and the
  worst seed's difference to CROWDLAB.
* snow: Snow 2008 RTE with a text model trained on the text pairs (out-of-fold, on the majority vote).
* rounds: 5 simulated relabel rounds on CIFAR-10N (3 labels per item, resnet18) with 500 reviews per round by an
  expert who answers with the clean label; selection by relabel's default, lowest annotator agreement,
  ActiveLab and random. Per round: wrong final labels left and the share of reviewed items that were really
  wrong.
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

from benchmarks.datasets import (CIFAR10N_MODELS, CROWD_SETS, SNOW_SETS, default_data_dir, load_cifar10n,  # noqa: E402
                                 load_crowd, load_snow)
from relabel.scoring.active import get_active_learning_scores  # noqa: E402
from relabel.scoring.annotations import Annotations  # noqa: E402
from relabel.scoring.consensus import crowdlab, get_majority_vote_label
from relabel.scoring.consensus_em import consensus  # noqa: E402
from relabel.scoring.error_estimate import expected_errors  # noqa: E402
from relabel.scoring.dawid_skene import dawid_skene  # noqa: E402

MIN_LABELS_FOR_SPEARMAN = 20
SEEDS = (1, 2, 3)
# crowd-kit's GLAD (gradient steps per iteration) and MACE (sampling-style EM in pandas) take minutes above
# this many annotations; the issue allows running them on the smaller sets only.
SLOW_METHOD_MAX_ANNOTATIONS = 10_000
SLOW_METHODS = ("crowd-kit GLAD", "crowd-kit MACE")


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


def ece(confidence: np.ndarray, right: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over 10 equal-width confidence bins of |mean confidence - accuracy| x share."""
    confidence = np.asarray(confidence, float)
    which = np.clip(np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(confidence[m].mean() - np.mean(right[m]))
    return float(total)


def auprc(is_wrong: np.ndarray, quality: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(is_wrong, -np.asarray(quality, float))) if is_wrong.any() else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok]).statistic) if ok.sum() > 2 else float("nan")


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


# ---- methods: each returns (consensus, quality score, annotator quality or None[, extra dict]) ------------------
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
    """relabel's default (overrides only where earned), plus what "overrides allowed" would have given: with a
    model, the model's say whether earned or not (``allow_overrides="model"``); without one, labels nobody gave."""
    r = consensus(a, p)
    if p is not None and r.override_evidence.allowed:
        always = r                                       # earned: the default already lets the model decide
    else:
        always = consensus(a, p, allow_overrides="model" if p is not None else "always")
    majority = get_majority_vote_label(a)
    extra = {"override": r.override, "override_always": always.override, "label_always": always.consensus_label,
             "flipped": r.consensus_label != majority,
             "regime": r.override_evidence.regime, "regime_reason": r.override_evidence.reason,
             "settings": {k: v for k, v in r.settings.items() if k != "class_prior"}}
    return r.consensus_label, r.consensus_quality_score, r.annotator_quality, extra


def _crowdkit(name):
    def run(a, p):
        import pandas as pd
        from crowdkit import aggregation

        model = {"DS": lambda: aggregation.DawidSkene(n_iter=100), "GLAD": aggregation.GLAD,
                 "MACE": aggregation.MACE}[name]()
        frame = pd.DataFrame({"task": a.item, "worker": a.annotator, "label": a.label})
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            proba = model.fit_predict_proba(frame)
        proba = proba.reindex(index=np.arange(a.n_items), columns=np.arange(a.n_classes)).fillna(0.0).to_numpy()
        label = proba.argmax(axis=1)
        return label, proba[np.arange(a.n_items), label], None
    return run


METHODS = {"majority vote": m_majority, "crowd-kit Dawid-Skene": _crowdkit("DS"), "crowd-kit GLAD": _crowdkit("GLAD"),
           "crowd-kit MACE": _crowdkit("MACE"), "Dawid-Skene": m_dawid_skene, "CROWDLAB (relabel)": m_crowdlab,
           "CROWDLAB (cleanlab)": m_cleanlab, "model alone": m_model, "relabel default": m_relabel}


def evaluate(a: Annotations, p, truth, methods) -> list[dict]:
    """One row per method. ``truth`` is -1 for items without ground truth: every metric uses the others only."""
    has = truth >= 0
    true_acc, n_labels = true_annotator_accuracy(a, np.where(has, truth, -1))
    enough = n_labels >= MIN_LABELS_FOR_SPEARMAN
    rows = []
    for name in methods:
        started = time.perf_counter()
        try:
            label, quality, annotator_quality, *extra = METHODS[name](a, p)
        except ValueError as exc:           # cleanlab and CROWDLAB refuse one label per item
            rows.append({"method": name, "refused": str(exc).splitlines()[0][:80]})
            continue
        seconds = time.perf_counter() - started
        wrong = (np.asarray(label) != truth)[has]
        q = np.asarray(quality, float)[has]
        interval = expected_errors(q)
        row = {"method": name, "accuracy": float(1 - wrong.mean()), "auroc": auroc(wrong, q),
               "auprc": auprc(wrong, q), "ece": ece(q, ~wrong), "expected_wrong": interval.expected,
               "interval": [interval.low, interval.high], "measured_wrong": int(wrong.sum()),
               "annotator_spearman": (spearman(np.asarray(annotator_quality, float)[enough], true_acc[enough])
                                      if annotator_quality is not None else float("nan")),
               "seconds": seconds}
        if extra:
            info = extra[0]
            for key, labels in (("override", label), ("override_always", info["label_always"])):
                flagged = info[key][has]
                row[f"{key}s"] = int(flagged.sum())
                row[f"{key}s_right"] = int((np.asarray(labels)[has][flagged] == truth[has][flagged]).sum())
            row["accuracy_overrides_always"] = float((info["label_always"][has] == truth[has]).mean())
            # Every label that differs from the majority vote (an override or a broken tie / flipped majority):
            # how many, and how many of them right, against the vote's label on the same items.
            changed = info["flipped"][has]
            row["changed_from_vote"] = int(changed.sum())
            row["changed_from_vote_right"] = int((np.asarray(label)[has][changed] == truth[has][changed]).sum())
            row["regime"], row["regime_reason"] = info["regime"], info["regime_reason"]
            row["settings"] = info["settings"]
        rows.append(row)
    return rows


def true_annotator_accuracy(a: Annotations, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per annotator: accuracy on items with ground truth (truth -1 = unknown) and how many such labels."""
    known = truth[a.item] >= 0
    n = np.bincount(a.annotator[known], minlength=a.n_annotators)
    right = np.bincount(a.annotator[known], weights=(a.label[known] == truth[a.item][known]), minlength=a.n_annotators)
    return right / np.maximum(n, 1), n


# ---- annotation-only sets -----------------------------------------------------------------------------------
CROWD_METHODS = ["majority vote", "crowd-kit Dawid-Skene", "crowd-kit GLAD", "crowd-kit MACE", "Dawid-Skene",
                 "relabel default"]


def crowd_section(data_dir: Path, sets=None) -> list[dict]:
    results = []
    todo = [("crowd", n) for n in CROWD_SETS] + [("snow2008", n) for n in SNOW_SETS]
    for folder, name in todo:
        if sets and name not in sets:
            continue
        a, truth = load_crowd(data_dir, name) if folder == "crowd" else load_snow(data_dir, name)
        methods = [m for m in CROWD_METHODS if m not in SLOW_METHODS or len(a) <= SLOW_METHOD_MAX_ANNOTATIONS]
        for row in evaluate(a, None, truth, methods):
            row.update(dataset=name)
            results.append(row)
            print(f"| {name} | {row['method']} | {row['accuracy']:.4f} | {row['auroc']:.3f} | {row['ece']:.3f} | "
                  f"{row['expected_wrong']:.1f} ({row['interval'][0]}–{row['interval'][1]}) | {row['measured_wrong']} |"
                  f" {_ratio(row)} |", flush=True)
    return results


def vs_vote_table(rows: list[dict], key) -> str:
    """Issue 20's table: relabel's default against majority vote (accuracy difference in points), its
    overrides (labels no annotator gave) made and right, the labels it changed from the vote and how many of
    those are right, and the regime the override evidence put the run in."""
    from collections import defaultdict

    groups = defaultdict(dict)
    for r in rows:
        if "refused" not in r:
            groups[key(r)].setdefault(r["method"], []).append(r)
    lines = ["| set | majority vote / given | relabel default | relabel − vote | overrides right / made | "
             "changed from the vote: right / changed | regime (runs) | with overrides allowed |",
             "|---|---|---|---|---|---|---|---|"]
    for name, by in groups.items():
        rel, vote = by.get("relabel default"), by.get("majority vote")
        if not rel or not vote:
            continue
        acc = float(np.mean([r["accuracy"] for r in rel]))
        v = float(np.mean([r["accuracy"] for r in vote]))
        made, right = sum(r["overrides"] for r in rel), sum(r["overrides_right"] for r in rel)
        changed, changed_right = sum(r["changed_from_vote"] for r in rel), sum(r["changed_from_vote_right"] for r in rel)
        regimes = ", ".join(f"{g} ({sum(r['regime'] == g for r in rel)})" for g in sorted({r["regime"] for r in rel}))
        always = float(np.mean([r["accuracy_overrides_always"] for r in rel]))
        lines.append(f"| {name} | {v:.4f} | {acc:.4f} | {(acc - v) * 100:+.2f} pt{'' if acc >= v - 0.005 else ' BELOW'} "
                     f"| {right} / {made} | {changed_right} / {changed} | {regimes} | {always:.4f} |")
    return "\n".join(lines)


def _ratio(row) -> str:
    return f"{row['expected_wrong'] / row['measured_wrong']:.2f}" if row["measured_wrong"] else "-"


# ---- CIFAR-10N ------------------------------------------------------------------------------------------------
CIFAR_METHODS = ["majority vote", "CROWDLAB (relabel)", "model alone", "relabel default"]


def cifar10n_section(data_dir: Path, models, seeds, labels_per_item, kinds, with_cleanlab: bool) -> list[dict]:
    annotations, clean, _ = load_cifar10n(data_dir)
    results = []
    for kind in kinds:
        for model in models:
            p = np.load(Path(data_dir) / "cifar10n" / f"pred_probs_{kind}" / model / "pred_probs.npy")
            for per_item in labels_per_item:
                # CIFAR-10N has exactly 3 labels per item: at 3 there is nothing to thin, so one seed says it all.
                for seed in (seeds[:1] if per_item >= 3 else seeds):
                    a = thin(annotations, per_item, seed=seed)
                    methods = CIFAR_METHODS + (["CROWDLAB (cleanlab)"] if with_cleanlab and per_item > 1 else [])
                    for row in evaluate(a, p, clean, methods):
                        row.update(pred_probs=kind, labels_per_item=per_item, model=model, seed=seed)
                        results.append(row)
                        _print_row(row)
    return results


def _print_row(row: dict) -> None:
    head = f"| {row['pred_probs']} | {row['labels_per_item']} | {row['model']} | {row['seed']} | {row['method']} |"
    if "refused" in row:
        print(f"{head} refused: {row['refused']} | | | | |", flush=True)
        return
    overrides = (f" {row['overrides_right']}/{row['overrides']} (always: {row['override_alwayss_right']}/"
                 f"{row['override_alwayss']})" if "overrides" in row else "")
    print(f"{head} {row['accuracy']:.4f} | {row['auroc']:.4f} | {row['ece']:.3f} | {row['expected_wrong']:.0f} "
          f"({row['interval'][0]}–{row['interval'][1]}) / {row['measured_wrong']} |{overrides} |", flush=True)


def cifar10n_summary(rows: list[dict]) -> str:
    """Per (pred_probs, labels/item, model): mean over seeds for each method, and relabel vs CROWDLAB."""
    from collections import defaultdict

    groups = defaultdict(list)
    for r in rows:
        if "refused" not in r:
            groups[(r["pred_probs"], r["labels_per_item"], r["model"])].append(r)
    lines = ["| pred_probs | labels/item | model | majority vote / given | CROWDLAB | model alone | relabel default |"
             " AUROC CROWDLAB / relabel | worst seed: relabel - CROWDLAB | expected / measured (relabel) |"
             " 90% interval covers (seeds) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (kind, per, model), rs in sorted(groups.items(), key=lambda x: (x[0][0], -x[0][1], x[0][2])):
        by = defaultdict(list)
        for r in rs:
            by[r["method"]].append(r)
        mean = defaultdict(lambda: float("nan"), {m: float(np.mean([r["accuracy"] for r in v])) for m, v in by.items()})
        auc = defaultdict(lambda: float("nan"), {m: float(np.mean([r["auroc"] for r in v])) for m, v in by.items()})
        crowdlab_by_seed = {r["seed"]: r["accuracy"] for r in by["CROWDLAB (relabel)"]}
        diffs = [r["accuracy"] - crowdlab_by_seed.get(r["seed"], float("nan")) for r in by["relabel default"]]
        rel = by["relabel default"]
        ratio = np.mean([r["expected_wrong"] / max(r["measured_wrong"], 1) for r in rel])
        covers = sum(r["interval"][0] <= r["measured_wrong"] <= r["interval"][1] for r in rel)
        refused = not by["CROWDLAB (relabel)"]          # one label per item: CROWDLAB refuses
        crowdlab_acc = "refuses" if refused else f"{mean['CROWDLAB (relabel)']:.4f}"
        crowdlab_auc = "–" if refused else f"{auc['CROWDLAB (relabel)']:.3f}"
        worst = "–" if refused else f"{min(diffs) * 100:+.2f} pt"
        lines.append(f"| {kind} | {per} | {model} | {mean['majority vote']:.4f} | {crowdlab_acc} | "
                     f"{mean['model alone']:.4f} | {mean['relabel default']:.4f} | {crowdlab_auc} / "
                     f"{auc['relabel default']:.3f} | {worst} | {np.mean([r['expected_wrong'] for r in rel]):.0f} / "
                     f"{np.mean([r['measured_wrong'] for r in rel]):.0f} ({ratio:.2f}) | {covers} of {len(rel)} |")
    return "\n".join(lines)


def crowd_summary(rows: list[dict]) -> str:
    """Acceptance 1 per set: the default against max(majority vote, crowd-kit DS) - 0.5 pt; means of accuracy/AUROC."""
    sets = sorted({r["dataset"] for r in rows}, key=lambda n: (n not in CROWD_SETS, n))
    get = {(r["dataset"], r["method"]): r for r in rows}
    lines = ["| set | relabel default | bar: max(vote, crowd-kit DS) - 0.5 pt | holds | AUROC relabel / vote share |"
             " expected / measured (ratio) | 90% interval covers |", "|---|---|---|---|---|---|---|"]
    for name in sets:
        r, v, d = get[(name, "relabel default")], get[(name, "majority vote")], get[(name, "crowd-kit Dawid-Skene")]
        bar = max(v["accuracy"], d["accuracy"]) - 0.005
        covers = r["interval"][0] <= r["measured_wrong"] <= r["interval"][1]
        lines.append(f"| {name} | {r['accuracy']:.4f} | {bar:.4f} | {'yes' if r['accuracy'] >= bar else 'NO'} | "
                     f"{r['auroc']:.3f} / {v['auroc']:.3f} | {r['expected_wrong']:.1f} / {r['measured_wrong']} "
                     f"({_ratio(r)}) | {'yes' if covers else 'no'} |")
    means = {m: np.mean([get[(n, m)]["accuracy"] for n in sets]) for m in ("relabel default", "crowd-kit Dawid-Skene",
                                                                          "majority vote", "Dawid-Skene")}
    aucs = {m: np.nanmean([get[(n, m)]["auroc"] for n in sets]) for m in ("relabel default", "majority vote")}
    lines.append(f"\nMean accuracy: relabel default {means['relabel default']:.4f}, crowd-kit Dawid-Skene "
                 f"{means['crowd-kit Dawid-Skene']:.4f}, relabel Dawid-Skene {means['Dawid-Skene']:.4f}, majority vote "
                 f"{means['majority vote']:.4f}. Mean AUROC: relabel default {aucs['relabel default']:.3f}, "
                 f"vote share {aucs['majority vote']:.3f}.")
    return "\n".join(lines)


# ---- Snow 2008 ------------------------------------------------------------------------------------------------
def snow_section(data_dir: Path, featurizer: str) -> list[dict]:
    """Snow 2008 RTE with a text model trained (out-of-fold) on the majority vote of the text pairs."""
    import pandas as pd

    from relabel.models.fit import predict_probs

    a, gold = load_snow(data_dir, "rte")
    pairs = pd.read_csv(Path(data_dir) / "snow2008" / "rte1.tsv", sep="\t").set_index("id").reindex(a.item_ids)
    texts = (pairs["text"].astype(str) + " [SEP] " + pairs["hypothesis"].astype(str)).tolist()
    p = predict_probs([str(i) for i in a.item_ids], texts, get_majority_vote_label(a), a.n_classes,
                      {"featurizer": featurizer})
    results = []
    for row in evaluate(a, p, gold, ["majority vote", "CROWDLAB (relabel)", "model alone", "relabel default"]):
        row.update(dataset="rte", model=featurizer)
        results.append(row)
        print(f"| rte | {featurizer} | {row['method']} | {row['accuracy']:.4f} | {row['auroc']:.3f} | "
              f"{row['expected_wrong']:.1f} / {row['measured_wrong']} |", flush=True)
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
    parser.add_argument("--only", nargs="*", choices=("crowd", "cifar10n", "snow", "rounds"), default=None)
    parser.add_argument("--sets", nargs="*", default=None, help="crowd section: only these sets (e.g. labelme wsd)")
    parser.add_argument("--models", nargs="*", default=list(CIFAR10N_MODELS), help="CIFAR-10N models")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="CIFAR-10N thinning seeds (1-3)")
    parser.add_argument("--labels", nargs="*", type=int, default=[3, 2, 1], help="CIFAR-10N labels per item")
    parser.add_argument("--kinds", nargs="*", default=["aggre", "worst"], choices=("aggre", "worst"))
    parser.add_argument("--with-cleanlab", action="store_true", help="also run cleanlab's own CROWDLAB (slow; "
                        "relabel's gives the same labels, tests/test_consensus_parity.py)")
    parser.add_argument("--featurizer", default="tfidf", help="text model for Snow RTE")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality.json")
    parser.add_argument("--summarise", type=Path, default=None, metavar="JSON", help="print the summary tables of "
                        "a saved run (--out of an earlier run) and stop")
    args = parser.parse_args(argv)
    if args.summarise is not None:
        saved = json.loads(args.summarise.read_text())
        if "crowd" in saved:
            print(crowd_summary(saved["crowd"]))
        if "crowd" in saved:
            print("\n" + vs_vote_table(saved["crowd"], lambda r: r["dataset"]))
        if "cifar10n" in saved:
            print("\n" + cifar10n_summary(saved["cifar10n"]))
            print("\n" + vs_vote_table(saved["cifar10n"],
                                       lambda r: f"{r['pred_probs']} {r['labels_per_item']} {r['model']}"))
        if "snow" in saved:
            print("\n" + vs_vote_table(saved["snow"], lambda r: f"rte + {r['model']}"))
        return 0
    data_dir = args.data_dir or default_data_dir()
    sections = args.only or ["crowd", "cifar10n", "snow", "rounds"]
    out = {}
    started = time.perf_counter()
    if "crowd" in sections:
        print("\n## Annotation-only: crowd/ and Snow 2008 (items with ground truth)\n\n| set | method | accuracy | "
              "AUROC | ECE | expected wrong (90% interval) | measured wrong | expected / measured |\n"
              "|---|---|---|---|---|---|---|---|")
        out["crowd"] = crowd_section(data_dir, args.sets)
        print("\n" + crowd_summary(out["crowd"]))
        print("\n### Annotation-only sets against majority vote\n\n" + vs_vote_table(out["crowd"],
                                                                                     lambda r: r["dataset"]))
    if "cifar10n" in sections:
        print("\n## CIFAR-10N\n\n| pred_probs | labels/item | model | seed | method | accuracy | AUROC | ECE | "
              "expected (90% interval) / measured wrong | overrides right/made |\n|---|---|---|---|---|---|---|---|---|---|")
        out["cifar10n"] = cifar10n_section(data_dir, args.models, SEEDS[:args.seeds], args.labels, args.kinds,
                                           args.with_cleanlab)
        print("\n### CIFAR-10N, mean over seeds\n\n" + cifar10n_summary(out["cifar10n"]))
        print("\n### CIFAR-10N against majority vote (sums over seeds)\n\n" + vs_vote_table(
            out["cifar10n"], lambda r: f"{r['pred_probs']} {r['labels_per_item']} {r['model']}"))
    if "snow" in sections:
        print("\n## Snow 2008 RTE with a text model\n\n| dataset | model | method | accuracy | AUROC | "
              "expected / measured wrong |\n|---|---|---|---|---|---|")
        out["snow"] = snow_section(data_dir, args.featurizer)
        print("\n" + vs_vote_table(out["snow"], lambda r: f"rte + {r['model']}"))
    if "rounds" in sections:
        print("\n## Simulated rounds (CIFAR-10N, resnet18, 500 reviews/round)\n\n"
              "| strategy | round | wrong final labels before | reviewed items really wrong |\n|---|---|---|---|")
        out["rounds"] = rounds_section(data_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float))
    print(f"\nwrote {args.out} in {time.perf_counter() - started:.0f} s wall, {time.process_time():.0f} CPU-s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
