"""The report's data-issues section: counts per kind, the items most unlike the rest, and the duplicate sets."""
from __future__ import annotations

import json

from relabel.loop.store import Store
from relabel.report.html import e as _e, fmt as _fmt

WORST = 10           # outliers listed
SETS = 20            # duplicate sets listed (conflicting ones first)
EXCERPT = 160        # characters of each text shown

_COLUMNS = ("item_id", "consensus_label", "final_label", "outlier_score", "outlier", "duplicate_group",
            "conflicting_duplicate")


def data_issues_section(store: Store, rnd: int) -> str:
    cols = store.score_columns(rnd, _COLUMNS)
    if not any(s is not None for s in cols["outlier_score"]):
        return ("<section id=\"data-issues\"><h2>Data issues</h2><p class=\"note\">Not computed in this round "
                "(the model had no feature rows, e.g. a pred_probs file).</p></section>")
    ids, texts = store.item_texts()
    text_of = dict(zip(ids, texts))
    n = len(cols["item_id"])
    label = [f or c for f, c in zip(cols["final_label"], cols["consensus_label"])]
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(cols["duplicate_group"]):
        if g is not None:
            groups.setdefault(int(g), []).append(i)
    conflicting = [m for m in groups.values() if any(cols["conflicting_duplicate"][i] for i in m)]
    outliers = sorted((i for i in range(n) if cols["outlier"][i]), key=lambda i: cols["outlier_score"][i])
    flagged = len(store.flagged_items())
    counts = (f"<p class=\"lead\">{len(outliers)} outliers (items unlike any other, below the project's own "
              f"fence), {len(groups)} duplicate sets ({sum(len(m) for m in groups.values())} items), "
              f"{len(conflicting)} of them labelled two or more ways, {flagged} items flagged as bad data by "
              "reviewers (left out of scoring and final labels).</p>")

    def excerpt(i: int) -> str:
        text = (text_of.get(cols["item_id"][i]) or "").strip()
        return _e(text[:EXCERPT] + ("…" if len(text) > EXCERPT else "")) or "<i>(empty)</i>"

    rows = "".join(f"<tr><td>{_e(cols['item_id'][i])}</td><td class=\"text\">{excerpt(i)}</td>"
                   f"<td>{_e(label[i] or '-')}</td><td class=\"n\">{_fmt(cols['outlier_score'][i], 3)}</td></tr>"
                   for i in outliers[:WORST])
    worst = ("<h3>Most unlike the rest</h3><table><thead><tr><th>task</th><th>text</th><th>label</th>"
             f"<th class=\"n\">outlier score</th></tr></thead><tbody>{rows}</tbody></table>" if rows else "")
    listed = sorted(groups.values(), key=lambda m: (not any(cols["conflicting_duplicate"][i] for i in m), -len(m)))
    set_rows = "".join(
        "<tr><td>" + ("conflicting" if any(cols["conflicting_duplicate"][i] for i in m) else "same label")
        + "</td><td>" + "<br>".join(f"{_e(cols['item_id'][i])}: <span class=\"label\">{_e(label[i] or '-')}</span> "
                                    f"{excerpt(i)}" for i in m) + "</td></tr>"
        for m in listed[:SETS])
    sets = ("<h3>Duplicate sets</h3><table><thead><tr><th>labels</th><th>items (task: label, text)</th></tr>"
            f"</thead><tbody>{set_rows}</tbody></table>" if set_rows else "")
    return f"<section id=\"data-issues\"><h2>Data issues</h2>{counts}{worst}{sets}</section>"


def duplicate_of(value) -> list[str]:
    """The other items of an item's duplicate set, from the stored JSON column."""
    return json.loads(value) if value else []
