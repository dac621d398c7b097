"""The HTML report of a span project's round (issue 23): the round in numbers, span agreement (per annotator and
label, exact and relaxed span P/R/F1 against the consensus; pairwise annotator agreement) and the items most
likely wrong with their reason. Self-contained like the classification report (relabel/report/page.py)."""
from __future__ import annotations

from relabel.errors import StoreError
from relabel.loop.span_round import span_pairwise_rows
from relabel.report.assets import SCRIPT, STYLE, content_security_policy
from relabel.report.html import e, fmt, section


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_span_report(store, round_number: int | None, top: int) -> tuple[str, int, int]:
    rounds = store.rounds()
    if not rounds:
        raise StoreError(f"The store {str(store.path)!r} has no scored round yet; run `relabel round` first.")
    row = rounds[-1] if round_number is None else next((r for r in rounds if r["round"] == round_number), None)
    if row is None:
        raise StoreError(f"The store has no round {round_number}; rounds are {[r['round'] for r in rounds]}.")
    rnd = row["round"]
    title = store.get_meta("project_title") or f"project {store.project_id}"
    items = list(store.db.query("select * from span_item_scores where round = ? order by quality, item_id", [rnd]))
    reviewed = sum(r["reviewed"] for r in items)
    n_spans = store.count("span_consensus", "round = ?", [rnd])
    summary = section("round", f"Round {rnd}", body=_table(
        ["items", "annotations", "annotators", "consensus spans", "decided by reviewers", "method"],
        [[row["items"], row["annotations"], row["annotators"], n_spans, reviewed, row["method"]]]))
    scores = list(store.db.query("select * from span_annotator_scores where round = ? order by annotator_id, "
                                 "control, label", [rnd]))
    agreement_rows = [[r["annotator_id"], r["control"] or "all", r["label"] or "all", r["n_spans"],
                       fmt(r["exact_precision"]), fmt(r["exact_recall"]), fmt(r["exact_f1"]),
                       fmt(r["relaxed_precision"]), fmt(r["relaxed_recall"]), fmt(r["relaxed_f1"])] for r in scores]
    pairs = span_pairwise_rows(store, rnd)
    agreement = section(
        "span-agreement", "Span agreement",
        "Each annotator's spans against the consensus on the items they annotated, per control and label: exact "
        "(same tokens and label) and relaxed (overlapping tokens, same label) precision, recall and F1; spans are "
        "compared on relabel's tokens, so whitespace at a boundary is no disagreement, and nothing depends on "
        "the order regions were saved in. Then each pair of annotators on their shared items.",
        _table(["annotator", "control", "label", "spans", "exact P", "exact R", "exact F1", "relaxed P",
                "relaxed R", "relaxed F1"], agreement_rows)
        + "<h3>Pairwise agreement</h3>"
        + _table(["annotator", "annotator", "shared items", "spans", "exact F1", "relaxed F1"],
                 [[p["annotator_a"], p["annotator_b"], p["shared_items"], p["spans"], fmt(p["exact_f1"]),
                   fmt(p["relaxed_f1"])] for p in pairs]))
    listed = [r for r in items if not r["reviewed"]][:top]
    worst = section("items", "Items most likely wrong",
                    "Lowest quality first (the probability that every token tag of the item's consensus is right).",
                    _table(["task", "quality", "annotators", "consensus spans", "reason"],
                           [[r["item_id"], fmt(r["quality"], 3), r["n_annotators"], r["n_spans"], r["reason"] or ""]
                            for r in listed]))
    body = (f"<header><h1>Relabel report: {e(title)}, round {rnd} (spans)</h1></header>"
            + summary + agreement + worst)
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{content_security_policy()}\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Relabel report: {e(title)}, round {rnd}</title><style>{STYLE}</style></head>"
            f"<body><main>\n{body}\n</main><script>{SCRIPT}</script></body></html>\n")
    return page, rnd, len(listed)
