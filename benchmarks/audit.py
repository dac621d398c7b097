"""Does the audited estimate of wrong labels left hold? Simulated relabel loops with a hidden truth.

    python benchmarks/audit.py --data-dir ../shared/data                      # everything, 200 repetitions
    python benchmarks/audit.py --reps 30 --only labelme bbc                   # a quick look
    python benchmarks/audit.py --cache /tmp/audit-cache --out benchmarks/results/audit.json

Each setting is a loop of ROUNDS rounds. A round computes the consensus (relabel's default, with the reviewers'
answers so far as known labels), sends the ``budget`` unreviewed items of lowest quality to review (the ranked
part) and adds an audit: a stratified random sample of the other unreviewed items (relabel.scoring.audit.draw_audit,
default share: 10% of the budget, at least 10 items). The simulated reviewer answers with the true label (or, for
the "5% wrong" reviewer, a random other class 5% of the time). After each round, relabel.scoring.audit estimates
how many of the items still unreviewed carry a wrong label under the next round's consensus; the truth is counted
against the hidden labels.

Settings: CIFAR-10N (50,000 images, real annotators) with resnet18's out-of-fold pred_probs and without a model,
at 3 and 2 labels per item; the three crowd sets of ``crowd/`` (no model; the loop runs over the items that have a
ground truth, the others still inform the consensus); the demo's BBC News project (300 articles, the demo's five
simulated annotators, no model).

What is simulated and what is not: the ranked part and the consensus of each round are computed once per setting
(the loop with a truthful reviewer and no audit); each repetition draws its own audits on top. So the consensus
does not learn from the audited items' answers (10% of the answers; they would improve it slightly) and the
"5% wrong" reviewer's errors reach the audit outcomes and the audited items' labels, not the ranked part's refits.
The target is the wrong labels among unreviewed items; a reviewed item's label is the reviewer's (right unless the
reviewer errs: the 5%-wrong rows also print how many reviewed labels are then wrong, which no audit can see).

Printed: per setting and round, the coverage of the 90% interval for the true count (over repetitions, rows with
at least 30 audited items are the acceptance rows), the median signed and absolute relative error of the point
estimate, the median interval width, the posterior's own estimate as a multiple of the truth, and the cost in
reviewer answers (ranked + audit); then a table of audit share against interval width.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.shared_data import CROWD_SETS, default_data_dir, load_cifar10n, load_crowd  # noqa: E402
from relabel.config import DEFAULT_AUDIT  # noqa: E402
from relabel.scoring.annotations import Annotations  # noqa: E402
from relabel.scoring.audit import MIN_AUDIT_ITEMS, audit_size as audit_items, draw_audit, estimate_wrong_labels  # noqa: E402
from relabel.scoring.consensus_em import consensus  # noqa: E402

ROUNDS = 5
REPORT_ROUNDS = (1, 2, 5)
DEFAULT_SHARE = DEFAULT_AUDIT
MIN_AUDIT = MIN_AUDIT_ITEMS
REVIEWER_ERROR = 0.05
MIN_AUDITED_FOR_ACCEPTANCE = 30
MIN_WRONG_FOR_ERROR_ACCEPTANCE = 50
SHARES = (0.05, 0.1, 0.2, 0.5)


def audit_size(budget: int, share: float) -> int:
    return audit_items(budget, share)             # the loop's own rule ([review] audit)


@dataclass
class Trajectory:
    """The loop without audits: per round r (0-based), the consensus label and P(wrong) of every item, and the
    items the ranked part sent. ``labels[ROUNDS]`` is the consensus after the last round."""

    name: str
    truth: np.ndarray
    population: np.ndarray          # bool: items the loop runs over (with a ground truth)
    labels: list
    p_wrong: list
    ranked: list
    budget: int
    n_classes: int


def thin(a: Annotations, per_item: int, seed: int) -> Annotations:
    """Keep ``per_item`` randomly chosen annotations of every item (seeded)."""
    key = np.random.default_rng(seed).random(len(a))
    order = np.lexsort((key, a.item))
    rank = np.empty(len(a), np.intp)
    starts = np.r_[0, np.cumsum(a.num_annotations())[:-1]]
    rank[order] = np.arange(len(a)) - np.repeat(starts, a.num_annotations())
    return a.select(rank < per_item)


def run_trajectory(name, a: Annotations, truth, pred_probs, budget, cache: Path | None) -> Trajectory:
    population = truth >= 0
    path = cache / f"{name}.npz" if cache else None
    if path and path.is_file():
        z = np.load(path)
        return Trajectory(name, truth, population, list(z["labels"]), list(z["p_wrong"]), list(z["ranked"]),
                          budget, a.n_classes)
    known = np.full(a.n_items, -1)
    labels, p_wrong, ranked = [], [], []
    for rnd in range(ROUNDS + 1):
        r = consensus(a, pred_probs, known_labels=known)
        labels.append(r.consensus_label.copy())
        p_wrong.append(1.0 - np.asarray(r.consensus_quality_score, dtype=float))
        if rnd == ROUNDS:
            break
        candidates = np.flatnonzero(population & (known < 0))
        chosen = candidates[np.argsort(-p_wrong[-1][candidates], kind="stable")[:budget]]
        ranked.append(chosen)
        known[chosen] = truth[chosen]                 # the truthful reviewer
        print(f"  {name}: round {rnd + 1} consensus done", flush=True)
    if path:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, labels=np.array(labels), p_wrong=np.array(p_wrong), ranked=np.array(ranked))
    return Trajectory(name, truth, population, labels, p_wrong, ranked, budget, a.n_classes)


def reviewer_answer(true: np.ndarray, n_classes: int, error: float, rng) -> np.ndarray:
    """The reviewer's label: the truth, or a random other class with probability ``error``."""
    wrong = rng.random(true.size) < error
    other = (true + rng.integers(1, n_classes, size=true.size)) % n_classes
    return np.where(wrong, other, true)


