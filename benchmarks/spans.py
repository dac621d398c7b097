"""Span consensus on PICO (real crowd workers against a medical student's gold) and a simulated scale project.

    PYTHONPATH=. python benchmarks/spans.py            # PICO table + the 20,000-sentence simulation
    PYTHONPATH=. python benchmarks/spans.py --pico     # PICO only
    PYTHONPATH=. python benchmarks/spans.py --scale 2000

Every method sees the same input (191 abstracts, ~6 workers each, empty answers included) and is scored
against the gold with the same tokenisation (relabel.scoring.spans): spans are compared by the tokens they
cover, so a span that takes or leaves a trailing space is the same span. Exact: same tokens and label;
relaxed: overlapping tokens and the same label (precision over predicted spans, recall over gold spans).
Methods: token majority vote (per-token majority of the BIO tags, ties to O, lenient decode); span majority
vote (spans, by tokens, marked by more than half of the item's annotators); token-wise Dawid-Skene
(independent tokens); relabel without a model (Dawid-Skene with the BIO Markov chain, Viterbi); relabel with
its out-of-fold token model; the best and worst single annotator by exact F1 among annotators with at least
MIN_ITEMS_FOR_ANNOTATOR items, each scored on their own items only (so not the same items as the others).
AUROC: per-item quality (1 - quality as the score) against "the consensus of this item differs from the gold in
any span" (exact). Each method runs in a forked child: seconds is its wall time, cpu_seconds its CPU time (all
threads; the fair figure on a shared machine), added_peak_mb its peak RSS above the RSS it started with, and
process_peak_mb (scale run) the child's whole peak RSS including the loaded data.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))   # run as `python benchmarks/<name>.py` from anywhere
from benchmarks.shared_data import default_data_dir, proc_status_mb
from relabel.models.token_model import OutOfFoldTokenModel
from relabel.scoring.span_consensus import consensus_spans
from relabel.scoring.span_input import encode
from relabel.scoring.spans import tag_runs, tokenize

MIN_ITEMS_FOR_ANNOTATOR = 10


def load_pico(folder: Path):
    crowd = [json.loads(line) for line in (folder / "acl17-test.crowd.jsonl").read_text().splitlines()]
    gold = {json.loads(line)["docid"]: json.loads(line)
            for line in (folder / "acl17-test.gold.jsonl").read_text().splitlines()}
    texts, rows, answered, gold_rows = [], [], [], []
    for i, doc in enumerate(crowd):
        texts.append((folder / "docs" / f"{doc['docid']}.txt").read_text())
        for worker, spans in doc["Participants"].items():
            answered.append((i, worker))
            rows.extend((i, worker, s, e, "Participants") for s, e in spans)
        for s, e in gold[doc["docid"]]["Participants"].get("MedicalStudent", []):  # 3 gold docs mark nothing
            gold_rows.append((i, s, e, "Participants"))
    spans = pd.DataFrame(rows, columns=["item", "annotator", "start", "end", "label"])
    return (texts, spans, pd.DataFrame(answered, columns=["item", "annotator"]),
            pd.DataFrame(gold_rows, columns=["item", "start", "end", "label"]))


def _token_frame(tokens, frame) -> pd.DataFrame:
    first, stop = tokens.covering(frame["item"].to_numpy(), frame["start"].to_numpy(), frame["end"].to_numpy())
    out = frame.assign(first=first, stop=stop)
    return out[out["stop"] > out["first"]]


def score(tokens, pred: pd.DataFrame, gold: pd.DataFrame, items=None) -> dict:
    p, g = _token_frame(tokens, pred), _token_frame(tokens, gold)
    if items is not None:
        g = g[g["item"].isin(items)]
        p = p[p["item"].isin(items)]
    out = {}
    keys = ["item", "label", "first", "stop"]
    p = p[keys].drop_duplicates()
    g = g[keys].drop_duplicates()
    tp = len(p.merge(g, on=keys))
    out.update(_prf("exact", tp, len(p), tp, len(g)))
    pairs = p.reset_index(drop=True).reset_index().merge(g.reset_index(drop=True).reset_index(),
                                                         on=["item", "label"], suffixes=("_p", "_g"))
    hit = pairs[(pairs["first_p"] < pairs["stop_g"]) & (pairs["first_g"] < pairs["stop_p"])]
    out.update(_prf("relaxed", hit["index_p"].nunique(), len(p), hit["index_g"].nunique(), len(g)))
    return out


def _prf(kind, tp_p, n_p, tp_g, n_g):
    precision = tp_p / n_p if n_p else 0.0
    recall = tp_g / n_g if n_g else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {f"{kind}_p": precision, f"{kind}_r": recall, f"{kind}_f1": f1}


def item_errors(tokens, pred, gold, n_items) -> np.ndarray:
    """True for items whose predicted span set differs from the gold's (token space, with labels)."""
    keys = ["item", "label", "first", "stop"]
    p = _token_frame(tokens, pred)[keys].drop_duplicates()
    g = _token_frame(tokens, gold)[keys].drop_duplicates()
    both = p.merge(g, on=keys, how="outer", indicator=True)
    wrong = np.zeros(n_items, dtype=bool)
    wrong[both.loc[both["_merge"] != "both", "item"].to_numpy(dtype=np.int64)] = True
    return wrong


