"""What the `relabel` commands print: one JSON object under --json or text lines, the step lines of
`relabel round`, aligned tables, and relabel's log lines under -v (relabel/cli.py holds the commands)."""
from __future__ import annotations

import json
import logging
import math

import click


def wants_json(ctx: click.Context) -> bool:
    return bool((ctx.obj or {}).get("json"))


def say(ctx: click.Context, summary: dict, lines) -> None:
    """Print ``summary`` as JSON under --json, else the text ``lines`` (a string or a list of strings)."""
    if wants_json(ctx):
        click.echo(json.dumps(summary, default=jsonable))
        return
    for line in ([lines] if isinstance(lines, str) else lines):
        click.echo(line)


def jsonable(value):
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


class _ClickHandler(logging.Handler):
    """Log lines to standard error through click (found at each line, so test runners capture them)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


_HANDLER = _ClickHandler()
_HANDLER.setFormatter(logging.Formatter("%(message)s"))


def set_verbosity(verbose: int) -> None:
    """-v shows relabel's events (and the connector's info lines) as they happen; -vv adds debug lines.

    Without -v the loggers are left as the host program set them (levels, propagation), so embedding relabel
    or capturing its logs in tests is unaffected by an earlier `relabel -v`.
    """
    for name in ("relabel", "connectors"):
        logger = logging.getLogger(name)
        if verbose:
            if _HANDLER not in logger.handlers:
                logger.addHandler(_HANDLER)
            logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
        elif _HANDLER in logger.handlers:
            logger.removeHandler(_HANDLER)
            logger.setLevel(logging.NOTSET)


def pull_line(s, unchanged: bool = False) -> str:
    """'Pulled 783 annotations (6 skipped) on 300 items: 783 new, 0 changed, 0 deleted.' (skips included in
    the total, as Label Studio's own count of 777 leaves them out)."""
    total = s.new + s.changed + s.unchanged
    rest = f", {s.unchanged} unchanged" if unchanged else ""
    gone = f", {s.deleted_items} deleted tasks" if s.deleted_items else ""
    return (f"Pulled {total} annotations ({s.skipped} skipped) on {s.items} items: {s.new} new, {s.changed} "
            f"changed{rest}, {s.deleted} deleted{gone}.")


def pull_json(s) -> dict:
    return {**jsonable(s), "pulled": s.new + s.changed + s.unchanged, "warnings": list(s.warnings)}


def count(n: int, noun: str) -> str:
    """'1 annotator', '5 annotators' (issue 20: no '1 annotators')."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def score_lines(s) -> list[str]:
    return ([f"Round {s.round} scored ({s.method}): {s.labelled_items} labelled of {count(s.items, 'item')}, "
             f"{count(s.annotations, 'annotation')} by {count(s.annotators, 'annotator')}; "
             f"{count(s.label_issues, 'label issue')}; expected wrong labels left {s.expected_text}"
             + (f"; {count(s.overrides, 'override')} (a label no annotator gave)." if s.overrides else ".")]
            + ([s.model] if s.model else [])
            # overrides are the single-label consensus's regime; a multi-label round has none to report
            + ([] if str(s.method).startswith("multilabel") else [s.overrides_text])
            + [f"note: {note}" for note in s.notes])


def push_line(s) -> str:
    if s.stop_reason:
        return f"Round {s.round}: nothing pushed. {s.stop_reason}"
    if s.top_up is not None and s.top_up.to_push == 0:
        return f"Round {s.round}: {s.top_up.describe()}."
    line = f"Round {s.round}: {count(s.new, 'new review task')} ({s.mode}), {s.total} in total"
    line += f"; {s.top_up.describe(s.new)}." if s.top_up is not None else "."
    if getattr(s, "audit", 0):
        line += f" {s.audit} of them are audit items drawn at random, on top of the budget."
    if s.batch is not None and s.batch.items:
        line += f" They hold {s.batch.wrong_labels} ({s.batch.evidence})."
    if s.expected_total is not None:
        line += (f" With that, the wrong labels left are restated as {s.expected_total} (the batch at the "
                 "reviewers' rate, the rest by the posterior).")
    if getattr(s, "left", None):
        line += f" {s.left}."
    return line


def collect_lines(s) -> list[str]:
    return [f"note: {note}" for note in s.notes] + [collect_line(s)]


def collect_line(s) -> str:
    # The outcomes count new and changed decisions alike: "Collected 0 decisions (1 confirmed ...)" after a
    # reviewer edited an answer read as a contradiction, so changed ones are named beside the new ones.
    what = f"{s.decisions} decisions" if not s.changed else f"{s.decisions} new and {s.changed} changed decisions"
    return (f"Collected {what} ({s.confirmed} confirmed, {s.corrected} corrected, {s.skipped} skipped, "
            f"{s.disputed} disputed), {s.ordinary} answers by non-reviewers kept as annotations.")


def step_lines(name: str, summary) -> list[str]:
    """The line(s) `relabel round` prints when a step ends."""
    if name == "collect":
        return collect_lines(summary)
    if name == "pull":
        return [pull_line(summary)]
    if name == "score":
        return score_lines(summary)
    if name == "push":
        return [push_line(summary)]
    return [f"{name}: done."]


def _cell(value, fmt: str | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if fmt is not None:
        return fmt.format(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def text_table(header: list[str], rows: list[list], formats: dict[int, str] | None = None) -> str:
    """An aligned plain-text table: text left, numbers right; ``formats`` maps a column to a format string."""
    formats = formats or {}
    cells = [[_cell(v, formats.get(i)) for i, v in enumerate(row)] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(header))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in cells])


def span_annotator_table(rows: list[dict]) -> str:
    """`relabel annotators` for a span project: per annotator (control and label "all") and per control and label,
    spans and exact and relaxed span P/R/F1 against the consensus."""
    header = ["annotator", "control", "label", "spans", "exact_p", "exact_r", "exact_f1", "relaxed_p", "relaxed_r",
              "relaxed_f1"]
    body = [[r["annotator_id"], r["control"] or "all", r["label"] or "all", r["n_spans"], r["exact_precision"],
             r["exact_recall"], r["exact_f1"], r["relaxed_precision"], r["relaxed_recall"], r["relaxed_f1"]]
            for r in rows]
    return text_table(header, body, formats={i: "{:.3f}" for i in range(4, 10)})
