"""The `relabel` command line: thin commands, each calling one library function.

A RelabelError becomes a one-line message and exit code 1; bad usage is click's exit code 2. ``cli`` is a
click group, so more commands (e.g. ``demo``) are added with ``cli.add_command``.
"""
from __future__ import annotations

import functools
import json
import math
import os

import click

from . import __version__, progress
from .calibration import format_expected
from .config import (API_KEY_ENV, DEFAULT_BUDGET, DEFAULT_CONFIG, REVIEW_MODES, label_studio_url, load_config,
                     non_empty_string, positive_budget, positive_int)
from .errors import RelabelError
from .redaction import redact
from .report import DEFAULT_TOP
from .rounds import EXPORT_FORMATS, Loop, initialise

# Set to anything to get Python's traceback instead of the one-line message for an unexpected error.
DEBUG_ENV = "RELABEL_DEBUG"


def _one_line(exc: Exception) -> str:
    """The exception's message on one line, with every credential redacted (keys, tokens, URL passwords)."""
    return " ".join(redact(exc, os.environ.get(API_KEY_ENV, "").strip()).split())


def _errors_to_exit_1(command):
    """Turn errors into a one-line `Error: ...` and exit code 1, never a traceback (RELABEL_DEBUG=1 shows it).

    relabel's own errors say what is wrong and how to fix it; anything else is a bug or an operating-system
    failure, named as such so the user can report it.
    """
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except RelabelError as exc:
            raise click.ClickException(_one_line(exc)) from None
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise click.ClickException(_one_line(f"{exc.strerror or exc}{where}; check the path and its "
                                                 "permissions.")) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException(_one_line(
                f"relabel failed unexpectedly ({type(exc).__name__}: {exc}); this is a bug: please report it with "
                f"the command you ran (set {DEBUG_ENV}=1 to see the traceback).")) from None
    return wrapper


def _validated(check):
    """A click callback running one of relabel.config's validators, so a bad value is a usage error (exit 2)
    with the same message the config file gets."""
    def callback(ctx, param, value):
        if value is None:
            return None
        try:
            return check(value)
        except RelabelError as exc:
            raise click.BadParameter(_one_line(exc), ctx=ctx, param=param) from None
    return callback


def _positive(name: str):
    return _validated(lambda value: positive_int(name, value))


def _non_empty(name: str):
    return _validated(lambda value: non_empty_string(name, value))


def _featurizer(value: str) -> str:
    from .model import ModelSettings  # heavy: imported only when --featurizer is given
    return ModelSettings.from_dict({"featurizer": non_empty_string("featurizer", value)}).featurizer


def _loop(ctx: click.Context) -> Loop:
    obj = ctx.obj
    config = load_config(obj["config_path"])
    loop = Loop.from_config(config, connector=obj.get("connector"))
    ctx.call_on_close(loop.close)
    return loop


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="relabel")
@click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True, envvar="RELABEL_CONFIG",
              type=click.Path(dir_okay=False), help="The relabel.toml to use.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars (they show only on a terminal anyway).")
@click.pass_context
def cli(ctx: click.Context, config_path: str, quiet: bool):
    """Find and fix label errors in a Label Studio project, in relabel rounds.

    \b
    export LABEL_STUDIO_API_KEY=...          # an owner/admin token (never stored)
    relabel init --url http://localhost:8080 --project 3
    relabel round --budget 20                # score, push the 20 worst items to review
    relabel round --budget 20                # collect the reviews, rescore, push the next 20
    relabel status
    relabel report --out report.html         # plots, annotators, classes, worst items
    """
    ctx.ensure_object(dict)
    ctx.obj.setdefault("config_path", config_path)
    progress.set_quiet(quiet)


@cli.command()
@click.option("--url", required=True, callback=_validated(label_studio_url),
              help="The Label Studio server, e.g. http://localhost:8080.")
@click.option("--project", required=True, type=int, callback=_positive("project"),
              help="The source project id (the number in /projects/<id>/).")
@click.option("--label-tag", default=None, callback=_non_empty("label_tag"), help="The <Choices name=...> to score, if the config has several.")
@click.option("--text-field", default=None, callback=_non_empty("text_field"), help="The task data field holding the text, if ambiguous.")
@click.option("--api-key-file", default=None, callback=_non_empty("api_key_file"), help=f"A file holding the API key (else ${API_KEY_ENV}).")
@click.option("--mode", type=click.Choice(REVIEW_MODES), default="project", show_default=True,
              help="Review in a separate project or in place.")
