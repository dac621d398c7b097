"""The round report: one self-contained HTML page a team lead can mail to annotators and their manager.

    write_report(store, "report.html")              # what `relabel report --out report.html` does
    write_report(store, "r2.html", round=2, top=30)

The page opens offline: plots are matplotlib SVGs inlined as data: URIs, the stylesheet and the one small
sorting script are inline, and a Content-Security-Policy forbids loading anything from anywhere. Every piece of
text that came from Label Studio (task text, annotator names, class names) is HTML-escaped.

Its size does not grow with the project: plots are histograms and per-annotator or per-class marks, never
per-item, and only the ``top`` items most likely mislabelled are listed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from relabel.atomic_files import atomic_write
from relabel.scoring.error_estimate import format_expected
from relabel.scoring.override_evidence import regime_sentence
from relabel.config import label_studio_url
from relabel.errors import ConfigError, StoreError
from relabel.loop.store_spans import is_span_store
from relabel.redaction import url_without_userinfo
from relabel.report.assets import SCRIPT, STYLE, content_security_policy
from relabel.report.html import AMBER as _AMBER, BLUE as _BLUE, GREEN as _GREEN, GREY as _GREY, RED as _RED
from relabel.report.html import e as _e, figure as _figure, fmt as _fmt, img as _img, pct as _pct, style as _style
from relabel.report.html import age, short_name, svg as _svg, v as _v, when
from relabel.report import agreement as report_agreement
from relabel.report import audit as report_audit
from relabel.report import review as report_review
from relabel.report.data_issues import data_issues_section
from relabel.scoring.selection import select_for_review
from relabel.loop.store import Store
from relabel.loop.store_schema import now

DEFAULT_TOP = 50
# Characters of an item's text kept in the list of likely mislabelled items: the page shows 3 lines and a click
# expands the rest, so this only bounds the page size (top x EXCERPT_CHARS).
EXCERPT_CHARS = 2000
# Heatmap cells get their number written in them up to this many classes; beyond, the colours speak alone.
ANNOTATE_CLASSES_UP_TO = 12
# Class pairs named in words under the heatmaps.
CONFUSED_PAIRS = 6
# "What is left to fix" bins 1 - quality on a log axis from LEFT_TO_FIX_FLOOR to 1: quality 0.9999 and 0.99 land
# in different bars, where a linear quality histogram piles every settled item into one bar at 1.0.
QUALITY_BINS = 24
LEFT_TO_FIX_FLOOR = 1e-4
# Height in inches of the three small trend charts (a glance, not a third of the first screen).
TREND_HEIGHT = 1.7
# Annotators named next to their point in the scatter: the lowest-quality few.
NAMED_ANNOTATORS = 3
# Scatter x axis goes logarithmic when the busiest annotator has this many times the labels of the quietest.
LOG_X_RATIO = 30
# The quality histogram's y axis goes logarithmic when its tallest bar is this many times the median bar.
LOG_Y_RATIO = 20


@dataclass(frozen=True)
class ReportSummary:
    """What write_report wrote."""

    round: int
    path: Path
    bytes: int
    items_listed: int


def write_report(store: Store, out: str | Path, round: int | None = None, *, url: str | None = None,
                 top: int = DEFAULT_TOP) -> ReportSummary:
    """Render the report of ``round`` (default: the latest) into ``out``; returns what was written.

    ``url`` is the Label Studio server the item links point at (default: the one `relabel init` recorded);
    ``top`` is how many of the items most likely mislabelled are listed.
    """
    path = Path(out)
    if not path.parent.exists():
        raise ConfigError(f"The folder {str(path.parent)!r} for the report does not exist; create it or choose "
                          "another --out path.")
    if is_span_store(store):       # a span project's report: relabel/report/span_page.py
        from relabel.report.span_page import render_span_report
        page, rnd, listed = render_span_report(store, round, top)
    else:
        page, rnd, listed = _render(store, round, url, top)
    with atomic_write(path, what="the report") as f:
        f.write(page)
    return ReportSummary(round=rnd, path=path, bytes=path.stat().st_size, items_listed=listed)


def render_report(store: Store, round: int | None = None, *, url: str | None = None, top: int = DEFAULT_TOP) -> str:
    """The report of ``round`` (default: the latest) as one HTML string."""
    return _render(store, round, url, top)[0]


# ---- validation ---------------------------------------------------------------------------------------------
def _check_round(store: Store, round: int | None) -> dict:
    rounds = store.rounds()
    if not rounds:
        raise StoreError(f"The store {str(store.path)!r} has no scored round yet; run `relabel round` first.")
    if round is None:
        return rounds[-1]
    numbers = [r["round"] for r in rounds]
    if isinstance(round, bool) or not isinstance(round, (int, np.integer)) or int(round) not in numbers:
        raise StoreError(f"Round {round!r} is not in the store (it has rounds {numbers[0]}-{numbers[-1]}); "
                         f"pass --round with one of them.")
    return rounds[numbers.index(int(round))]


def _link_base(url: str | None) -> str:
    """The server the task links point at: http(s) only (never a javascript: link), without user:password@."""
    return url_without_userinfo(label_studio_url(url, "--url")) if url else ""


def _check_top(top) -> int:
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ConfigError(f"The number of items to list (--top) must be a positive integer. Got {top!r}.")
    return int(top)


# ---- the page -----------------------------------------------------------------------------------------------
def _render(store: Store, round: int | None, url: str | None, top) -> tuple[str, int, int]:
    top = _check_top(top)
    row = _check_round(store, round)
    rnd = int(row["round"])
    # the override regime the round was scored in, stored with its class matrices (relabel.loop.rounds)
    row = {**row, "override_evidence": store.class_stats(rnd).get("override_evidence")}
    classes = store.round_classes(rnd)  # the labeling config may have gained or reordered classes since
    trend = _trend(store, rnd)
    base_url = _link_base(url or store.get_meta("label_studio_url"))
    title = store.get_meta("project_title") or f"project {store.project_id}"
    if store.is_multilabel:     # sets per item: the sections of relabel/report/multilabel.py
        from relabel.report.multilabel import multilabel_body
        body, listed = multilabel_body(store, row, base_url, top)
        return _page(title, rnd, body), rnd, listed
    items_html, listed = _items_section(store, rnd, classes, top, base_url, store.project_id)
    table = store.annotations_table()
    reference = report_agreement.reference_labels(store, rnd, table)
    body = "\n".join([
        f"<header><h1>Relabel report: {_e(title)}, round {rnd}</h1>"
        f"<p>Project {_e(store.project_id)} · {len(classes)} classes · scored {_e(when(row['scored_at']))} with "
        f"{_e(row['method'] or '-')} · status {_e(row['status'])} · report made {_e(when(now()))}</p></header>",
        report_review.done_banner(row),
        _summary_section(row, trend),
        report_review.queue_section(store, rnd),
        report_audit.audit_section(store, rnd),
        report_review.changes_section(store, rnd, base_url),
        _quality_section(store, rnd),
        _annotators_section(store, rnd),
        report_agreement.agreement_section(table),
        report_agreement.accuracy_section(table, reference),
        _classes_section(store, rnd, classes),
        _model_section(store.model_report(rnd)),
        report_agreement.overrides_section(store, rnd, base_url),
        data_issues_section(store, rnd),
        items_html,
        "<footer>Made by relabel from the store. Per round, as `relabel status` prints them: the trend table and "
        "the review queue. Cumulative over rounds 1–N: the cards' reviewed and corrected items and the reviewer "
        "changes. Annotator scores are round N's (`relabel annotators` prints the latest round); agreement, "
        "accuracy and time per label use the annotations in the store now.</footer>",
    ])
    return _page(title, rnd, body), rnd, listed


def _page(title: str, rnd: int, body: str) -> str:
    """The self-contained page around a report body."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{content_security_policy()}\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Relabel report: {_e(title)}, round {rnd}</title><style>{STYLE}</style></head>"
            f"<body><main>\n{body}\n</main><script>{SCRIPT}</script></body></html>\n")