def token_majority(texts, spans, answered, tokens) -> pd.DataFrame:
    frames = []
    data = encode(texts, spans, tokens, answered=answered)
    for layer in data.layers:
        votes = np.zeros((tokens.n_tokens, layer.n_states))
        np.add.at(votes, (layer.obs.token, layer.obs.tag), 1.0)
        tags = votes.argmax(axis=1)        # first maximum: ties go to O, then B before I
        frames.append(_runs_frame(tokens, tags, layer.labels))
    return pd.concat(frames, ignore_index=True)


def crowdkit_token_ds(texts, spans, answered, tokens) -> pd.DataFrame:
    """crowd-kit's DawidSkene over the same BIO token tags (tokens as tasks), argmax decode: a cross-check that
    relabel's token-wise Dawid-Skene baseline is the usual one."""
    from crowdkit.aggregation import DawidSkene

    frames = []
    for layer in encode(texts, spans, tokens, answered=answered).layers:
        table = pd.DataFrame({"task": layer.obs.token, "worker": layer.obs.annotator, "label": layer.obs.tag})
        found = DawidSkene(n_iter=50).fit_predict(table)
        tags = np.zeros(tokens.n_tokens, dtype=np.int64)
        tags[found.index.to_numpy(dtype=np.int64)] = found.to_numpy(dtype=np.int64)
        frames.append(_runs_frame(tokens, tags, layer.labels))
    return pd.concat(frames, ignore_index=True)


def _runs_frame(tokens, tags, labels) -> pd.DataFrame:
    first, stop, label = tag_runs(tags, tokens.item)
    start, end = tokens.char_spans(first, stop)
    return pd.DataFrame({"item": tokens.item[first], "start": start, "end": end,
                         "label": np.asarray(labels, dtype=object)[label] if len(first) else []})


def span_majority(spans, answered, tokens) -> pd.DataFrame:
    t = _token_frame(tokens, spans)
    votes = t.groupby(["item", "label", "first", "stop"])["annotator"].nunique().rename("votes").reset_index()
    n = answered.groupby("item")["annotator"].nunique()
    votes = votes[votes["votes"] > n.reindex(votes["item"]).to_numpy() / 2]
    start, end = tokens.char_spans(votes["first"].to_numpy(), votes["stop"].to_numpy())
    return pd.DataFrame({"item": votes["item"].to_numpy(), "start": start, "end": end,
                         "label": votes["label"].to_numpy()})