@click.option("--budget", type=int, default=DEFAULT_BUDGET, show_default=True, callback=_validated(positive_budget),
              help="Review tasks per round.")
@click.option("--store", "store_path", default="relabel.db", show_default=True, callback=_non_empty("store"),
              help="The SQLite store.")
@click.option("--featurizer", default=None, callback=_validated(_featurizer),
              help="The model's featurizer ('tfidf', the default, or 'sentence-transformers').")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@click.pass_context
@_errors_to_exit_1
def init(ctx, url, project, label_tag, text_field, api_key_file, mode, budget, store_path, featurizer, force):
    """Write relabel.toml and check the connection to the project.

    Prints the project's title, task and annotation counts and classes. Nothing is written if the
    server, the key or the project is wrong.

    \b
    export LABEL_STUDIO_API_KEY=...
    relabel init --url http://localhost:8080 --project 3 --budget 20
    """
    info = initialise(ctx.obj["config_path"], url=url, project=project, label_tag=label_tag,
                      text_field=text_field, api_key_file=api_key_file, mode=mode, budget=budget,
                      store=store_path, featurizer=featurizer, overwrite=force, connector=ctx.obj.get("connector"))
    click.echo(f"Project {info.project_id}: {info.title}")
    click.echo(f"  tasks: {info.n_tasks}  annotations: {info.n_annotations}")
    click.echo(f"  classes ({info.label_tag}): {', '.join(info.classes)}")
    click.echo(f"Wrote {ctx.obj['config_path']}; next: relabel round --budget {budget}")


@cli.command()
@click.option("--full", is_flag=True, help="Read the whole project (a snapshot export), not only what changed.")
@click.pass_context
@_errors_to_exit_1
def pull(ctx, full):
    """Pull new, changed and deleted annotations from Label Studio into the store.

    Only tasks changed since the last pull are read; deleted tasks are found from the project's counts.
    The whole project is read on the first pull, with --full, and every `full_pull_hours` (default 24).

    \b
    relabel pull
    relabel pull --full
    """
    s = _loop(ctx).pull(full=True if full else None)
    click.echo(f"Pulled {s.items} items: {s.new} new, {s.changed} changed, {s.unchanged} unchanged, "
               f"{s.deleted} deleted annotations, {s.deleted_items} deleted tasks.")
    for w in s.warnings:
        click.echo(f"warning: {w}", err=True)


_DASK_OPTION = click.option(
    "--dask-scheduler", default=None, metavar="ADDRESS",
    help="Embed on this running Dask cluster (e.g. tcp://host:8786); overrides [model] dask_scheduler.")


def _on_dask(loop: Loop, address: str | None) -> Loop:
    """Point the loop's sentence-transformers featurizer at a Dask scheduler given on the command line."""
    if address is not None:
        from .embed_dask import check_scheduler
        model = loop.model if isinstance(loop.model, dict) else vars(loop.model)
        loop.model = {**model, "dask_scheduler": check_scheduler(address)}
    return loop


@cli.command()
@_DASK_OPTION
@click.pass_context
@_errors_to_exit_1
def score(ctx, dask_scheduler):
    """Score every item: model, consensus (model-aware Dawid-Skene) and quality, label issues, ActiveLab.

    \b
    relabel pull && relabel score
    relabel score --dask-scheduler tcp://scheduler:8786   # embeddings on a Dask cluster
    """
    _echo_score(_on_dask(_loop(ctx), dask_scheduler).score())


@cli.command()
@click.option("--budget", type=int, default=None, callback=_validated(positive_budget),
              help="Items to send to review (default: the config's budget).")
@click.pass_context
@_errors_to_exit_1
def push(ctx, budget):
    """Push the latest round's lowest-quality items to review; running it again creates nothing new.

    \b
    relabel push --budget 20
    """
    _echo_push(_loop(ctx).push(budget))


@cli.command()
@click.pass_context
@_errors_to_exit_1
def collect(ctx):
    """Record reviewers' answers to pushed review tasks as decisions.

    \b
    relabel collect
    """
    _echo_collect(_loop(ctx).collect())


