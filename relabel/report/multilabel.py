"""The round report of a multi-label project (issue 24): per-class agreement (Fleiss' kappa per class), which
classes annotators miss most, each annotator's sensitivity and specificity per class, and the items whose set is
least likely right, with every annotator's tags and the reason. Same page frame as relabel/report/page.py.
"""
from __future__ import annotations

import json

from connectors.label_studio_common import decode_label_set
from relabel.loop.store import Store
from relabel.report import review as report_review
from relabel.report.html import e, fmt, section, v, when

NONE_APPLY = "(none apply)"
# Characters of an item's text shown in the items table (a click expands; bounds the page size).
EXCERPT_CHARS = 2000
# Classes named in the "most often missed" sentence.
NAMED_CLASSES = 3


def multilabel_body(store: Store, row: dict, base_url: str, top: int) -> tuple[str, int]:
    """The report body of round ``row`` and how many items it lists."""
    rnd = int(row["round"])
    stats = json.loads(row["class_stats"] or "{}")
    classes_rows = stats.get("multilabel_classes") or []
    title = store.get_meta("project_title") or f"project {store.project_id}"
    items_html, listed = _items(store, rnd, top, base_url)
    decisions = [d for d in store.decisions() if d["round"] < rnd or d["round"] == rnd]
    body = "\n".join([
        f"<header><h1>Relabel report: {e(title)}, round {rnd}</h1>"
        f"<p>Project {e(store.project_id)} · multi-label, {len(classes_rows)} classes · scored "
        f"{e(when(row['scored_at']))} with {e(row['method'] or '-')} · status {e(row['status'])}</p></header>",
        section("summary", "Round summary", body=_summary(row, decisions)),
        section("classes", "Per-class agreement",
                _missed_sentence(classes_rows),
                _classes_table(classes_rows)),
        section("annotators", "Annotators per class",
                "Sensitivity (share of a class's true tags the annotator gave) / specificity (share of its absent "
                "tags they left out), estimated by the consensus; low sensitivity = the annotator misses the class.",
                _annotators_table(store, rnd)),
        items_html,
        "<footer>Made by relabel from the store. Per-class kappa uses every item with at least two annotations; "
        "missed and extra rates weigh each annotation by the consensus probability of the class.</footer>",
    ])
    return body, listed


def _summary(row: dict, decisions: list[dict]) -> str:
    reviewed = sum(d["outcome"] in ("confirmed", "corrected") for d in decisions)
    corrected = sum(d["outcome"] == "corrected" for d in decisions)
    cells = [("items", row["items"]), ("labelled", row["labelled_items"]), ("annotations", row["annotations"]),
             ("annotators", row["annotators"]),
             ("wrong sets expected (unreviewed)", fmt(row["expected_remaining_errors"], 1)),
             ("sets below quality 0.5", row["label_issues"]), ("reviewed sets", reviewed), ("corrected", corrected)]
    body = "".join(f"<tr><th>{e(k)}</th><td class=\"n\">{e(v_)}</td></tr>" for k, v_ in cells)
    note = f"<p class=\"note\">{e(row['note'])}</p>" if row.get("note") else ""
    return f"<table>{body}</table>{note}"


def _missed_sentence(rows: list[dict]) -> str:
    ranked = [r for r in rows if r.get("missed") is not None][:NAMED_CLASSES]
    if not ranked:
        return "No class has enough tags to say which ones annotators miss."
    named = ", ".join(f"{r['class']} ({r['missed']:.0%} of its tags missed)" for r in ranked)
    return f"Most often missed: {named}. Kappa is Fleiss' kappa of each class's yes/no tags (1 = full agreement)."


