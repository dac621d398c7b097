"""Speed and memory of relabel's scoring core against cleanlab 2.9.0, on the same inputs, in one script.

    python benchmarks/bench_core.py                 # full sizes; data from RELABEL_SHARED_DATA or ../shared/data
    python benchmarks/bench_core.py --quick         # smaller sizes, a quick check
    python benchmarks/bench_core.py --only crowdlab cifar10n

For every case both libraries run on identical inputs, the outputs are checked to be identical (integers and
masks exactly, floats: the max abs difference is printed), and the script prints

* time: best of ``--repeats`` wall-clock runs (perf_counter) of the one call, inputs prepared beforehand;
* peak extra memory: the tracemalloc peak during one separate run of the call, minus what was allocated
  before it (numpy reports its buffers to tracemalloc, so this is the call's own temporary and result memory;
  the inputs are not counted);
* for the 1,000,000 x 10,000 case, which cleanlab cannot run (its dense matrix would be 80 GB): the peak RSS
  (VmHWM) of a fresh child process that loads the saved inputs and runs relabel once, and its RSS (VmRSS)
  just before the call; "peak extra" is the difference.

numpy/BLAS are limited to one thread before numpy is imported, so the numbers are for one core. The machine
is shared: expect some timing noise, and read ratios rather than absolute times.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one core

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.shared_data import default_data_dir, load_cifar10n, proc_status_mb  # noqa: E402
from relabel.scoring.annotations import Annotations  # noqa: E402
from relabel.scoring.confident import find_label_issues  # noqa: E402
from relabel.scoring.consensus import crowdlab  # noqa: E402

MB = 1024 * 1024


# ---- measuring --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def measure(call, repeats: int):
    """(result, best wall time in s, peak extra memory in MB) of call()."""
    best = float("inf")
    result = None
    for _ in range(repeats):
        result = None
        gc.collect()
        start = time.perf_counter()
        with _quiet():
            result = call()
        best = min(best, time.perf_counter() - start)
    result = None
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    with _quiet():
        result = call()
    peak = (tracemalloc.get_traced_memory()[1] - base) / MB
    tracemalloc.stop()
    return result, best, peak


# ---- synthetic multi-annotator data ----------------------------------------------------------------------------
def synthetic_annotations(n_items: int, n_annotators: int, n_classes: int, per_item: int, seed: int = 0):
    """(Annotations, pred_probs): per_item distinct annotators per item, 60-95% accurate, a ~85% model."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    item = np.repeat(np.arange(n_items), per_item)
    # Distinct annotators per item: a random start plus distinct offsets, modulo the number of annotators.
    start = rng.integers(0, n_annotators, n_items)
    offsets = np.stack([rng.permutation(n_annotators)[:per_item] for _ in range(64)])
    annotator = (np.repeat(start, per_item) + offsets[rng.integers(0, 64, n_items)].ravel()) % n_annotators
    accuracy = rng.uniform(0.6, 0.95, n_annotators)
    correct = rng.random(item.size) < accuracy[annotator]
    label = np.where(correct, truth[item], rng.integers(0, n_classes, item.size))
    del correct
    logits = rng.normal(0.0, 1.0, (n_items, n_classes))
    logits[np.arange(n_items), truth] += 2.5
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    annotations = Annotations(item, annotator.astype(np.intp), label.astype(np.intp), np.arange(n_items),
                              np.arange(n_annotators), tuple(range(n_classes)))
    return annotations, logits


def compare_crowdlab(ours, theirs, annotations: Annotations) -> tuple[bool, float]:
    """(integers identical, max abs float difference) between a ConsensusResult and cleanlab's dict."""
    lq = theirs["label_quality"]
    stats = theirs["annotator_stats"].sort_index()
    detailed = theirs["detailed_label_quality"].to_numpy()
    same = (np.array_equal(ours.consensus_label, lq["consensus_label"].to_numpy())
            and np.array_equal(ours.num_annotations, lq["num_annotations"].to_numpy())
            and np.array_equal(ours.worst_class, stats["worst_class"].to_numpy())
            and np.array_equal(ours.num_examples_labeled, stats["num_examples_labeled"].to_numpy()))
    pairs = [(ours.consensus_quality_score, lq["consensus_quality_score"]),
             (ours.annotator_agreement, lq["annotator_agreement"]),
             (ours.annotation_quality, detailed[annotations.item, annotations.annotator]),
             (ours.annotator_quality, stats["annotator_quality"]),
             (ours.agreement_with_consensus, stats["agreement_with_consensus"])]
    diff = max(float(np.nanmax(np.abs(np.asarray(a, float) - np.asarray(b, float)))) for a, b in pairs)
    nan_same = all(np.array_equal(np.isnan(np.asarray(a, float)), np.isnan(np.asarray(b, float))) for a, b in pairs)
    return same and nan_same, diff