def auroc(score_wrong: np.ndarray, wrong: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score
    if wrong.all() or not wrong.any():
        return float("nan")
    return float(roc_auc_score(wrong, score_wrong))


def measured(fn):
    """fn() in a forked child: its result, wall seconds, and the child's peak RSS (VmHWM) above the RSS it
    started with (the parent's pages it shares count at fork; what the method itself adds is the difference)."""
    import multiprocessing
    import pickle

    reader, writer = multiprocessing.Pipe(duplex=False)

    def child():
        base = proc_status_mb("VmRSS")
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        writer.send_bytes(pickle.dumps((out, (seconds, cpu), proc_status_mb("VmHWM") - base,
                                        proc_status_mb("VmHWM"))))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    payload = reader.recv_bytes()
    process.join()
    return pickle.loads(payload)


def run_pico(folder: Path) -> None:
    texts, spans, answered, gold = load_pico(folder)
    tokens = tokenize(texts)
    n = len(texts)
    print(f"PICO: {n} abstracts, {tokens.n_tokens} tokens, {spans['annotator'].nunique()} workers, "
          f"{len(answered)} answers ({(~answered.set_index(['item', 'annotator']).index.isin(spans.set_index(['item', 'annotator']).index)).sum()} empty), "
          f"{len(spans)} crowd spans, {len(gold)} gold spans")
    rows = []
    methods = {
        "token majority vote": lambda: (token_majority(texts, spans, answered, tokens), None),
        "span majority vote": lambda: (span_majority(spans, answered, tokens), None),
        "token Dawid-Skene": lambda: _relabel(texts, spans, answered, tokens, method="token"),
        "token Dawid-Skene (crowd-kit)": lambda: (crowdkit_token_ds(texts, spans, answered, tokens), None),
        "HMM chain (relabel method='chain')": lambda: _relabel(texts, spans, answered, tokens, method="chain"),
        "relabel, no model": lambda: _relabel(texts, spans, answered, tokens),
        "relabel, with model": lambda: _relabel(texts, spans, answered, tokens, model=OutOfFoldTokenModel()),
    }
    for name, fn in methods.items():
        (pred, quality), seconds, peak, _ = measured(fn)
        row = {"method": name, **score(tokens, pred, gold)}
        if quality is not None:
            wrong = item_errors(tokens, pred, gold, n)
            row["auroc_quality"] = auroc(-np.log(np.maximum(quality["quality"].to_numpy(), 1e-300)), wrong)
            row["auroc_worst_token"] = auroc(-quality["worst_token"].to_numpy(), wrong)
            row["items_wrong"] = int(wrong.sum())
        row.update(seconds=seconds[0], cpu_seconds=seconds[1], added_peak_mb=peak)
        rows.append(row)
    per = []
    for worker, mine in answered.groupby("annotator"):
        items = mine["item"].unique()
        if len(items) >= MIN_ITEMS_FOR_ANNOTATOR:
            per.append({"worker": worker, "n_items": len(items),
                        **score(tokens, spans[spans["annotator"] == worker], gold, items)})
    per = pd.DataFrame(per).sort_values("exact_f1")
    for label, row in (("best single annotator", per.iloc[-1]), ("worst single annotator", per.iloc[0])):
        rows.append({"method": f"{label} ({row['n_items']} items)",
                     **{k: row[k] for k in row.index if k not in ("worker", "n_items")}})
    table = pd.DataFrame(rows).set_index("method")
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(table)
    print(f"{len(per)} workers with >= {MIN_ITEMS_FOR_ANNOTATOR} items; median exact F1 "
          f"{per['exact_f1'].median():.3f}, relaxed {per['relaxed_f1'].median():.3f}")


def _relabel(texts, spans, answered, tokens, *, method="factorized", model=None):
    result = consensus_spans(texts, spans, answered=answered, method=method, token_model=model, tokens=tokens)
    return result.spans, result.items


def simulate(n_sentences: int, seed: int = 0):
    """A 4-type NER project: sentences of 8-40 words, 0-3 entities of 1-4 words each; 5 annotators with
    different recall, type confusion, boundary noise (a word more or less at either end) and false spans."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{k}" for k in range(5000)], dtype=object)
    entity_vocab = [np.array([f"E{t}x{k}" for k in range(800)], dtype=object) for t in range(4)]
    labels = np.array(["PER", "ORG", "LOC", "MISC"], dtype=object)
    skills = [  # recall, type confusion, boundary noise, false spans per sentence
        (0.95, 0.02, 0.05, 0.02), (0.9, 0.05, 0.1, 0.05), (0.85, 0.1, 0.15, 0.05),
        (0.75, 0.15, 0.25, 0.1), (0.6, 0.25, 0.35, 0.2)]
    texts, truth, rows, answered = [], [], [], []
    for i in range(n_sentences):
        words = list(rng.choice(vocab, rng.integers(8, 41)))
        n_ent = rng.integers(0, 4)
        ents = []
        for _ in range(n_ent):
            t = int(rng.integers(0, 4))
            length = int(rng.integers(1, 5))
            pos = int(rng.integers(0, len(words)))
            if any(pos <= e + 1 and s <= pos + length for s, e, _ in ents):
                continue
            words[pos:pos] = list(rng.choice(entity_vocab[t], length))
            ents = [(s + length if s > pos else s, e + length if s > pos else e, lt) for s, e, lt in ents]
            ents.append((pos, pos + length - 1, t))
        starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
        texts.append(" ".join(words))
        for s, e, t in ents:
            truth.append((i, int(starts[s]), int(starts[e] + len(words[e])), labels[t]))
        for a, (recall, confuse, boundary, false) in enumerate(skills):
            answered.append((i, f"ann{a}"))
            for s, e, t in ents:
                if rng.random() > recall:
                    continue
                if rng.random() < boundary:
                    s = min(max(0, s + int(rng.choice([-1, 1]))), e)
                if rng.random() < boundary:
                    e = max(min(len(words) - 1, e + int(rng.choice([-1, 1]))), s)
                lt = labels[rng.integers(0, 4)] if rng.random() < confuse else labels[t]
                rows.append((i, f"ann{a}", int(starts[s]), int(starts[e] + len(words[e])), lt))
            if rng.random() < false:
                w = int(rng.integers(0, len(words)))
                if not any(s <= w <= e for s, e, _ in ents):
                    rows.append((i, f"ann{a}", int(starts[w]), int(starts[w] + len(words[w])),
                                 labels[rng.integers(0, 4)]))
    spans = pd.DataFrame(rows, columns=["item", "annotator", "start", "end", "label"])
    # one annotator's boundary noise can make two of their spans touch or overlap: keep the first
    spans = spans.sort_values(["item", "annotator", "start"], ignore_index=True)
    prev_end = spans.groupby(["item", "annotator", "label"])["end"].shift(1)
    spans = spans[~(spans["start"] < prev_end)].reset_index(drop=True)
    return texts, spans, pd.DataFrame(answered, columns=["item", "annotator"]), pd.DataFrame(
        truth, columns=["item", "start", "end", "label"])


def run_scale(n_sentences: int, only_relabel: bool = False) -> None:
    t0 = time.perf_counter()
    texts, spans, answered, truth = simulate(n_sentences)
    print(f"\nSimulated: {n_sentences} sentences, 4 types, 5 annotators, {len(spans)} spans, {len(truth)} true "
          f"spans (generated in {time.perf_counter() - t0:.1f} s)")
    tokens = tokenize(texts)
    rows = []
    methods = {
        "token majority vote": lambda: (token_majority(texts, spans, answered, tokens), None),
        "token Dawid-Skene": lambda: _relabel(texts, spans, answered, tokens, method="token"),
        "HMM chain (relabel method='chain')": lambda: _relabel(texts, spans, answered, tokens, method="chain"),
        "relabel, no model": lambda: _relabel(texts, spans, answered, tokens),
        "relabel, with model": lambda: _relabel(texts, spans, answered, tokens, model=OutOfFoldTokenModel()),
    }
    if only_relabel:
        methods = {name: fn for name, fn in methods.items() if name == "relabel, with model"}
    for name, fn in methods.items():
        (pred, _), seconds, peak, total = measured(fn)
        rows.append({"method": name, **score(tokens, pred, truth), "seconds": seconds[0], "cpu_seconds": seconds[1],
                     "added_peak_mb": peak,
                     "process_peak_mb": total})
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(pd.DataFrame(rows).set_index("method"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pico", action="store_true", help="PICO only")
    parser.add_argument("--scale", type=int, default=20000, help="sentences in the simulated project (0: skip)")
    parser.add_argument("--scale-only", action="store_true", help="the simulated project only")
    parser.add_argument("--scale-relabel-only", action="store_true",
                        help="in the simulated project, time relabel with its model only (no baselines)")
    args = parser.parse_args()
    if not args.scale_only:
        run_pico(default_data_dir() / "spans" / "pico")
    if not args.pico and args.scale:
        run_scale(args.scale, args.scale_relabel_only)


if __name__ == "__main__":
    main()