def _classes_table(rows: list[dict]) -> str:
    head = ("<tr><th>class</th><th class=\"n\">prevalence</th><th class=\"n\">kappa</th>"
            "<th class=\"n\">missed</th><th class=\"n\">added wrongly</th></tr>")
    body = "".join(
        f"<tr><td>{e(r['class'])}</td><td class=\"n\" data-v=\"{v(r['prevalence'])}\">{fmt(r['prevalence'], 3)}</td>"
        f"<td class=\"n\" data-v=\"{v(r['kappa'])}\">{fmt(r['kappa'], 3)}</td>"
        f"<td class=\"n\" data-v=\"{v(r['missed'])}\">{fmt(r['missed'], 3)}</td>"
        f"<td class=\"n\" data-v=\"{v(r['extra'])}\">{fmt(r['extra'], 3)}</td></tr>" for r in rows)
    return f"<table class=\"sortable\"><thead>{head}</thead><tbody>{body}</tbody></table>"


def _annotators_table(store: Store, rnd: int) -> str:
    rows = store.multilabel_annotator_classes(rnd)
    classes: list[str] = []
    table: dict[str, dict[str, dict]] = {}
    for r in rows:
        if r["class"] not in classes:
            classes.append(r["class"])
        table.setdefault(r["annotator_id"], {})[r["class"]] = r
    head = "<tr><th>annotator</th><th class=\"n\">sets</th>" + "".join(
        f"<th class=\"n\">{e(c)}</th>" for c in classes) + "</tr>"
    body = []
    for who, per in table.items():
        n = next(iter(per.values()))["num_labels"]
        cells = "".join(f"<td class=\"n\" data-v=\"{v(per[c]['sensitivity'])}\">{fmt(per[c]['sensitivity'], 2)} / "
                        f"{fmt(per[c]['specificity'], 2)}</td>" if c in per else "<td></td>" for c in classes)
        body.append(f"<tr><td>{e(who)}</td><td class=\"n\">{e(n)}</td>{cells}</tr>")
    return f"<table class=\"sortable\"><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def _items(store: Store, rnd: int, top: int, base_url: str) -> tuple[str, int]:
    rows = [r for r in store.multilabel_scores(rnd) if r["labelled"] and not r["reviewed"] and r["num_annotations"]]
    rows = sorted(rows, key=lambda r: r["quality"])[:top]
    if not rows:
        return section("items", "Sets most likely wrong", body="<p class=\"note\">Every labelled item has been "
                                                               "reviewed.</p>"), 0
    ids = [r["item_id"] for r in rows]
    given = store.labels_of(ids)
    texts = {i["item_id"]: i["text"] for i in store.items(with_data=False) if i["item_id"] in set(ids)}
    waiting = store.waiting_item_ids()
    body = []
    for n, r in enumerate(rows, 1):
        iid = r["item_id"]
        text = texts.get(iid) or ""
        excerpt = text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")
        tags = "<br>".join(f"<span class=\"who\">{e(who)}</span>: {e(_describe(label))}"
                           for who, label in given.get(iid, []))
        tag = "<div class=\"tag\">in review</div>" if iid in waiting else ""
        body.append(f"<tr><td class=\"n\">{n}</td><td>{report_review.task_link(base_url, store.project_id, iid)}{tag}"
                    f"</td><td class=\"text\"><div class=\"excerpt\" tabindex=\"0\">{e(excerpt)}</div></td>"
                    f"<td>{tags}</td><td><span class=\"label sugg\">{e(_describe(r['labels']))}</span></td>"
                    f"<td>{e(r['reason'] or '')}</td><td class=\"n\" data-v=\"{v(r['quality'])}\">"
                    f"{fmt(r['quality'], 3)}</td></tr>")
    head = ("<tr><th class=\"n\">#</th><th>task</th><th>text</th><th>tags given (by whom)</th><th>consensus set</th>"
            "<th>reason</th><th class=\"n\">P(set right)</th></tr>")
    lead = (f"The {len(rows)} unreviewed labelled items whose consensus set is least likely right in round {rnd}, "
            "worst first.")
    return section("items", "Sets most likely wrong", lead,
                   f"<table class=\"items\"><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"), len(rows)


def _describe(label: str | None) -> str:
    names = decode_label_set(label) or ()
    return ", ".join(names) if names else NONE_APPLY