# ---- round summary and trend --------------------------------------------------------------------------------
def _trend(store: Store, upto: int) -> list[dict]:
    """Per round up to ``upto``: its counts and its own review queue (pushed, reviewed, corrected) exactly as
    `relabel status` counts them, plus ``reviewed_so_far``/``corrected_so_far``: distinct items answered in the
    queues of rounds 1..round (the latest decision on an item counts)."""
    decisions = store.decisions()
    out = []
    for r in store.rounds():
        if r["round"] > upto:
            break
        mine = [d for d in decisions if d["round"] == r["round"]]
        latest: dict[str, str] = {}
        for d in decisions:
            if d["round"] <= r["round"] and d["outcome"] != "skipped":
                latest[d["item_id"]] = d["outcome"]
        out.append({"round": r["round"], "items": r["items"], "annotations": r["annotations"],
                    "annotators": r["annotators"], "expected": r["expected_remaining_errors"],
                    "issues": r["label_issues"], "pushed": store.count("review_tasks", "round = ?", [r["round"]]),
                    "reviewed": sum(d["outcome"] != "skipped" for d in mine),
                    "corrected": sum(d["outcome"] == "corrected" for d in mine),
                    "reviewed_so_far": len(latest),
                    "corrected_so_far": sum(o == "corrected" for o in latest.values()),
                    "overrides": store.count("scores", "round = ? and override = 1", [r["round"]])})
    return out


