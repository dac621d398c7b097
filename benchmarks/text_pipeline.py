"""relabel's model phase on real texts against the single pipelines of its grid and a plain scikit-learn pipeline.

    python benchmarks/text_pipeline.py                                  # every set, TF-IDF grid, no embeddings
    python benchmarks/text_pipeline.py --sets bbc --minilm              # add MiniLM pipelines (slow on a CPU)
    python benchmarks/text_pipeline.py --sets imdb15 --imdb-n 1000      # quicker
    python benchmarks/text_pipeline.py --embed-n 256                    # plus embedding throughput
    python benchmarks/text_pipeline.py --rounds                         # time: rounds 1 and 2 against the plain
    python benchmarks/text_pipeline.py --rounds --sizes 1000,3000,10000 # pipeline (benchmarks/model_rounds.py)

Sets (all from ../shared/data, or --data-dir / RELABEL_SHARED_DATA, and the demo's installed BBC corpus):

- ``imdb15`` / ``imdb30``: ``--imdb-n`` IMDB reviews (seeded sample) with 15% / 30% of the labels flipped (seeded).
  Truth is the original label; the issues to find are the flipped items.
- ``20news``: the 7,532 20 Newsgroups test posts with their given labels; the issues to find are the 82 errors
  people confirmed in "Pervasive Label Errors in Test Sets" (only flagged items were checked, so precision is a
  lower bound).
- ``bbc``: the demo's 300 BBC News items labelled by its simulated annotators; the model trains on the majority
  vote, as a first round does. Truth is the article's section. Also compares training with each item weighted by
  its annotators' agreement (``weight_uncertain``) against unweighted.

Rows per set: relabel's default (the search over its TF-IDF grid, calibrated), each single pipeline of the grid
(C = 10, calibrated the same way), and the plain scikit-learn pipeline (TfidfVectorizer 1-2-grams sublinear
min_df=2 + LogisticRegression C=1, 5-fold out-of-fold, uncalibrated). Columns: out-of-fold log-loss and ECE on the
given (training) labels, accuracy against truth, issue precision and recall of relabel.scoring.confident.find_label_issues,
mean probability of the true class, wall seconds. The machine is shared; timings are indicative.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.shared_data import label_errors_dir  # noqa: E402

from relabel.scoring.calibration import expected_calibration_error, log_loss  # noqa: E402  (repo root on the path)
from relabel.scoring.confident import find_label_issues  # noqa: E402
from relabel.models.fit import ModelSettings, cross_val_pred_probs, fit_predict_probs  # noqa: E402

# Mechanical Turk: 5 workers per item; fewer than this many choosing the given label = validated error.
VALIDATED_BELOW = 3
SETS = ("imdb15", "imdb30", "20news", "bbc")


def _jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def load_imdb(data_dir: Path, n: int, flip: float, seed: int) -> dict:
    rows = _jsonl(data_dir / "texts" / "imdb_test_texts.jsonl.gz")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(rows), size=min(n, len(rows)), replace=False))
    texts = [rows[i]["text"] for i in pick]
    truth = np.array([rows[i]["label"] for i in pick], dtype=np.intp)
    flipped = rng.random(truth.size) < flip
    given = np.where(flipped, 1 - truth, truth)
    return {"texts": texts, "given": given, "truth": truth, "errors": set(np.flatnonzero(flipped).tolist()),
            "k": 2, "what": f"{truth.size} IMDB reviews, {flipped.sum()} labels flipped ({flip:.0%}, seed {seed})"}


def load_20news(data_dir: Path) -> dict:
    posts = _jsonl(data_dir / "texts" / "20news_test_texts.jsonl.gz")
    given = np.load(data_dir / "labels" / "20news_test_set_original_labels.npy").astype(np.intp)
    mturk = json.loads((data_dir / "mturk" / "20news_mturk.json").read_text())
    validated = {int(e["id"]) for e in mturk if e["mturk"]["given"] < VALIDATED_BELOW}
    return {"texts": [p["text"] for p in posts], "given": given, "truth": None, "errors": validated,
            "k": int(given.max()) + 1, "what": f"{given.size} 20 Newsgroups posts, {len(validated)} validated errors"}


def load_bbc(seed: int) -> dict:
    from relabel.scoring.annotations import Annotations
    from relabel.scoring.consensus import get_majority_vote_label
    from relabel.demo_data import PROFILES, bbc_news, simulate_annotations
    data = bbc_news(seed=seed)
    rows = simulate_annotations(data.truth, data.classes, seed=seed)
    items, annotators, labels = zip(*rows)
    table = Annotations.from_records([str(i) for i in items], [PROFILES[a].email for a in annotators],
                                     [data.classes[c] for c in labels], classes=data.classes)
    order = np.array([int(i) for i in table.item_ids])
    majority = np.full(len(data.texts), -1, dtype=np.intp)
    majority[order] = get_majority_vote_label(table)
    agree = np.bincount(table.item, weights=table.label == get_majority_vote_label(table)[table.item])
    share = np.ones(len(data.texts))
    share[order] = agree / np.bincount(table.item)
    wrong = np.flatnonzero((majority >= 0) & (majority != data.truth))
    return {"texts": data.texts, "given": majority, "truth": np.asarray(data.truth), "errors": set(wrong.tolist()),
            "k": len(data.classes), "agreement": share,
            "what": f"{len(data.texts)} BBC News items, {len(rows)} simulated annotations, majority vote wrong on "
                    f"{wrong.size}"}


def evaluate(name: str, probs: np.ndarray, data: dict, seconds: float, rows: list) -> dict:
    given, truth, errors = data["given"], data["truth"], data["errors"]
    flagged = set(np.flatnonzero(find_label_issues(given, probs)).tolist())
    hits = len(flagged & errors)
    row = {"pipeline": name, "log_loss": log_loss(probs, given), "ece": expected_calibration_error(probs, given),
           "accuracy": float(np.mean(probs.argmax(axis=1) == (truth if truth is not None else given))),
           "precision": hits / len(flagged) if flagged else float("nan"),
           "recall": hits / len(errors) if errors else float("nan"), "flagged": len(flagged),
           "p_true": float(np.mean(probs[np.arange(given.size), truth])) if truth is not None else None,
           "seconds": seconds}
    rows.append(row)
    print(f"    {name}: log-loss {row['log_loss']:.4f}, ECE {row['ece']:.3f}, accuracy {row['accuracy']:.3f}, "
          f"precision {row['precision']:.3f}, recall {row['recall']:.3f} ({seconds:.0f} s)", flush=True)
    return row


def relabel_probs(data: dict, settings: ModelSettings, cache, weight=None):
    ids = [str(i) for i in range(len(data["texts"]))]
    start = time.perf_counter()
    result = fit_predict_probs(ids, data["texts"], data["given"], data["k"], settings, cache=cache,
                               sample_weight=weight)
    return result, time.perf_counter() - start


def sklearn_baseline(data: dict, seed: int):
    """The five-line pipeline of issue 11: TF-IDF 1-2-grams + LogisticRegression(C=1), 5-fold out-of-fold."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    start = time.perf_counter()
    X = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2).fit_transform(data["texts"])
    probs = cross_val_pred_probs(X, data["given"], n_folds=5, seed=seed, n_classes=data["k"],
                                 classifier=LogisticRegression(C=1, max_iter=1000))
    return probs, time.perf_counter() - start