def simulate(t: Trajectory, share: float, reps: int, reviewer_error: float, seed: int = 0) -> list[dict]:
    """One row per repetition and round: the estimate, its interval, the truth, the cost."""
    rows = []
    size = audit_size(t.budget, share)
    for rep in range(reps):
        rng = np.random.default_rng([seed, rep, int(share * 1000), int(reviewer_error * 1000)])
        reviewed = ~t.population.copy()               # items outside the loop count as never in the frame
        audit_p, audit_pi, audit_y, audit_r = [], [], [], []
        answers = 0
        reviewed_wrong = 0
        for rnd in range(ROUNDS):
            ranked = t.ranked[rnd][~reviewed[t.ranked[rnd]]]
            reviewed[ranked] = True
            answers += ranked.size
            ranked_answer = reviewer_answer(t.truth[ranked], t.n_classes, reviewer_error, rng)
            reviewed_wrong += int((ranked_answer != t.truth[ranked]).sum())
            frame = np.flatnonzero(~reviewed)
            pos, pi = draw_audit(t.p_wrong[rnd][frame], size, rng)
            audited = frame[pos]
            answer = reviewer_answer(t.truth[audited], t.n_classes, reviewer_error, rng)
            audit_p.append(t.p_wrong[rnd][audited])
            audit_pi.append(pi)
            audit_r.append(np.full(pi.size, rnd))
            audit_y.append(answer != t.labels[rnd][audited])
            reviewed[audited] = True
            answers += audited.size
            reviewed_wrong += int((answer != t.truth[audited]).sum())
            left = np.flatnonzero(~reviewed)
            est = estimate_wrong_labels(t.p_wrong[rnd + 1][left], np.concatenate(audit_p), np.concatenate(audit_pi),
                                        np.concatenate(audit_y), seed=rep, audit_round=np.concatenate(audit_r))
            truth = int((t.labels[rnd + 1][left] != t.truth[left]).sum())
            rows.append({"setting": t.name, "share": share, "reviewer_error": reviewer_error, "rep": rep,
                         "round": rnd + 1, "audited": est.audited, "answers": answers, "truth": truth,
                         "expected": est.expected, "low": est.low, "high": est.high,
                         "model": est.model_expected, "reviewed_wrong": reviewed_wrong})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["setting"], r["share"], r["reviewer_error"], r["round"]) for r in rows},
                  key=lambda k: (k[0], k[1], k[2], k[3]))
    for setting, share, err, rnd in keys:
        rs = [r for r in rows if (r["setting"], r["share"], r["reviewer_error"], r["round"]) == (setting, share, err,
                                                                                                   rnd)]
        truth = np.array([r["truth"] for r in rs], float)
        exp = np.array([r["expected"] for r in rs])
        low = np.array([r["low"] for r in rs])
        high = np.array([r["high"] for r in rs])
        rel = np.where(truth > 0, exp / np.maximum(truth, 1) - 1, np.nan)
        out.append({"setting": setting, "share": share, "reviewer_error": err, "round": rnd, "reps": len(rs),
                    "audited": int(np.median([r["audited"] for r in rs])),
                    "answers": int(np.median([r["answers"] for r in rs])),
                    "truth": float(np.median(truth)),
                    "coverage": float(np.mean((low <= truth) & (truth <= high))),
                    "below": float(np.mean(truth < low)), "above": float(np.mean(truth > high)),
                    "median_rel_error": float(np.nanmedian(rel)),
                    "median_abs_rel_error": float(np.nanmedian(np.abs(rel))),
                    "width": float(np.median(high - low)),
                    "model_ratio": float(np.median(np.array([r["model"] for r in rs]) / np.maximum(truth, 1))),
                    "reviewed_wrong": float(np.median([r["reviewed_wrong"] for r in rs]))})
    return out