def _summary_section(row: dict, trend: list[dict]) -> str:
    now_, prev = trend[-1], (trend[-2] if len(trend) > 1 else None)

    def card(key, label, digits=0, lower_is_better=None):
        value = now_[key]
        delta = ""
        if prev is not None and value is not None and prev[key] is not None:
            change = value - prev[key]
            cls = "" if lower_is_better is None or change == 0 else \
                ("good" if (change < 0) == lower_is_better else "bad")
            delta = f"<div class=\"d {cls}\">{change:+,.{digits}f} since round {prev['round']}</div>"
        shown = _fmt(float(value), digits) if digits else _fmt(value)
        return f"<div class=\"card\"><div class=\"v\">{shown}</div><div class=\"k\">{_e(label)}</div>{delta}</div>"

    cards = "".join([card("items", "items"), card("annotations", "annotations"), card("annotators", "annotators"),
                     card("reviewed_so_far", "items reviewed so far"),
                     card("corrected_so_far", "corrected by reviewers so far"),
                     card("expected", "expected wrong labels left", 1, lower_is_better=True)])
    head = ["round", "items", "annotations", "annotators", "label issues", "sent to review", "reviewed",
            "corrected", "expected wrong left"]
    rows = "".join(
        f"<tr><td>{t['round']}</td>" + "".join(f"<td class=\"n\">{_fmt(t[k])}</td>" for k in
                                               ("items", "annotations", "annotators", "issues", "pushed",
                                                "reviewed", "corrected"))
        + f"<td class=\"n\">{_fmt(t['expected'], 1)}</td></tr>" for t in trend)
    table = ("<table><thead><tr>" + "".join(f"<th class=\"{'' if h == 'round' else 'n'}\">{h}</th>" for h in head)
             + f"</tr></thead><tbody>{rows}</tbody></table>")
    return (f"<section id=\"summary\"><h2>Round {row['round']} at a glance</h2>"
            f"<p class=\"lead\">The cards count distinct items reviewed and corrected in rounds 1–{row['round']} "
            f"(cumulative); the table is per round, as `relabel status` prints it: each round's own review tasks "
            f"and answers. Expected wrong labels left is the sum over unreviewed items of 1 − the posterior of "
            f"their consensus label.</p><p>{_e(_expected_line(row, now_['overrides']))}</p>"
            f"<div class=\"cards\">{cards}</div>{table}{_img(_trend_plot(trend), 'Trend across rounds')}</section>")


