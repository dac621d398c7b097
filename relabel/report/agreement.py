"""Report sections about the annotators as a team: agreement (pairwise matrix, Krippendorff's alpha), accuracy
per class and confusion per annotator, time per label and skips, and the items whose consensus overrides every
annotator.

The numbers come from relabel.scoring.agreement over the annotations in the store and the round's final labels (the
reviewer's where reviewed, the consensus elsewhere).
"""
from __future__ import annotations

import numpy as np

from relabel.scoring.agreement import annotator_confusion, krippendorff_alpha, pairwise_agreement
from relabel.scoring.annotations import Annotations
from relabel.report.html import e, fmt, note, pct, section, short_name, v
from relabel.report.review import task_link
from relabel.loop.store import Store

# Annotators in the agreement matrix: the most active ones (a matrix of hundreds is unreadable and heavy).
MATRIX_ANNOTATORS = 20
# Annotators in the per-class accuracy table: the least accurate first.
ACCURACY_ANNOTATORS = 40
# Classes shown as columns of that table; beyond, each row names its three worst classes instead.
ACCURACY_CLASSES = 12
# Items listed whose consensus no annotator gave.
OVERRIDES_LISTED = 50


def reference_labels(store: Store, rnd: int, table: Annotations) -> np.ndarray:
    """The round's final label of each item of ``table`` as a class index (-1 where the round has none)."""
    cols = store.score_columns(rnd, ["item_id", "final_label"])
    position = {c: k for k, c in enumerate(table.classes)}
    final = {iid: position.get(label, -1) for iid, label in zip(cols["item_id"], cols["final_label"])}
    return np.array([final.get(str(i), -1) for i in table.item_ids], dtype=np.intp)


