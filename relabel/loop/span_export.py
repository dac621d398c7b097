"""Export consensus spans: JSON Lines (one object per item) and CoNLL BIO (one token per line).

    write_jsonl(path, item_ids, texts, consensus)     # {"id", "text", "spans": [{"start", "end", "label", ...}]}
    write_conll(path, item_ids, texts, consensus)     # "token<TAB>tag[<TAB>tag per further control]"

CoNLL uses relabel's tokenisation (relabel.scoring.spans: words and single punctuation marks, so the tags line
up with the spans relabel scored). One tag column per control, in control order. Within one control a token
can carry one tag only: where a control has overlapping spans (choice="multiple" or nested labels), the column
holds the longest span's label and the export notes how many tokens were in several spans of that control.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from relabel.atomic_files import atomic_write
from relabel.scoring.spans import tokenize


def jsonl_lines(item_ids, texts, consensus: pd.DataFrame) -> list[str]:
    extra = [c for c in ("control",) if c in consensus.columns]
    by_item = {k: g for k, g in consensus.groupby("item", sort=False)}
    lines = []
    for index, (item_id, text) in enumerate(zip(item_ids, texts)):
        group = by_item.get(index)
        spans = [] if group is None else [
            {"start": int(r.start), "end": int(r.end), "label": r.label, "text": text[int(r.start):int(r.end)],
             **{c: getattr(r, c) for c in extra}}
            for r in group.sort_values(["start", "end"]).itertuples()]
        lines.append(json.dumps({"id": _plain(item_id), "text": text, "spans": spans}, ensure_ascii=False))
    return lines


def conll_lines(item_ids, texts, consensus: pd.DataFrame) -> tuple[list[str], int]:
    """The CoNLL lines (a ``# id = ...`` comment, then one token per line, a blank line after each item) and
    the number of tokens that were in more than one span of one control."""
    tokens = tokenize(texts)
    controls = sorted(consensus["control"].unique()) if "control" in consensus.columns else [None]
    columns, clashes = [], 0
    for control in controls:
        mine = consensus if control is None else consensus[consensus["control"] == control]
        first, stop = tokens.covering(mine["item"].to_numpy(), mine["start"].to_numpy(), mine["end"].to_numpy())
        tags = np.full(tokens.n_tokens, "O", dtype=object)
        covered = np.zeros(tokens.n_tokens, dtype=np.int64)
        order = np.argsort(-(stop - first), kind="stable")[::-1]   # longest last, so it wins
        for f, s, label in zip(first[order], stop[order], mine["label"].to_numpy()[order]):
            if s > f:
                tags[f] = f"B-{label}"
                tags[f + 1:s] = f"I-{label}"
                covered[f:s] += 1
        clashes += int((covered > 1).sum())
        columns.append(tags)
    lines = []
    for index, (item_id, text) in enumerate(zip(item_ids, texts)):
        lines.append(f"# id = {_plain(item_id)}")
        for row in range(tokens.offsets[index], tokens.offsets[index + 1]):
            word = text[tokens.start[row]:tokens.end[row]]
            lines.append("\t".join([word] + [str(col[row]) for col in columns]))
        lines.append("")
    return lines, clashes


def write_jsonl(path, item_ids, texts, consensus) -> None:
    with atomic_write(path, what="the JSONL export") as out:
        out.write("\n".join(jsonl_lines(item_ids, texts, consensus)) + "\n")


def write_conll(path, item_ids, texts, consensus) -> int:
    lines, clashes = conll_lines(item_ids, texts, consensus)
    with atomic_write(path, what="the CoNLL export") as out:
        out.write("\n".join(lines) + "\n")
    return clashes


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