def _expected_line(row: dict, overrides: int) -> str:
    """Expected wrong labels with their 90% interval, and the overrides (the stop signal has its own banner)."""
    expected = format_expected(row["expected_remaining_errors"], row.get("expected_low"), row.get("expected_high"))
    batch = ""
    if row.get("batch_expected") is not None:      # the stop signal's estimate (relabel/scoring/stop_signal.py)
        batch = (f" Among the items this round sent (or would have sent) "
                 f"{format_expected(row['batch_expected'], row.get('batch_low'), row.get('batch_high'))}: "
                 f"{row.get('batch_evidence') or 'no evidence recorded'}.")
    noun = "consensus label" if overrides == 1 else "consensus labels"
    regime = regime_sentence(row.get("override_evidence"))
    return (f"Expected wrong labels left {expected}; {overrides:,} {noun} no annotator gave (overrides). {regime}"
            f"{batch}")


def _trend_plot(trend: list[dict]) -> str:
    import matplotlib
    from matplotlib.ticker import MaxNLocator
    with matplotlib.rc_context({"text.parse_math": False}):
        fig = _figure(11.2, TREND_HEIGHT)
        axes = fig.subplots(1, 3)
        x = [t["round"] for t in trend]
        panels = [("Items and annotations", [("annotations", "annotations", _BLUE), ("items", "items", _GREY)]),
                  ("Annotators", [("annotators", "annotators", _AMBER)]),
                  ("Review", [("expected", "expected wrong left", _RED),
                              ("reviewed_so_far", "reviewed so far", _BLUE),
                              ("corrected_so_far", "corrected so far", _GREEN)])]
        for ax, (title, series) in zip(axes, panels):
            for key, label, colour in series:
                ax.plot(x, [np.nan if t[key] is None else t[key] for t in trend], marker="o", color=colour,
                        label=label, linewidth=2)
            ax.set_title(title, fontsize=10, loc="left")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(bottom=0)
            if len(x) == 1:
                ax.set_xlim(x[0] - 1, x[0] + 1)
            _style(ax)
            if len(series) > 1:
                ax.legend(fontsize=7, frameon=False)
        return _svg(fig)


def _quality_section(store: Store, rnd: int) -> str:
    cols = store.score_columns(rnd, ["labelled", "quality", "reviewed", "posterior"])
    labelled = np.array(cols["labelled"], dtype=bool)
    quality = np.array([np.nan if q is None else q for q in cols["quality"]], dtype=float)[labelled]
    posterior = np.array([np.nan if p is None else p for p in cols["posterior"]], dtype=float)[labelled]
    reviewed = np.array(cols["reviewed"], dtype=bool)[labelled]
    sent = store.selection(rnd) or store.review_tasks(rnd)
    threshold = max((float(s["quality"]) for s in sent if s["quality"] is not None), default=None)
    if not quality.size:
        return ("<section id=\"quality\"><h2>What is left to fix</h2><p class=\"note\">No labelled item in this "
                "round.</p></section>")
    below = int(np.sum(quality[~reviewed] <= threshold)) if threshold is not None else 0
    lead = (f"Left: the {quality.size:,} labelled items by 1 − consensus quality, on a log axis (right = more "
            "likely wrong); right: the expected wrong labels among unreviewed items in each bar (1 − posterior "
            "summed), i.e. where the errors left are. The red line is the review threshold: the highest quality "
            f"among the {len(sent):,} items sent to review this round ({_fmt(threshold)}); {below:,} unreviewed "
            "items are at or below it."
            if threshold is not None else
            f"Left: the {quality.size:,} labelled items by 1 − consensus quality, on a log axis (right = more "
            "likely wrong); right: the expected wrong labels among unreviewed items in each bar. Nothing was "
            "sent to review in this round yet.")
    return (f"<section id=\"quality\"><h2>What is left to fix</h2><p class=\"lead\">{_e(lead)}</p>"
            f"{_img(_quality_plot(quality, posterior, reviewed, threshold), 'What is left to fix')}</section>")