def crowdlab_case(name: str, annotations: Annotations, pred_probs, repeats: int, cleanlab_repeats: int) -> dict:
    from cleanlab.multiannotator import get_label_quality_multiannotator as cleanlab_crowdlab

    dense = annotations.to_dense()  # cleanlab's input form, built before timing
    theirs, t_cl, m_cl = measure(lambda: cleanlab_crowdlab(dense, pred_probs, verbose=False), cleanlab_repeats)
    ours, t_rl, m_rl = measure(lambda: crowdlab(annotations, pred_probs), repeats)
    same, diff = compare_crowdlab(ours, theirs, annotations)
    return {"case": name, "size": f"{annotations.n_items:,} items x {annotations.n_annotators:,} annotators x "
                                  f"{annotations.n_classes} classes, {len(annotations):,} labels",
            "cleanlab_s": t_cl, "relabel_s": t_rl, "cleanlab_mb": m_cl, "relabel_mb": m_rl,
            "identical": same, "max_abs_diff": diff,
            "note": f"dense input {dense.nbytes / MB:,.0f} MB vs long {3 * annotations.item.nbytes / MB:,.1f} MB"}


def find_label_issues_case(n_items: int, n_classes: int, repeats: int, cleanlab_repeats: int) -> dict:
    from cleanlab.filter import find_label_issues as cleanlab_find_label_issues

    rng = np.random.default_rng(1)
    truth = rng.integers(0, n_classes, n_items)
    labels = np.where(rng.random(n_items) < 0.85, truth, rng.integers(0, n_classes, n_items))
    logits = rng.normal(0.0, 1.0, (n_items, n_classes))
    logits[np.arange(n_items), truth] += 2.0
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    # n_jobs=1: cleanlab otherwise forks one worker per core, which breaks "one core" and hides the workers'
    # memory from tracemalloc.
    theirs, t_cl, m_cl = measure(lambda: cleanlab_find_label_issues(labels, logits, n_jobs=1), cleanlab_repeats)
    ours, t_rl, m_rl = measure(lambda: find_label_issues(labels, logits), repeats)
    return {"case": "find_label_issues (default)", "size": f"{n_items:,} items x {n_classes} classes",
            "cleanlab_s": t_cl, "relabel_s": t_rl, "cleanlab_mb": m_cl, "relabel_mb": m_rl,
            "identical": bool(np.array_equal(ours, theirs)), "max_abs_diff": 0.0,
            "note": f"{int(ours.sum()):,} issues flagged; input {logits.nbytes / MB:,.0f} MB"}


# ---- the large case, in a fresh process ---------------------------------------------------------------------
def child_large(folder: str) -> None:
    """Runs in a fresh process: load the saved inputs, record RSS, run crowdlab once, print JSON.

    Loading (not generating) the inputs here keeps the generator's temporaries out of the peak RSS, so
    peak - before is crowdlab's own memory.
    """
    item, annotator, label, pred_probs = (np.load(Path(folder) / f"{name}.npy")
                                          for name in ("item", "annotator", "label", "pred_probs"))
    n_items, n_classes = pred_probs.shape
    n_annotators = int(annotator.max()) + 1
    annotations = Annotations(item, annotator, label, np.arange(n_items), np.arange(n_annotators),
                              tuple(range(n_classes)))
    gc.collect()
    rss_before = proc_status_mb("VmRSS")
    start = time.perf_counter()
    result = crowdlab(annotations, pred_probs)
    seconds = time.perf_counter() - start
    rss_peak = proc_status_mb("VmHWM")
    ok = bool(np.allclose(result.posterior.sum(axis=1), 1.0) and result.consensus_label.shape == (n_items,))
    print(json.dumps({"seconds": seconds, "rss_before_mb": rss_before, "rss_peak_mb": rss_peak, "ok": ok,
                      "labels": len(annotations)}))