@cli.command("round")
@click.option("--budget", type=int, default=None, callback=_validated(positive_budget),
              help="Items to send to review (default: the config's budget).")
@click.option("--force", is_flag=True, help="Start a round even when nothing changed since the last one.")
@_DASK_OPTION
@click.pass_context
@_errors_to_exit_1
def round_(ctx, budget, force, dask_scheduler):
    """Run a relabel round: collect -> pull -> score -> select -> push (resumes a round that died).

    With nothing new since the last round (no new or changed annotations, no new or changed decisions) it
    says so and exits 0 without starting a round, so it is safe to run from cron; --force starts one anyway.

    \b
    relabel round --budget 20
    """
    s = _on_dask(_loop(ctx), dask_scheduler).round(budget, force=force)
    if s.resumed:
        click.echo(f"Resumed round {s.round}.")
    if s.collect is not None:
        _echo_collect(s.collect)
    if s.pull is not None:
        click.echo(f"Pulled {s.pull.items} items: {s.pull.new} new, {s.pull.changed} changed, "
                   f"{s.pull.deleted} deleted annotations.")
    if s.unchanged_reason is not None:
        click.echo(f"{s.unchanged_reason[0].upper()}{s.unchanged_reason[1:]}; no new round "
                   "(--force starts one anyway).")
    if s.score is not None:
        _echo_score(s.score)
    if s.push is not None:
        _echo_push(s.push)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors_to_exit_1