# ---- time per label and skips -------------------------------------------------------------------------------
def activity(store: Store) -> dict[str, dict]:
    """Per annotator: annotations given, skips, median and total lead time (seconds, from Label Studio's
    ``lead_time``; None when Label Studio recorded none). Counts come grouped from SQLite; medians from one sort."""
    counts, times = store.annotation_activity()
    out = {str(a): {"given": int(n), "skipped": int(k or 0), "median_seconds": None, "total_seconds": None}
           for a, n, k in counts}
    if times:
        names, who = np.unique(np.array([t[0] for t in times], dtype=object).astype(str), return_inverse=True)
        lead = np.array([t[1] for t in times], dtype=float)
        count = np.bincount(who, minlength=len(names))
        total = np.bincount(who, weights=lead, minlength=len(names))
        # Sorted by (annotator, seconds), each annotator's times are one run: its median is the run's middle.
        ordered = lead[np.lexsort((lead, who))]
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        median = (ordered[start + (count - 1) // 2] + ordered[start + count // 2]) / 2
        for a, name in enumerate(names):
            row = out.setdefault(str(name), {"given": 0, "skipped": 0})
            row["median_seconds"], row["total_seconds"] = float(median[a]), float(total[a])
    return out


# ---- agreement ----------------------------------------------------------------------------------------------
def agreement_section(table: Annotations) -> str:
    alpha = krippendorff_alpha(table)
    counts = np.bincount(table.annotator, minlength=table.n_annotators)
    chosen = np.argsort(-counts, kind="stable")[:MATRIX_ANNOTATORS]
    pairs = pairwise_agreement(table, chosen)
    n_pairable = int(np.sum(table.num_annotations() >= 2))
    alpha_text = "undefined (fewer than two labels per item, or no variation)" if not np.isfinite(alpha) \
        else f"{alpha:.3f}"
    shown = (f"the {len(chosen)} annotators with most labels" if table.n_annotators > MATRIX_ANNOTATORS
             else "every annotator")
    lead = (f"Krippendorff's α (nominal) over the {n_pairable:,} items with two or more labels: {alpha_text} "
            "(1 = perfect agreement, 0 = chance; 0.8 is a common bar for reliable labels). The matrix shows, for "
            f"{shown}, the share of items two annotators both labelled on which they agreed (items shared in "
            "brackets; blank: none shared; columns numbered as the rows). Annotations in the store now.")
    return section("agreement", "Agreement between annotators", lead,
                   f"<div class=\"cards\"><div class=\"card\"><div class=\"v\" id=\"alpha\">{e(alpha_text)}</div>"
                   f"<div class=\"k\">Krippendorff's α (nominal)</div></div></div>{_agreement_matrix(pairs)}")


def _agreement_matrix(pairs) -> str:
    """The pairwise matrix as an HTML table: whole names (never clipped), a colour per cell from red (0) through
    amber to green (1), and the items shared in brackets. Cheaper than a plot and as wide as the names need."""
    names = [str(a) for a in pairs.annotator_ids]
    rate, shared = pairs.rate, pairs.shared
    head = "".join(f"<th class=\"n\" title=\"{e(n)}\">{k + 1}</th>" for k, n in enumerate(names))
    rows = []
    for i, name in enumerate(names):
        cells = []
        for j in range(len(names)):
            if i == j:
                cells.append(f"<td class=\"n self\">{shared[i, i]:,}</td>")
            elif shared[i, j] == 0:
                cells.append("<td class=\"n\"></td>")
            else:
                cells.append(f"<td class=\"n\" style=\"background:{_agreement_colour(rate[i, j])}\" "
                             f"data-v=\"{rate[i, j]:.6f}\">{rate[i, j]:.2f} <span class=\"who\">({shared[i, j]:,})"
                             "</span></td>")
        rows.append(f"<tr><th>{i + 1}. {e(name)}</th>{''.join(cells)}</tr>")
    return (f"<div class=\"scroll\"><table class=\"matrix\" id=\"agreement-matrix\"><thead><tr><th>annotator "
            f"(diagonal: items labelled)</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _agreement_colour(rate: float) -> str:
    """Red (0) -> amber (0.5) -> green (1), light enough for dark text."""
    stops = ((0.0, (252, 165, 165)), (0.5, (253, 230, 138)), (1.0, (134, 239, 172)))
    rate = min(max(float(rate), 0.0), 1.0)
    (x0, c0), (x1, c1) = (stops[0], stops[1]) if rate <= 0.5 else (stops[1], stops[2])
    t = (rate - x0) / (x1 - x0)
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(c0, c1))


# ---- accuracy per class and confusion -----------------------------------------------------------------------
def accuracy_section(table: Annotations, reference: np.ndarray) -> str:
    classes = table.classes
    k = len(classes)
    conf = annotator_confusion(table, reference)                # annotators x reference x given
    per_class_n = conf.sum(axis=2)                               # annotators x reference
    per_class_ok = np.diagonal(conf, axis1=1, axis2=2)           # annotators x reference
    n = per_class_n.sum(axis=1)
    acc = np.divide(per_class_ok.sum(axis=1), n, out=np.full(n.shape, np.nan), where=n > 0)
    if not n.any():
        return section("accuracy", "Accuracy per class", body=note("No labelled item has a final label yet."))
    order = [int(a) for a in np.lexsort((-n, np.nan_to_num(acc, nan=2.0))) if n[a] > 0][:ACCURACY_ANNOTATORS]
    wide = k <= ACCURACY_CLASSES

    def cell(ok, total):
        if total == 0:
            return "<td class=\"n\" data-v=\"\">–</td>"
        return f"<td class=\"n\" data-v=\"{v(ok / total)}\">{ok / total:.2f} <span class=\"who\">({total:,})</span></td>"

    rows = []
    for a in order:
        cells = "".join(cell(int(per_class_ok[a, c]), int(per_class_n[a, c])) for c in range(k)) if wide else \
            f"<td>{e(_worst_classes(per_class_ok[a], per_class_n[a], classes))}</td>"
        rows.append(f"<tr><td>{e(table.annotator_ids[a])}</td><td class=\"n\" data-v=\"{int(n[a])}\">"
                    f"{fmt(int(n[a]))}</td><td class=\"n\" data-v=\"{v(acc[a])}\">{pct(acc[a])}</td>{cells}"
                    f"<td>{_confusion_details(conf[a], classes)}</td></tr>")
    total_ok, total_n = per_class_ok.sum(axis=0), per_class_n.sum(axis=0)
    every = (f"<tr class=\"total\"><td>all annotators</td><td class=\"n\">{fmt(int(total_n.sum()))}</td>"
             f"<td class=\"n\">{pct(total_ok.sum() / max(total_n.sum(), 1))}</td>"
             + ("".join(cell(int(total_ok[c]), int(total_n[c])) for c in range(k)) if wide else
                f"<td>{e(_worst_classes(total_ok, total_n, classes))}</td>") + "<td></td></tr>")
    heads = "".join(f"<th class=\"n\" title=\"{e(c)}\">{e(short_name(c, 14))}</th>" for c in classes) if wide \
        else "<th>worst classes</th>"
    head = (f"<tr><th>annotator</th><th class=\"n\">labels</th><th class=\"n\">accuracy</th>{heads}"
            "<th>confusion</th></tr>")
    cap = (f" The {len(order)} least accurate of {int(np.sum(n > 0)):,} annotators are listed."
           if np.sum(n > 0) > len(order) else "")
    lead = ("Each annotator's labels against the round's final labels (the reviewer's where reviewed, the "
            "consensus elsewhere): accuracy overall and per final class, with the number of labels in brackets. "
            f"Open 'confusion' for the counts of what they answered for each class.{cap} Click a column to sort.")
    return section("accuracy", "Accuracy per class", lead,
                   f"<div class=\"scroll\"><table class=\"sortable\" id=\"accuracy-table\"><thead>{head}</thead>"
                   f"<tbody>{''.join(rows)}</tbody><tfoot>{every}</tfoot></table></div>")


def _worst_classes(ok: np.ndarray, total: np.ndarray, classes) -> str:
    rate = np.divide(ok, total, out=np.full(total.shape, np.inf), where=total > 0)
    worst = [c for c in np.argsort(rate, kind="stable")[:3] if total[c] > 0]
    return ", ".join(f"{classes[c]} {rate[c]:.2f} ({int(total[c]):,})" for c in worst) or "–"


def _confusion_details(matrix: np.ndarray, classes) -> str:
    """One annotator's confusion as a small HTML table inside <details> (rows: final class, columns: given)."""
    used = np.flatnonzero(matrix.sum(axis=0) + matrix.sum(axis=1))
    head = "".join(f"<th class=\"n\">{e(short_name(classes[c], 14))}</th>" for c in used)
    body = "".join(f"<tr><th>{e(short_name(classes[r], 18))}</th>"
                   + "".join(f"<td class=\"n{' diag' if r == c else ''}\">{int(matrix[r, c]) or ''}</td>" for c in used)
                   + "</tr>" for r in used)
    return (f"<details><summary>{len(used)} classes</summary><table class=\"confusion\"><thead><tr>"
            f"<th>final ↓ given →</th>{head}</tr></thead><tbody>{body}</tbody></table></details>")


# ---- consensus against every annotator ----------------------------------------------------------------------
def overrides_section(store: Store, rnd: int, base_url: str) -> str:
    """Labelled items whose consensus label is a class no annotator gave them (reviewed items excluded): the
    round's stored ``override`` flags, the same the trend counts."""
    cols = store.score_columns(rnd, ["item_id", "consensus_label", "quality", "override"])
    found = [(iid, label, quality) for iid, label, quality, flag
             in zip(cols["item_id"], cols["consensus_label"], cols["quality"], cols["override"]) if flag]
    lead = ("Items whose consensus is a label that none of their annotators gave: the model outweighed every "
            "annotator. They deserve a look before anyone trusts them.")
    if not found:
        return section("overrides", "Consensus against every annotator", lead,
                       note("None this round: every consensus label was given by at least one annotator."))
    given = store.labels_of([f[0] for f in found[:OVERRIDES_LISTED]])
    project = store.project_id
    body = "".join(
        f"<tr><td>{task_link(base_url, project, iid)}</td><td>"
        + ", ".join(f"<span class=\"label\">{e(lab)}</span> <span class=\"who\">{e(who)}</span>"
                    for who, lab in given.get(iid, []))
        + f"</td><td><span class=\"label sugg\">{e(label)}</span></td><td class=\"n\">{fmt(quality, 3)}</td></tr>"
        for iid, label, quality in found[:OVERRIDES_LISTED])
    head = "<tr><th>task</th><th>labels given</th><th>consensus</th><th class=\"n\">quality</th></tr>"
    more = f" The first {OVERRIDES_LISTED} are listed." if len(found) > OVERRIDES_LISTED else ""
    return section("overrides", "Consensus against every annotator", f"{len(found):,} items this round. " + lead + more,
                   f"<table id=\"overrides-table\"><thead>{head}</thead><tbody>{body}</tbody></table>")