def _quality_plot(quality: np.ndarray, posterior: np.ndarray, reviewed: np.ndarray, threshold: float | None) -> str:
    fig = _figure(11.2, 2.6)
    left, right = fig.subplots(1, 2)
    bins = np.geomspace(LEFT_TO_FIX_FLOOR, 1.0, QUALITY_BINS + 1)
    # Counts are binned here, so the SVG holds QUALITY_BINS bars however many items there are; a certain item
    # (1 - quality below the floor) is counted in the first bar.
    doubt = np.clip(1.0 - np.nan_to_num(quality, nan=1.0), bins[0], 1.0)
    open_counts, _ = np.histogram(doubt[~reviewed], bins=bins)
    done_counts, _ = np.histogram(doubt[reviewed], bins=bins)
    wrong = np.clip(1.0 - np.nan_to_num(posterior, nan=1.0), 0.0, 1.0)
    expected, _ = np.histogram(doubt[~reviewed], bins=bins, weights=wrong[~reviewed])
    widths = np.diff(bins)
    left.bar(bins[:-1], open_counts, width=widths, align="edge", color=_BLUE, alpha=0.85, label="not reviewed")
    if reviewed.any():
        left.bar(bins[:-1], done_counts, width=widths, align="edge", bottom=open_counts, color=_GREEN, alpha=0.8,
                 label="reviewed")
    right.bar(bins[:-1], expected, width=widths, align="edge", color=_RED, alpha=0.75,
              label=f"expected wrong labels ({expected.sum():,.1f} in all)")
    for ax, ylabel in ((left, "items"), (right, "expected wrong labels")):
        ax.set_xscale("log")
        ax.set_xlim(bins[0], 1.0)
        ax.set_xlabel("1 − consensus quality (log)", fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        if threshold is not None:
            ax.axvline(max(1.0 - threshold, bins[0]), color=_RED, linewidth=1.5, linestyle="--",
                       label=f"review threshold {threshold:.2f}" if ax is left else None)
        ax.legend(fontsize=7, frameon=False, loc="upper left")
        _style(ax)
    total = open_counts + done_counts
    # Most items of a healthy project are near-certain; a log count axis keeps the few doubtful bars visible.
    if total.max() > LOG_Y_RATIO * max(np.median(total[total > 0]), 1):
        left.set_yscale("log")
        left.set_ylabel("items (log scale)", fontsize=9)
    return _svg(fig)


# ---- annotators ---------------------------------------------------------------------------------------------
def _annotators_section(store: Store, rnd: int) -> str:
    rows = store.annotator_scores(rnd)
    earlier = [r["round"] for r in store.rounds() if r["round"] < rnd]
    before = {r["annotator_id"]: r for r in store.annotator_scores(earlier[-1])} if earlier else {}
    if not rows:
        return "<section id=\"annotators\"><h2>Annotators</h2><p class=\"note\">No annotator scores.</p></section>"

    def delta(now_, then):
        if now_ is None or then is None:
            return "<td class=\"n\" data-v=\"\">–</td>"
        d = now_ - then
        cls = "up" if d > 0 else ("down" if d < 0 else "")
        return f"<td class=\"n {cls}\" data-v=\"{d:.6f}\">{d:+.3f}</td>"

    done = report_agreement.activity(store)
    body = []
    for r in rows:
        old = before.get(r["annotator_id"], {})
        act = done.get(r["annotator_id"], {})
        body.append(
            f"<tr><td>{_e(r['annotator_id'])}</td>"
            f"<td class=\"n\" data-v=\"{r['num_labels']}\">{_fmt(r['num_labels'])}</td>"
            f"<td class=\"n\" data-v=\"{_v(r['quality'])}\">{_fmt(r['quality'], 3)}</td>"
            f"<td class=\"n\" data-v=\"{_v(r['agreement'])}\">{_pct(r['agreement'])}</td>"
            f"<td>{_e(r['worst_class'] or '–')}</td>"
            + delta(r["quality"], old.get("quality")) + delta(r["agreement"], old.get("agreement"))
            + f"<td class=\"n\" data-v=\"{act.get('skipped', '')}\">{_fmt(act.get('skipped'))}</td>"
            f"<td class=\"n\" data-v=\"{_v(act.get('median_seconds'))}\">{_seconds(act.get('median_seconds'))}</td>"
            f"<td class=\"n\" data-v=\"{_v(act.get('total_seconds'))}\">{age(act.get('total_seconds'))}</td></tr>")
    since = f"since round {earlier[-1]}" if earlier else "(no earlier round)"
    head = ("<tr><th>annotator</th><th class=\"n\">labels</th><th class=\"n\">quality</th>"
            f"<th class=\"n\">agreement</th><th>worst class</th><th class=\"n\">Δ quality {since}</th>"
            f"<th class=\"n\">Δ agreement</th><th class=\"n\">skips</th><th class=\"n\">median time per label</th>"
            f"<th class=\"n\">time in all</th></tr>")
    return (f"<section id=\"annotators\"><h2>Annotators</h2><p class=\"lead\">Quality is how often an annotator's "
            f"label is right, estimated against everyone else and the model; agreement is the share of their labels "
            f"equal to the consensus. Skips and time come from Label Studio (was_cancelled, lead_time; – where it "
            f"recorded none). Click a column to sort.</p>"
            f"{_img(_annotator_plot(rows), 'Annotator quality against number of labels')}"
            f"<div class=\"scroll\"><table class=\"sortable\" id=\"annotator-table\"><thead>{head}</thead>"
            f"<tbody>{''.join(body)}</tbody></table></div></section>")


def _annotator_plot(rows: list[dict]) -> str:
    import matplotlib
    with matplotlib.rc_context({"text.parse_math": False}):  # a '$' in an annotator's name is just a '$'
        fig = _figure(11.2, 3.4)
        ax = fig.subplots()
        n = np.array([r["num_labels"] for r in rows], dtype=float)
        q = np.array([np.nan if r["quality"] is None else r["quality"] for r in rows], dtype=float)
        agree = np.array([np.nan if r["agreement"] is None else r["agreement"] for r in rows], dtype=float)
        points = ax.scatter(n, q, c=np.nan_to_num(agree, nan=0.0), cmap="viridis", vmin=0, vmax=1, s=36,
                            edgecolors="white", linewidths=0.6)
        fig.colorbar(points, ax=ax, label="agreement with consensus", pad=0.01)
        if n.size and n.min() > 0 and n.max() / n.min() > LOG_X_RATIO:
            ax.set_xscale("log")
        finite = np.flatnonzero(np.isfinite(q))
        ax.margins(x=0.08, y=0.12)
        lo, hi = (np.log10(n.min()), np.log10(n.max())) if ax.get_xscale() == "log" else (n.min(), n.max())
        for i in finite[np.argsort(q[finite], kind="stable")][:NAMED_ANNOTATORS]:
            # Names of points in the right half go to their left, so no name runs off the plot.
            x = np.log10(n[i]) if ax.get_xscale() == "log" else n[i]
            leftward = hi > lo and (x - lo) / (hi - lo) > 0.5
            ax.annotate(short_name(rows[i]["annotator_id"], 40), (n[i], q[i]), textcoords="offset points",
                        xytext=(-6 if leftward else 6, 4), ha="right" if leftward else "left", fontsize=8,
                        color="#374151", annotation_clip=False)
        ax.set_xlabel("labels given", fontsize=9)
        ax.set_ylabel("annotator quality", fontsize=9)
        _style(ax)
        return _svg(fig)


# ---- model ------------------------------------------------------------------------------------------------
def _model_section(model: dict) -> str:
    """The pipeline the round chose and its cross-validated scores (relabel.models.search.ModelReport)."""
    if not model:
        return ""
    rows = "".join(f"<tr><td>{_e(c['pipeline'])}</td><td>{c['log_loss']:.3f}</td><td>{c['accuracy']:.3f}</td></tr>"
                   for c in model.get("candidates", []))
    tried = (f"<details><summary>Candidates tried ({_e(model['searched'])})</summary><table><tr><th>pipeline</th>"
             f"<th>log-loss</th><th>accuracy</th></tr>{rows}</table></details>") if rows else \
        f"<p class=\"note\">{_e(model['searched'])}</p>"
    return (f"<section id=\"model\"><h2>Model</h2><p><strong>{_e(model['pipeline'])}</strong> "
            f"({_e(model['classifier'])}): out-of-fold log-loss {model['cv_log_loss']:.3f}, accuracy "
            f"{model['cv_accuracy']:.3f}, calibration error (ECE) {model['ece']:.3f} after temperature scaling "
            f"(T = {model['temperature']:.2f}; {model['ece_uncalibrated']:.3f} before), {model['labelled']:,} "
            f"labelled items, {model['folds']} folds.</p>{tried}</section>")


def _seconds(value) -> str:
    return "–" if value is None else (f"{value:.1f} s" if value < 90 else age(value))


# ---- classes ------------------------------------------------------------------------------------------------
def _classes_section(store: Store, rnd: int, classes: tuple[str, ...]) -> str:
    stats = store.class_stats(rnd)
    if not stats:
        return ("<section id=\"classes\"><h2>Classes</h2><p class=\"note\">This round was scored before relabel "
                "recorded class matrices; score a new round to see them.</p></section>")
    confusion = np.array(stats["annotator_confusion"], dtype=float)
    if confusion.shape != (len(classes), len(classes)):
        return ("<section id=\"classes\"><h2>Classes</h2><p class=\"note\">The labeling config's classes changed "
                "after this round was scored, and this round did not record its own; its class matrices cannot be "
                "named.</p></section>")
    left = _heatmap(confusion, classes, "annotators' label", "consensus label", row_normalise=True)
    figures = [f"<figure>{_img(left, 'Annotator labels against consensus')}<figcaption>Annotators' labels against "
               "the consensus: each row is the items of one consensus class, split by the label annotators gave "
               "(share of the row, counts in brackets).</figcaption></figure>"]
    if "noise_matrix" in stats:
        noise = np.array(stats["noise_matrix"], dtype=float)
        right = _heatmap(noise, classes, "true label (estimated)", "given label (consensus)", row_normalise=False)
        figures.append(f"<figure>{_img(right, 'Estimated noise matrix')}<figcaption>Confident learning's noise "
                       "matrix: P(given label | true label), each column sums to 1; off the diagonal is how often a "
                       "true class ends up labelled as another.</figcaption></figure>")
        joint = np.array(stats["confident_joint"], dtype=float)
        pairs_html = _pairs(joint, classes, "items")
        pairs_title = "Most often confused (confident learning, items whose consensus label looks wrong):"
    else:
        figures.append("<p class=\"note\">Confident learning could not estimate a noise matrix this round "
                       "(too few classes among the labels).</p>")
        pairs_html = _pairs(confusion.T, classes, "labels")  # rows = given, columns = consensus
        pairs_title = "Most often confused (annotators' labels against the consensus):"
    return (f"<section id=\"classes\"><h2>Classes</h2><p class=\"lead\">Classes when round {rnd} was scored: "
            f"{_e(', '.join(classes))}.</p><div class=\"two\">{''.join(figures)}</div>"
            f"<p><strong>{_e(pairs_title)}</strong></p>{pairs_html}</section>")


def _pairs(joint: np.ndarray, classes: tuple[str, ...], unit: str) -> str:
    """The largest off-diagonal cells of ``joint[given, true]`` as "'true' labelled as 'given': n items"."""
    off = joint.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:CONFUSED_PAIRS]
    lines = [f"<li>'{_e(classes[t])}' labelled as '{_e(classes[g])}': {int(round(off[g, t])):,} {unit}</li>"
             for g, t in zip(*np.unravel_index(flat, off.shape)) if off[g, t] >= 1]
    return f"<ul class=\"pairs\">{''.join(lines)}</ul>" if lines else "<p class=\"note\">No confusions found.</p>"