def status(ctx, as_json):
    """Show every round: items, annotations, review tasks pushed, reviewed, corrected, expected errors left.

    \b
    relabel status --json
    """
    report = _loop(ctx).status()
    if as_json:
        click.echo(json.dumps(report))
        return
    if not report["rounds"]:
        click.echo("No rounds yet; run `relabel round`.")
        return
    header = ["round", "status", "items", "annotations", "pushed", "reviewed", "corrected",
              "expected_remaining_errors"]
    click.echo(_table(header, [[r[h] for h in header[:7]] + [format_expected(r["expected_remaining_errors"],
                                                                            r["expected_low"], r["expected_high"])]
                               for r in report["rounds"]]))
    for r in report["rounds"]:
        if r["stop_reason"]:
            click.echo(f"round {r['round']}: {r['stop_reason']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors_to_exit_1
def annotators(ctx, as_json):
    """Per-annotator quality, agreement with consensus, worst class and number of labels (latest round).

    \b
    relabel annotators --json
    """
    rows = _loop(ctx).annotators()
    if as_json:
        click.echo(json.dumps({"annotators": rows}))
        return
    header = ["annotator", "quality", "agreement", "worst_class", "labels"]
    click.echo(_table(header, [[r[h] for h in header] for r in rows], formats={1: "{:.3f}", 2: "{:.1%}"}))


@cli.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The HTML file to write.")
@click.option("--round", "round_number", type=int, default=None, callback=_positive("round"),
              help="The round to report (default: the latest).")
@click.option("--top", type=int, default=DEFAULT_TOP, show_default=True, callback=_positive("top"),
              help="How many of the items most likely mislabelled to list.")
@click.option("--url", default=None, callback=_validated(label_studio_url),
              help="The Label Studio URL for task links (default: the config's).")
@click.pass_context
@_errors_to_exit_1
def report(ctx, out, round_number, top, url):
    """Write a self-contained HTML report of a round: trend, quality, annotators, classes, worst items.

    One file that opens offline (plots inline, no external scripts or fonts), to share with annotators.

    \b
    relabel report --out report.html
    relabel report --round 2 --top 30 --out round2.html
    """
    from .report import write_report

    loop = _loop(ctx)
    config_url = load_config(ctx.obj["config_path"]).label_studio.url
    s = write_report(loop.store, out, round_number, url=url or config_url, top=top)
    click.echo(f"Wrote the round {s.round} report to {out} ({s.bytes / 1e6:.1f} MB, {s.items_listed} items listed).")


@cli.command()
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True, help="Output format.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True), help="Output file.")
@click.pass_context
@_errors_to_exit_1
def export(ctx, fmt, out):
    """Export every item with its final label (reviewer's where reviewed, consensus elsewhere).

    \b
    relabel export --format csv --out labels.csv
    """
    n = _loop(ctx).export(fmt, out)
    click.echo(f"Wrote {n} items to {out}.")


@cli.command()
@click.pass_context
@_errors_to_exit_1
def writeback(ctx):
    """Write every item's final label into the source project's task field `relabel_final`.

    The same label `relabel export` gives (the reviewer's where reviewed, the consensus elsewhere); only
    changed tasks are written, so running it twice changes nothing. Label Studio's exports then carry it.

    \b
    relabel round && relabel writeback
    """
    s = _loop(ctx).writeback()
    click.echo(f"Final labels in Label Studio: {s.written} written, {s.updated} updated, {s.removed} removed, "
               f"{s.unchanged} unchanged" + (f"; {s.missing} items are no longer tasks." if s.missing else "."))


@cli.command()
@click.option("--dir", "root", default=".relabel-demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo keeps Label Studio's data, the store and the ground truth.")
@click.option("--items", "n_items", type=click.IntRange(20, 2000), default=300, show_default=True,
              help="BBC News articles in the demo project (used on the first run only).")
@click.option("--budget", type=click.IntRange(1), default=30, show_default=True, help="Review tasks per round.")
@click.option("--rounds", type=click.IntRange(1, 20), default=1, show_default=True, help="Rounds to run.")
@click.option("--simulate-review", is_flag=True,
              help="An expert answers each round's review tasks with the ground truth, through the API.")
@click.option("--featurizer", default=None, callback=_validated(_featurizer),
              help="The model's featurizer (default: the config default).")
@click.option("--keep-running", is_flag=True, help="Leave Label Studio running after the demo and say how to stop it.")
@_errors_to_exit_1
def demo(root, n_items, budget, rounds, simulate_review, featurizer, keep_running):
    """Run relabel end to end on a private Label Studio with real texts and simulated annotators.

    Starts Label Studio on a free 127.0.0.1 port (data in --dir; a second run reuses it and starts in
    seconds), creates a project of BBC News articles labelled by five simulated annotators, runs a round and
    prints what it found. Waits for Ctrl-C before stopping the server when run in a terminal.

    \b
    relabel demo                                   # one round, then browse it in Label Studio
    relabel demo --simulate-review --rounds 3      # an expert reviews; measured error rate per round
    """
    import sys
    import time

    from .demo import run_demo

    def wait():
        while True:
            time.sleep(3600)

    run_demo(root, n_items=n_items, budget=budget, rounds=rounds, simulate_review=simulate_review,
             keep_running=keep_running, featurizer=featurizer, echo=click.echo,
             wait=wait if sys.stdin.isatty() and sys.stdout.isatty() else None)


# ---- output helpers ----------------------------------------------------------------------------------------
def _echo_score(s) -> None:
    click.echo(f"Round {s.round} scored ({s.method}): {s.labelled_items} labelled of {s.items} items, "
               f"{s.annotations} annotations by {s.annotators} annotators; {s.label_issues} label issues; "
               f"expected wrong labels left {s.expected_text}"
               + (f"; {s.overrides} overrides (a label no annotator gave)." if s.overrides else "."))
    if s.model:
        click.echo(s.model)
    for note in s.notes:
        click.echo(f"note: {note}")


def _echo_collect(s) -> None:
    click.echo(f"Collected {s.decisions} decisions ({s.confirmed} confirmed, {s.corrected} corrected, "
               f"{s.skipped} skipped, {s.disputed} disputed), {s.changed} changed, "
               f"{s.ordinary} answers by non-reviewers kept as annotations.")


def _echo_push(s) -> None:
    if s.stop_reason:
        click.echo(f"Round {s.round}: nothing pushed. {s.stop_reason}")
        return
    click.echo(f"Round {s.round}: {s.new} new review tasks ({s.mode}), {s.total} in total.")


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


def _table(header: list[str], rows: list[list], formats: dict[int, str] | None = None) -> str:
    """An aligned plain-text table: text left, numbers right; ``formats`` maps a column to a format string."""
    formats = formats or {}
    cells = [[_cell(v, formats.get(i)) for i, v in enumerate(row)] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(header))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in cells])


def main() -> None:
    """The `relabel` console script."""
    cli(obj={})
