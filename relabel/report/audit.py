"""Report section on the audit (issue 22): the wrong labels left per round, the audited estimate with its 90%
interval beside the model's, and the review queue's precision (its correction rate against the audited rate).

The audited figure of round r is the estimate when round r was scored: its unreviewed items, the audit items of
rounds before r that reviewers decided (relabel/loop/audit_step.py). The last row adds every decided audit.
"""
from __future__ import annotations

from relabel.loop.audit_step import audited_estimate, wrong_labels_left
from relabel.loop.store import Store
from relabel.report.html import BLUE, RED, e, figure, img, section, style, svg
from relabel.scoring.error_estimate import format_expected


def _per_round(store: Store, upto: int) -> list[dict]:
    rows = []
    for r in store.rounds():
        if r["round"] > upto:
            break
        scores = store.score_columns(r["round"], ("item_id", "p_wrong"))
        est = audited_estimate(store, dict(zip(scores["item_id"], scores["p_wrong"])), before_round=r["round"])
        rows.append({"round": r["round"], "model": r["expected_remaining_errors"], "model_low": r["expected_low"],
                     "model_high": r["expected_high"], "audit": est})
    return rows


def _precision(store: Store, upto: int) -> list[tuple[int, int, int, int, int]]:
    """(round, ranked decided, ranked corrected, audit decided, audit corrected) per round with decisions."""
    kind = {(s["round"], s["item_id"]): bool(s["audit"]) for r in range(1, upto + 1) for s in store.selection(r)}
    counts: dict[int, list[int]] = {}
    for d in store.decisions():
        if d["round"] > upto or d["outcome"] not in ("confirmed", "corrected"):
            continue
        c = counts.setdefault(d["round"], [0, 0, 0, 0])
        k = 2 if kind.get((d["round"], d["item_id"])) else 0
        c[k] += 1
        c[k + 1] += d["outcome"] == "corrected"
    return [(rnd, *c) for rnd, c in sorted(counts.items())]


def _plot(rows: list[dict]) -> str:
    import matplotlib
    with matplotlib.rc_context({"text.parse_math": False}):
        fig = figure(7.0, 2.6)
        ax = fig.subplots()
        x = [r["round"] for r in rows]
        model = [r["model"] for r in rows]
        lo = [m - (r["model_low"] if r["model_low"] is not None else m) for m, r in zip(model, rows)]
        hi = [(r["model_high"] if r["model_high"] is not None else m) - m for m, r in zip(model, rows)]
        ax.errorbar([v - 0.08 for v in x], model, yerr=[lo, hi], fmt="o", color=RED, capsize=3,
                    label="model estimate (posterior)")
        audited = [(r["round"], r["audit"]) for r in rows if r["audit"] is not None]
        if audited:
            ax.errorbar([v + 0.08 for v, _ in audited], [a.expected for _, a in audited],
                        yerr=[[a.expected - a.low for _, a in audited], [a.high - a.expected for _, a in audited]],
                        fmt="s", color=BLUE, capsize=3, label="audited estimate, 90% interval")
        ax.set_title("Wrong labels left when each round was scored", fontsize=10, loc="left")
        ax.set_xticks(x)
        ax.set_ylim(bottom=0)
        style(ax)
        ax.legend(fontsize=7, frameon=False)
        return svg(fig)


def audit_section(store: Store, rnd: int) -> str:
    rows = _per_round(store, rnd)
    now = wrong_labels_left(store, store.latest_round() if rnd == store.latest_round()["round"] else
                            next(r for r in store.rounds() if r["round"] == rnd))
    lead = (f"Now: {now['text']}. Audit items are drawn at random from the unreviewed items in every batch; what "
            "reviewers find among them estimates the wrong labels left without trusting the model (it only "
            "narrows the interval). The model's estimate cannot see wrong labels the annotators agree on.")
    cells = []
    for r in rows:
        model = format_expected(r["model"], r["model_low"], r["model_high"])
        audited = (format_expected(r["audit"].expected, r["audit"].low, r["audit"].high) if r["audit"] else "–")
        cells.append(f"<tr><td>{r['round']}</td><td class=\"n\">{e(model)}</td><td class=\"n\">{e(audited)}</td>"
                     f"<td class=\"n\">{r['audit'].audited if r['audit'] else 0}</td></tr>")
    table = ("<table><thead><tr><th>round</th><th class=\"n\">model estimate</th><th class=\"n\">audited estimate"
             "</th><th class=\"n\">audited items</th></tr></thead><tbody>" + "".join(cells) + "</tbody></table>")
    prec = _precision(store, rnd)
    prec_html = ""
    if prec:
        prec_html = ("<h3>Precision of the review queue</h3><p>The ranked part of each batch against its random "
                     "audit: how much more often the ranked items were corrected than items drawn at random.</p>"
                     "<table><thead><tr><th>round</th><th class=\"n\">ranked: corrected</th><th class=\"n\">audit: "
                     "corrected</th><th class=\"n\">ratio</th></tr></thead><tbody>" + "".join(
                         f"<tr><td>{r}</td><td class=\"n\">{rc} of {rd}"
                         f"{f' ({rc / rd:.0%})' if rd else ''}</td><td class=\"n\">{ac} of {ad}"
                         f"{f' ({ac / ad:.0%})' if ad else ''}</td><td class=\"n\">"
                         f"{f'{(rc / rd) / (ac / ad):.1f}×' if rd and ad and ac else '–'}</td></tr>"
                         for r, rd, rc, ad, ac in prec) + "</tbody></table>")
    # The plot only once there is an audited figure to set beside the model's (the table says the rest).
    plot = img(_plot(rows), "Audited and model estimates per round") if any(r["audit"] for r in rows) else ""
    return section("audit", "Wrong labels left: audited", lead, table + plot + prec_html)