def print_main_table(summary: list[dict], reviewer_error: float) -> None:
    who = "truthful reviewer" if reviewer_error == 0 else f"reviewer wrong {reviewer_error:.0%} of the time"
    print(f"\n### Default audit share ({DEFAULT_SHARE:.0%} of the budget, at least {MIN_AUDIT}), {who}\n")
    extra = " reviewed labels wrong |" if reviewer_error else ""
    print("| setting | round | audited | answers (ranked + audit) | wrong left (median) | coverage of 90% interval "
          "(truth below / above) | median rel. error (signed / abs) | median width | model estimate / truth |"
          + extra)
    print("|---|---|---|---|---|---|---|---|---|" + ("---|" if reviewer_error else ""))
    for s in summary:
        if s["share"] != DEFAULT_SHARE or s["reviewer_error"] != reviewer_error or s["round"] not in REPORT_ROUNDS:
            continue
        mark = "" if s["audited"] >= MIN_AUDITED_FOR_ACCEPTANCE else " (< 30 audited)"
        print(f"| {s['setting']} | {s['round']} | {s['audited']} | {s['answers']} | {s['truth']:.0f} | "
              f"{s['coverage']:.1%} ({s['below']:.1%} / {s['above']:.1%}){mark} | {s['median_rel_error']:+.1%} / "
              f"{s['median_abs_rel_error']:.1%} | {s['width']:.0f} | {s['model_ratio']:.2f}x |"
              + (f" {s['reviewed_wrong']:.0f} |" if reviewer_error else ""))


def print_share_table(summary: list[dict], settings: list[str]) -> None:
    print("\n### Audit share against interval width (truthful reviewer, after round 2)\n")
    print("| setting | audit share | audited | answers | coverage | median width | width / wrong left | "
          "median abs. rel. error |")
    print("|---|---|---|---|---|---|---|---|")
    for s in summary:
        if s["setting"] in settings and s["reviewer_error"] == 0 and s["round"] == 2:
            print(f"| {s['setting']} | {s['share']:.0%} | {s['audited']} | {s['answers']} | {s['coverage']:.1%} | "
                  f"{s['width']:.0f} | {s['width'] / max(s['truth'], 1):.2f} | {s['median_abs_rel_error']:.1%} |")