def _heatmap(matrix: np.ndarray, classes: tuple[str, ...], xlabel: str, ylabel: str, row_normalise: bool) -> str:
    import matplotlib
    k = len(classes)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1.0) if row_normalise else matrix
    with matplotlib.rc_context({"text.parse_math": False}):
        side = min(5.4, 2.2 + 0.32 * k)
        margin = 0.07 * max((len(short_name(c)) for c in classes), default=4)  # room for whole tick labels
        fig = _figure(side + 0.9 + margin * 0.6, side + margin * 0.7)
        ax = fig.subplots()
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="equal")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
        names = [short_name(c) for c in classes]
        ax.set_xticks(range(k), names, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center",
                      rotation_mode="anchor", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        if k <= ANNOTATE_CLASSES_UP_TO:
            for i in range(k):
                for j in range(k):
                    text = f"{shares[i, j]:.2f}" + (f"\n({int(matrix[i, j]):,})" if row_normalise else "")
                    ax.text(j, i, text, ha="center", va="center", fontsize=7 if k > 6 else 8,
                            color="white" if shares[i, j] > 0.55 else "#1f2937")
        return _svg(fig)


# ---- items most likely mislabelled --------------------------------------------------------------------------
def _items_section(store: Store, rnd: int, classes: tuple[str, ...], top: int, base_url: str,
                   project: int | None) -> tuple[str, int]:
    rows = store.lowest_quality(rnd, top)
    if not rows:
        return ("<section id=\"items\"><h2>Items most likely mislabelled</h2><p class=\"note\">Every labelled item "
                "has been reviewed.</p></section>", 0)
    ids = [r["item_id"] for r in rows]
    given = store.labels_of(ids)
    chosen = {s["item_id"]: s for s in store.selection(rnd)}
    waiting = store.waiting_item_ids()
    reasons = _reasons(rows, given, classes)
    body = []
    for n, r in enumerate(rows, 1):
        iid = r["item_id"]
        picked = chosen.get(iid)
        suggestion = picked["suggested"] if picked else r["consensus_label"]
        reason = picked["reason"] if picked else reasons[iid]
        text = r["text"] or ""
        excerpt = text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")
        link = report_review.task_link(base_url, project, iid)
        by_label: dict[str, list[str]] = {}
        for annotator, label in given.get(iid, []):
            by_label.setdefault(label, []).append(annotator)
        labels = "<br>".join(f"<span class=\"label\">{_e(label)}</span> <span class=\"who\">"
                             f"{_e(', '.join(who))}</span>" for label, who in by_label.items())
        tag = "<div class=\"tag\">in review</div>" if iid in waiting else ""
        body.append(f"<tr><td class=\"n\">{n}</td><td>{link}{tag}</td>"
                    f"<td class=\"text\"><div class=\"excerpt\" tabindex=\"0\" title=\"Click to show all\">{_e(excerpt)}</div></td><td>{labels}</td>"
                    f"<td><span class=\"label sugg\">{_e(suggestion)}</span></td><td>{_e(reason)}</td>"
                    f"<td class=\"n\" data-v=\"{_v(r['quality'])}\">{_fmt(r['quality'], 3)}</td></tr>")
    head = ("<tr><th class=\"n\">#</th><th>task</th><th>text</th><th>labels given (by whom)</th><th>suggestion</th>"
            "<th>reason</th><th class=\"n\">quality</th></tr>")
    lead = (f"The {len(rows)} unreviewed labelled items of lowest consensus quality in round {rnd}, worst first. "
            + ("Each task number opens the task in Label Studio." if base_url else
               "No Label Studio URL is recorded, so tasks are not linked; pass --url."))
    return (f"<section id=\"items\"><h2>Items most likely mislabelled</h2><p class=\"lead\">{_e(lead)}</p>"
            f"<table class=\"items\"><thead>{head}</thead><tbody>{''.join(body)}</tbody></table></section>",
            len(rows))


def _reasons(rows: list[dict], given: dict[str, list[tuple[str, str]]], classes: tuple[str, ...]) -> dict[str, str]:
    """The same readable reason a review task carries, for listed items that were not sent to review."""
    position = {c: k for k, c in enumerate(classes)}
    votes = np.zeros((len(rows), len(classes)), dtype=np.int64)
    for n, r in enumerate(rows):
        for _, label in given.get(r["item_id"], []):
            if label in position:
                votes[n, position[label]] += 1
    sel = select_for_review(
        np.array([r["quality"] for r in rows], dtype=float),
        np.array([position.get(r["consensus_label"], -1) for r in rows], dtype=np.intp), votes,
        np.array([position[r["model_label"]] for r in rows], dtype=np.intp),
        np.array([r["model_prob"] for r in rows], dtype=float), classes, len(rows),
        label_issue=np.array([bool(r["label_issue"]) for r in rows]))
    return {rows[i]["item_id"]: reason for i, reason in zip(sel.index, sel.reasons)}