def run_set(name: str, data: dict, args, cache) -> list[dict]:
    print(f"\n{name}: {data['what']}", flush=True)
    rows: list[dict] = []
    base = dict(n_folds=5, seed=args.seed, selection_seconds=args.budget or 600.0)
    family = "auto" if args.minilm else "tfidf"
    if "default" in args.rows:
        result, seconds = relabel_probs(data, ModelSettings(featurizer=family, **base), cache)
        evaluate(f"relabel default ({result.report.pipeline}; {result.report.searched})", result.probs, data,
                 seconds, rows)
    singles = ["word", "char", "word+char"] + (["minilm", "word+minilm"] if args.minilm else [])
    for pipeline in singles if "singles" in args.rows else []:
        r, seconds = relabel_probs(data, ModelSettings(pipeline=pipeline, C=10, class_weight=None, **base), cache)
        evaluate(f"single: {r.report.pipeline}", r.probs, data, seconds, rows)
    if "sklearn" in args.rows:
        probs, seconds = sklearn_baseline(data, args.seed)
        evaluate("sklearn TF-IDF(1-2, sublinear, min_df=2) + LogisticRegression(C=1)", probs, data, seconds, rows)
    if "agreement" in data and "default" in args.rows:
        r, seconds = relabel_probs(data, ModelSettings(featurizer=family, **base), cache, weight=data["agreement"])
        evaluate(f"relabel default, weighted by agreement ({r.report.pipeline})", r.probs, data, seconds, rows)
    return rows


