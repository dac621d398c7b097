"""Which approximate-nearest-neighbour library relabel uses above its exact-search size: measured, not assumed.

    python benchmarks/neighbours_ann.py [--items 100000] [--dims 384] [--sample 2000]

Each candidate (faiss-cpu HNSW, hnswlib, pynndescent, usearch) builds an index over N unit vectors and finds the
11 nearest of every item (itself + 10, the k+1 relabel's self-query asks for), in its own subprocess so its
peak memory (VmHWM, including the 150 MB of data) is its own. Recall@10 is measured on a random sample of
queries against exact brute-force search over all N; relabel's exact blocked search is timed on the same
sample and extrapolated to N (it is quadratic) as the baseline.

The data (what the figures rest on): synthetic sentence-embedding-like vectors, not real embeddings
(computing 100k MiniLM embeddings takes far longer than the run on 2 shared cores). 400 topic centres on a
32-dimensional subspace of 384 dimensions, items drawn around them with within-topic spread about 0.6 of the
between-topic distance plus full-dimensional noise, then normalised: clustered, low intrinsic dimension, as
sentence embeddings are. benchmarks/data_issues.py checks recall on real MiniLM embeddings too.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

K = 10
LIBRARIES = ("hnswlib", "faiss", "usearch", "pynndescent")


def synthetic_embeddings(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, 32)))[0].T            # 32 x d orthonormal rows
    centres = rng.normal(size=(400, 32))
    topic = rng.integers(0, 400, n)
    low = centres[topic] + 0.6 * rng.normal(size=(n, 32))
    x = (low @ basis + 0.05 * rng.normal(size=(n, d))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run_one(name: str, x: np.ndarray, threads: int) -> np.ndarray:
    n, d = x.shape
    want = K + 1
    if name == "hnswlib":
        import hnswlib
        index = hnswlib.Index(space="ip", dim=d)
        index.init_index(max_elements=n, M=16, ef_construction=100, random_seed=0)
        index.add_items(x, np.arange(n), num_threads=threads)
        index.set_ef(max(64, 8 * want))
        ids, _ = index.knn_query(x, k=want, num_threads=threads)
        return ids
    if name == "faiss":
        import faiss
        faiss.omp_set_num_threads(threads)
        index = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 100
        index.add(x)
        index.hnsw.efSearch = max(64, 8 * want)
        _, ids = index.search(x, want)
        return ids
    if name == "usearch":
        from usearch.index import Index
        index = Index(ndim=d, metric="cos", dtype="f32", connectivity=16, expansion_add=100,
                      expansion_search=max(64, 8 * want))
        index.add(np.arange(n), x, threads=threads)
        return index.search(x, want, threads=threads).keys
    if name == "pynndescent":
        import pynndescent
        index = pynndescent.NNDescent(x, metric="cosine", n_neighbors=30, random_state=0, n_jobs=threads)
        return index.neighbor_graph[0][:, :want]
    raise ValueError(name)


def child(args) -> None:
    """Run one library on the shared data and print a JSON line with its figures."""
    from benchmarks.shared_data import proc_status_mb
    x = np.load(args.data)
    sample = np.load(args.sample_file)
    truth = np.load(args.truth_file)
    base_mb = proc_status_mb("VmRSS")
    start, cpu_start = time.perf_counter(), time.process_time()
    ids = np.asarray(run_one(args.child, x, args.threads))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    found = ids[sample]
    hits = 0
    for row, query in enumerate(sample):
        got = [j for j in found[row] if j != query][:K]
        hits += len(set(got) & set(truth[row]))
    print(json.dumps({"library": args.child, "seconds": seconds, "cpu": cpu, "recall": hits / (K * len(sample)),
                      "peak_mb": proc_status_mb("VmHWM"), "data_mb": base_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--child")
    parser.add_argument("--data")
    parser.add_argument("--sample-file")
    parser.add_argument("--truth-file")
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from relabel.scoring.neighbours import exact_search
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"relabel_ann_{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    x = synthetic_embeddings(args.items, args.dims)
    rng = np.random.default_rng(1)
    sample = rng.choice(args.items, size=min(args.sample, args.items), replace=False)
    start, cpu_start = time.perf_counter(), time.process_time()
    _, truth = exact_search(x, x[sample], K + 1, "cosine")
    exact_sample_s, exact_sample_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    truth = np.array([[j for j in row if j != q][:K] for row, q in zip(truth, sample)])
    np.save(tmp / "x.npy", x)
    np.save(tmp / "sample.npy", sample)
    np.save(tmp / "truth.npy", truth)
    exact_all_s = exact_sample_s * args.items / len(sample)
    exact_all_cpu = exact_sample_cpu * args.items / len(sample)
    print(f"{args.items:,} x {args.dims} synthetic unit vectors, k = {K}, {args.threads} threads; "
          f"recall@{K} on {len(sample):,} queries vs exact search")
    print("wall seconds depend on the other jobs on the machine; CPU seconds (all threads) / 2 is the wall time "
          "on 2 idle cores")
    print(f"{'library':<12} {'wall s':>8} {'CPU s':>8} {'CPU x exact':>11} {'recall@10':>10} {'peak MB':>8}")
    print(f"{'exact':<12} {exact_all_s:>8.1f} {exact_all_cpu:>8.1f} {1.0:>11.3f} {1.0:>10.4f} {'':>8}"
          "  (extrapolated from the sample)")
    for name in args.libraries.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", name, "--threads", str(args.threads),
                              "--data", str(tmp / "x.npy"), "--sample-file", str(tmp / "sample.npy"),
                              "--truth-file", str(tmp / "truth.npy")], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name:<12} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:<12} {r['seconds']:>8.1f} {r['cpu']:>8.1f} {r['cpu'] / exact_all_cpu:>11.3f} "
              f"{r['recall']:>10.4f} {r['peak_mb']:>8.0f}")
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
