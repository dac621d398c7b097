"""The model phase of a round at 100k and 1M items: wall time, CPU time, peak RSS and the growth exponent.

    python benchmarks/bench_model_scale.py --sizes 100000,1000000
    python benchmarks/bench_model_scale.py --sizes 20000,100000          # quicker

Each size runs in a fresh interpreter (so peak RSS is that size's own) on synthetic texts recombined from real
ones: each text is the first half of one 20 Newsgroups post, a third of an IMDB review (no class signal) and the
second half of another post of the same class, cut at 1,300 characters (issue 15 measured 1,258 on average), so
vocabulary and lengths stay those of real texts while no two texts repeat. 10 classes (the 20 Newsgroups labels
modulo 10), 10% of labels flipped (seeded). The model phase is relabel.models.fit.fit_predict_probs
with the default settings (the search over the TF-IDF grid within its time budget, then calibrated out-of-fold
probabilities for every item). The growth exponent between two sizes is log(t2 / t1) / log(n2 / n1).
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.shared_data import label_errors_dir  # noqa: E402

N_CLASSES = 10
FLIP = 0.10
MAX_CHARS = 1300


def synthetic_texts(data_dir: Path, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """n texts of N_CLASSES classes, each the halves of two real texts of the same class, and noisy labels."""
    with gzip.open(data_dir / "texts" / "20news_test_texts.jsonl.gz", "rt", encoding="utf-8") as handle:
        posts = [json.loads(line) for line in handle]
    with gzip.open(data_dir / "texts" / "imdb_test_texts.jsonl.gz", "rt", encoding="utf-8") as handle:
        reviews = [json.loads(line)["text"] for line in handle]
    rng = np.random.default_rng(seed)
    source_class = np.array([p["label"] % N_CLASSES for p in posts])
    by_class = [np.flatnonzero(source_class == c) for c in range(N_CLASSES)]
    truth = rng.integers(0, N_CLASSES, size=n)
    heads = [p["text"][: len(p["text"]) // 2] for p in posts]
    tails = [p["text"][len(p["text"]) // 2:] for p in posts]
    review_parts = [r[: len(r) // 3] for r in reviews]
    texts = []
    for i, c in enumerate(truth):
        a, b = rng.choice(by_class[c], size=2)
        texts.append(f"{heads[a]} {review_parts[i % len(review_parts)]} {tails[b]}"[:MAX_CHARS])
    given = np.where(rng.random(n) < FLIP, rng.integers(0, N_CLASSES, size=n), truth)
    return texts, given


def one_size(n: int, data_dir: Path, seed: int) -> dict:
    from relabel.models.fit import ModelSettings, fit_predict_probs
    texts, given = synthetic_texts(data_dir, n, seed)
    ids = [str(i) for i in range(n)]
    wall, cpu = time.perf_counter(), time.process_time()
    result = fit_predict_probs(ids, texts, given, N_CLASSES, ModelSettings())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_mb, "pipeline": result.report.pipeline,
            "classifier": result.report.classifier, "log_loss": result.report.cv_log_loss,
            "accuracy": result.report.cv_accuracy, "ece": result.report.ece, "searched": result.report.searched}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child process: one size
    args = parser.parse_args(argv)
    data_dir = args.data_dir or label_errors_dir()
    if args.one is not None:
        print(json.dumps(one_size(args.one, data_dir, args.seed)))
        return
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        done = subprocess.run([sys.executable, __file__, "--one", str(n), "--data-dir", str(data_dir),
                               "--seed", str(args.seed)], capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:])
            raise SystemExit(f"size {n} failed")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"  {n:>9,} items: wall {r['wall_s']:.0f} s, CPU {r['cpu_s']:.0f} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
              f"{r['pipeline']} ({r['classifier']}), log-loss {r['log_loss']:.3f}, accuracy {r['accuracy']:.3f}",
              flush=True)
    print("\n| items | wall s | CPU s | peak RSS MB | pipeline | out-of-fold log-loss | accuracy | ECE | search |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['peak_rss_mb']:.0f} | {r['pipeline']} "
              f"({r['classifier']}) | {r['log_loss']:.3f} | {r['accuracy']:.3f} | {r['ece']:.3f} | {r['searched']} |")
    for a, b in zip(rows, rows[1:]):
        span = math.log(b["n"] / a["n"])
        print(f"growth exponent {a['n']:,} -> {b['n']:,}: wall {math.log(b['wall_s'] / a['wall_s']) / span:.2f}, "
              f"CPU {math.log(b['cpu_s'] / a['cpu_s']) / span:.2f}")


if __name__ == "__main__":
    main()