def large_case(n_items: int, n_annotators: int, n_classes: int, per_item: int) -> dict:
    annotations, pred_probs = synthetic_annotations(n_items, n_annotators, n_classes, per_item, seed=2)
    with tempfile.TemporaryDirectory() as folder:
        for name, array in (("item", annotations.item), ("annotator", annotations.annotator),
                            ("label", annotations.label), ("pred_probs", pred_probs)):
            np.save(Path(folder) / f"{name}.npy", array)
        del annotations, pred_probs
        out = subprocess.run([sys.executable, __file__, "--child-large", folder], capture_output=True, text=True,
                             check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    dense_gb = n_items * n_annotators * 8 / 1e9
    return {"case": "CROWDLAB, relabel only", "size": f"{n_items:,} items x {n_annotators:,} annotators x "
                                                      f"{n_classes} classes, {report['labels']:,} labels",
            "cleanlab_s": None, "relabel_s": report["seconds"], "cleanlab_mb": None,
            "relabel_mb": report["rss_peak_mb"] - report["rss_before_mb"], "identical": report["ok"],
            "max_abs_diff": None, "rss_peak_mb": report["rss_peak_mb"],
            "note": f"peak RSS of the fresh process {report['rss_peak_mb']:,.0f} MB (inputs "
                    f"{report['rss_before_mb']:,.0f} MB before the call, interpreter and imports included); "
                    f"cleanlab's dense matrix would be {dense_gb:,.0f} GB"}


# ---- report -------------------------------------------------------------------------------------------------
def _fmt(value, spec, none="-"):
    return none if value is None else format(value, spec)


def print_row(row: dict) -> None:
    ratio = row["cleanlab_s"] / row["relabel_s"] if row["cleanlab_s"] else None
    mem = row["relabel_mb"] / row["cleanlab_mb"] if row["cleanlab_mb"] else None
    print(f"\n== {row['case']}: {row['size']}")
    print(f"   cleanlab {_fmt(row['cleanlab_s'], '.3f')} s, peak extra {_fmt(row['cleanlab_mb'], ',.1f')} MB")
    print(f"   relabel  {row['relabel_s']:.3f} s, peak extra {row['relabel_mb']:,.1f} MB"
          + (" (peak RSS minus RSS before the call, fresh process)" if row["cleanlab_s"] is None else ""))
    if ratio:
        print(f"   speed-up {ratio:.1f}x; relabel uses {mem:.2f} of cleanlab's extra memory")
    print(f"   outputs identical: {row['identical']}; max abs float diff: {_fmt(row['max_abs_diff'], '.2e')}")
    print(f"   {row['note']}")


def markdown(rows) -> str:
    lines = ["| case | size | cleanlab | relabel | speed-up | peak extra memory cleanlab / relabel | identical |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['cleanlab_s'] / r['relabel_s']:.1f}x" if r["cleanlab_s"] else "-"
        memory = (f"{r['cleanlab_mb']:,.0f} MB / {r['relabel_mb']:,.0f} MB" if r["cleanlab_mb"] is not None
                  else f"- / {r['relabel_mb']:,.0f} MB (peak RSS {r['rss_peak_mb']:,.0f} MB)")
        same = "yes" if r["identical"] else "NO"
        if r["max_abs_diff"] is not None and r["max_abs_diff"] > 0:
            same += f" (max diff {r['max_abs_diff']:.0e})"
        lines.append(f"| {r['case']} | {r['size']} | {_fmt(r['cleanlab_s'], '.3f')} s | {r['relabel_s']:.3f} s | "
                     f"{ratio} | {memory} | {same} |")
    return "\n".join(lines)


CASES = ("crowdlab", "cifar10n", "find_label_issues", "large")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="shared data folder (default: RELABEL_SHARED_DATA or ../shared/data)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 10x), one cleanlab run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of relabel per case (best is kept)")
    parser.add_argument("--only", nargs="+", choices=CASES, default=list(CASES), help="run only these cases")
    parser.add_argument("--child-large", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_large:
        child_large(args.child_large)
        return 0
    data_dir = args.data_dir or default_data_dir()
    scale = 10 if args.quick else 1
    cleanlab_repeats = 1 if args.quick else 2
    rows = []
    if "crowdlab" in args.only:
        annotations, p = synthetic_annotations(100_000 // scale, 50, 10, 3)
        rows.append(crowdlab_case("CROWDLAB, all outputs", annotations, p, args.repeats, cleanlab_repeats))
        print_row(rows[-1])
    if "cifar10n" in args.only:
        annotations, _, pred_probs = load_cifar10n(data_dir)
        p = pred_probs["resnet18"]
        if args.quick:
            keep = annotations.item < 10_000
            annotations = Annotations(annotations.item[keep], annotations.annotator[keep], annotations.label[keep],
                                      annotations.item_ids[:10_000], annotations.annotator_ids, annotations.classes)
            used = np.bincount(annotations.annotator, minlength=annotations.n_annotators) > 0
            remap = np.cumsum(used) - 1  # cleanlab refuses annotators without labels: drop them
            annotations = Annotations(annotations.item, remap[annotations.annotator], annotations.label,
                                      annotations.item_ids, annotations.annotator_ids[used], annotations.classes)
            p = p[:10_000]
        # cleanlab needs about a minute and a half per run here: one timed run (plus the memory run) is enough.
        rows.append(crowdlab_case("CROWDLAB on CIFAR-10N (resnet18)", annotations, p, args.repeats, 1))
        print_row(rows[-1])
    if "find_label_issues" in args.only:
        rows.append(find_label_issues_case(1_000_000 // scale, 10, args.repeats, cleanlab_repeats))
        print_row(rows[-1])
    if "large" in args.only:
        rows.append(large_case(1_000_000 // scale, 10_000 // scale, 10, 3))
        print_row(rows[-1])
    print("\n" + markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