def print_table(results: dict[str, list[dict]]) -> None:
    print("\n| set | pipeline | OOF log-loss | ECE | accuracy vs truth | issue precision | issue recall | "
          "mean P(true class) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for set_name, rows in results.items():
        for r in rows:
            p_true = "-" if r["p_true"] is None else f"{r['p_true']:.3f}"
            print(f"| {set_name} | {r['pipeline']} | {r['log_loss']:.4f} | {r['ece']:.3f} | {r['accuracy']:.3f} | "
                  f"{r['precision']:.3f} | {r['recall']:.3f} | {p_true} | {r['seconds']:.0f} |")


def embedding_throughput(data_dir: Path, n: int, threads: int, chunk: int) -> None:
    """Plain SentenceTransformer.encode, relabel's float path and its int8 ONNX path, taking turns chunk by chunk
    (rotating who goes first) so that load from other processes lands on every side alike."""
    import torch
    from sentence_transformers import SentenceTransformer
    from relabel.models.featurizers import MemoryEmbeddingCache, featurizer, resolve_model_path
    torch.set_num_threads(threads)
    texts = [p["text"] for p in _jsonl(data_dir / "texts" / "20news_test_texts.jsonl.gz")[:n]]
    plain = SentenceTransformer(str(resolve_model_path(None)[0]), device="cpu", local_files_only=True)
    sides = {
        "plain encode (float)": lambda c: plain.encode(c, batch_size=32, normalize_embeddings=True),
        "relabel float (torch)": featurizer("sentence-transformers", threads=threads, device="cpu",
                                            cache=MemoryEmbeddingCache()).transform,
        "relabel fast (onnx-int8)": featurizer("sentence-transformers", threads=threads, device="cpu",
                                               backend="onnx-int8", cache=MemoryEmbeddingCache()).transform,
    }
    sides["relabel fast (onnx-int8)"](texts[:2])   # export + quantise on first use (cached): not timed
    names = list(sides)
    totals = dict.fromkeys(names, 0.0)
    vectors = {name: [] for name in names}
    for turn, begin in enumerate(range(0, len(texts), chunk)):
        part = texts[begin:begin + chunk]
        for name in names[turn % 3:] + names[:turn % 3]:
            start = time.perf_counter()
            vectors[name].append(np.asarray(sides[name](part)))
            totals[name] += time.perf_counter() - start
    vectors = {name: np.vstack(v) for name, v in vectors.items()}
    ref = vectors[names[0]]
    print(f"\nEmbedding throughput: {len(texts)} 20 Newsgroups posts, all-MiniLM-L6-v2, {threads} threads, turns of "
          f"{chunk} texts")
    print("| path | texts/s | × plain encode | min cosine to float | mean cosine |")
    print("|---|---|---|---|---|")
    for name in names:
        cos = np.sum(vectors[name] * ref, axis=1)
        print(f"| {name} | {len(texts) / totals[name]:.1f} | {totals[names[0]] / totals[name]:.2f} | "
              f"{cos.min():.4f} | {cos.mean():.4f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="the label_errors folder of the shared data")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated subset of {', '.join(SETS)}")
    parser.add_argument("--imdb-n", type=int, default=2500, help="IMDB reviews per flipped set")
    parser.add_argument("--minilm", action="store_true", help="add MiniLM pipelines to the grid and the singles")
    parser.add_argument("--budget", type=float, default=None,
                        help="selection_seconds of the default's search (600 for the sets, [model]'s default for "
                             "--rounds)")
    parser.add_argument("--rounds", action="store_true",
                        help="time relabel's model phase against the plain pipeline in rounds 1 and 2 "
                             "(benchmarks/model_rounds.py) instead of the sets")
    parser.add_argument("--sizes", default="1000,3000", help="--rounds: items per cell (the full table: 1000,3000,10000)")
    parser.add_argument("--classes", default="2,20", help="--rounds: 2 (IMDB) and/or 20 (20 Newsgroups)")
    parser.add_argument("--batch", type=int, default=50, help="--rounds: review answers between round 1 and 2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", default=None,
                        help="--rounds: comma-separated seeds; each cell runs once per seed (its own sample and "
                             "flips) and the verdicts are on the means over seeds, with their standard errors")
    parser.add_argument("--rows", default="default,singles,sklearn",
                        help="which rows to run: a comma-separated subset of default, singles, sklearn (a slow "
                             "set's unchanged rows need not be run again)")
    parser.add_argument("--cache", type=Path, default=None, help="a SQLite store to cache embeddings in")
    parser.add_argument("--embed-n", type=int, default=0, help="texts for the embedding throughput table (0 = skip)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for embedding")
    parser.add_argument("--chunk", type=int, default=64, help="texts per turn of the throughput comparison")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or label_errors_dir()
    if args.rounds:
        from benchmarks import model_rounds
        if args.budget is None:
            args.budget = ModelSettings().selection_seconds
        model_rounds.main(args, data_dir / "texts")
        return
    cache = None
    if args.cache is not None:
        from relabel.loop.store import Store
        cache = Store(args.cache)
    loaders = {"imdb15": lambda: load_imdb(data_dir, args.imdb_n, 0.15, args.seed),
               "imdb30": lambda: load_imdb(data_dir, args.imdb_n, 0.30, args.seed),
               "20news": lambda: load_20news(data_dir), "bbc": lambda: load_bbc(args.seed)}
    chosen = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SETS))
    if unknown:
        parser.error(f"unknown sets {unknown}; choose from {', '.join(SETS)}")
    results = {name: run_set(name, loaders[name](), args, cache) for name in chosen}
    print_table(results)
    if args.embed_n:
        embedding_throughput(data_dir, args.embed_n, args.threads, args.chunk)


if __name__ == "__main__":
    main()