def check_acceptance(summary: list[dict]) -> None:
    print("\n### Acceptance\n")
    rows = [s for s in summary if s["share"] == DEFAULT_SHARE and s["reviewer_error"] == 0]
    cov = [s for s in rows if s["audited"] >= MIN_AUDITED_FOR_ACCEPTANCE]
    # With no wrong label left in most repetitions an interval cannot miss from below and any that holds 0 covers:
    # 100% there is the right answer, not a too-wide interval, so those rows are counted apart.
    trivial = [s for s in cov if s["truth"] == 0]
    cov = [s for s in cov if s["truth"] > 0]
    bad = [s for s in cov if not 0.85 <= s["coverage"] <= 0.95]
    print(f"1. coverage in 85-95% on {len(cov) - len(bad)} of {len(cov)} (setting, round) rows with >= 30 audited"
          + ("" if not bad else ": outside: " + ", ".join(f"{s['setting']} r{s['round']} {s['coverage']:.1%}"
                                                          for s in bad)))
    if trivial:
        print("   rows with no wrong label left (median truth 0; coverage is trivially the share of intervals holding 0): "
              + ", ".join(f"{s['setting']} r{s['round']} {s['coverage']:.1%}" for s in trivial))
    err = [s for s in rows if s["round"] == 2 and s["truth"] >= MIN_WRONG_FOR_ERROR_ACCEPTANCE]
    bad = [s for s in err if abs(s["median_rel_error"]) > 0.25]
    print(f"2. after round 2, median signed relative error within +-25% on {len(err) - len(bad)} of {len(err)} "
          "settings with >= 50 wrong left" + ("" if not bad else ": outside: " + ", ".join(
              f"{s['setting']} {s['median_rel_error']:+.1%}" for s in bad)))
    bad_abs = [s for s in err if s["median_abs_rel_error"] > 0.25]
    print(f"   (median absolute relative error <= 25% on {len(err) - len(bad_abs)} of {len(err)}"
          + ("" if not bad_abs else ": above: " + ", ".join(f"{s['setting']} {s['median_abs_rel_error']:.1%}"
                                                            for s in bad_abs)) + ")")


def load_settings(data_dir: Path, only) -> list[tuple]:
    """(name, annotations, truth, pred_probs, budget) per setting; budget = 1% of the loop's items, at least 50
    (relabel's default budget)."""
    def budget(n):
        return max(50, int(round(0.01 * n)))

    settings = []
    want = (lambda name: only is None or any(o in name for o in only))
    if any(want(f"cifar10n-{m}-{k}labels") for m in ("resnet18", "no-model") for k in ("3", "2")):
        a, clean, probs = load_cifar10n(data_dir)
        for per_item in (3, 2):
            ai = a if per_item == 3 else thin(a, per_item, seed=1)
            for model in ("resnet18", None):
                name = f"cifar10n-{model or 'no-model'}-{per_item}labels"
                if want(name):
                    settings.append((name, ai, clean, probs[model] if model else None, budget(a.n_items)))
    for name in CROWD_SETS:
        if want(name):
            a, truth = load_crowd(data_dir, name)
            settings.append((name, a, truth, None, budget(int((truth >= 0).sum()))))
    if want("bbc-demo"):
        from relabel.demo_data import bbc_news, simulate_annotations
        data = bbc_news()
        triples = np.array(simulate_annotations(data.truth, data.classes))
        a = Annotations(triples[:, 0], triples[:, 1], triples[:, 2], np.arange(len(data.truth)),
                        np.arange(int(triples[:, 1].max()) + 1), data.classes)
        settings.append(("bbc-demo", a, np.asarray(data.truth, np.intp), None, budget(len(data.truth))))
    return settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--only", nargs="*", default=None, help="substrings of setting names")
    parser.add_argument("--share-settings", nargs="*", default=["cifar10n-resnet18-3labels", "labelme"])
    parser.add_argument("--cache", type=Path, default=None, help="folder to keep the consensus trajectories in")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    start = time.time()
    summary = []
    for name, a, truth, p, budget in load_settings(args.data_dir, args.only):
        t = run_trajectory(name, a, truth, p, budget, args.cache)
        rows = simulate(t, DEFAULT_SHARE, args.reps, 0.0) + simulate(t, DEFAULT_SHARE, args.reps, REVIEWER_ERROR)
        if name in args.share_settings:
            for share in SHARES:
                if share != DEFAULT_SHARE:
                    rows += simulate(t, share, args.reps, 0.0)
        summary += summarise(rows)
        print(f"  {name}: {args.reps} repetitions done ({time.time() - start:.0f} s)", flush=True)
    print(f"\n## Audited estimate of wrong labels left ({args.reps} repetitions per setting, {ROUNDS} rounds, budget "
          "1% of the items and at least 50 per round)")
    print_main_table(summary, 0.0)
    print_main_table(summary, REVIEWER_ERROR)
    print_share_table(summary, args.share_settings)
    check_acceptance(summary)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1))
    print(f"\n{time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
