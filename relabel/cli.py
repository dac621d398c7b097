"""The `relabel` command line: thin commands, each calling one library function.

A RelabelError becomes a one-line message and exit code 1; bad usage is click's exit code 2. ``cli`` is a
click group, so more commands (e.g. ``demo``) are added with ``cli.add_command``.

Every command takes ``--json`` (one JSON object on standard output instead of the text) and, except ``demo``
(which keeps its own config in --dir), ``--config FILE`` after the subcommand as well as before it.
What the commands print (one JSON object or text lines, tables, the step lines of `relabel round`, the -v log
lines) is made in relabel/cli_output.py.
"""
from __future__ import annotations

import functools
import json
import os
import sys

import click

from relabel import progress
from relabel import cli_warnings
from relabel.about import __version__
from relabel.scoring.error_estimate import format_expected
from relabel.scoring.override_evidence import regime_sentence
from relabel.config import (API_KEY_ENV, DEFAULT_BUDGET, DEFAULT_CONFIG, REVIEW_MODES, URL_ENV, label_studio_url,
                            load_config, non_empty_string, positive_budget, positive_int)
from relabel.errors import RelabelError
from relabel.redaction import redact
from relabel.report.page import DEFAULT_TOP
from relabel.loop.export import EXPORT_FORMATS
from relabel.loop.project_setup import initialise
from relabel.loop.rounds import Loop
from relabel.cli_output import (collect_lines, jsonable, pull_json, pull_line, push_line, say,
                                set_verbosity, score_lines, span_annotator_table, step_lines, text_table,
                                wants_json)

# What `relabel log` prints when not told how many events: the latest this many.
DEFAULT_LOG_LIMIT = 50

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
            raise _failure(_one_line(exc)) from None
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise _failure(_one_line(f"{exc.strerror or exc}{where}; check the path and its permissions.")) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise _failure(_one_line(
                f"relabel failed unexpectedly ({type(exc).__name__}: {exc}); this is a bug: please report it with "
                f"the command you ran (set {DEBUG_ENV}=1 to see the traceback).")) from None
    return wrapper


def _failure(message: str) -> click.ClickException:
    """The exit-1 error; with --json also ``{"error": ..., "exit_code": 1}`` on stdout, so a script reading the
    JSON gets the failure in the same place as a result (the `Error:` line still goes to stderr)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, dict) and ctx.obj.get("json"):
        click.echo(json.dumps({"error": message, "exit_code": 1}))
    return click.ClickException(message)


def _set_config(ctx: click.Context, _param, value) -> None:
    if value is not None:
        ctx.ensure_object(dict)["config_path"] = value


def _set_json(ctx: click.Context, _param, value) -> None:
    if value:
        ctx.ensure_object(dict)["json"] = True
        progress.set_quiet(True)   # nothing but the JSON object, even on a terminal


def config_option(command):
    """``--config FILE`` on a subcommand: the same as before it (``relabel --config F round``)."""
    return click.option("--config", "config_path", default=None, expose_value=False, is_eager=True,
                        type=click.Path(dir_okay=False), callback=_set_config,
                        help=f"The relabel.toml to use (default ./{DEFAULT_CONFIG} or $RELABEL_CONFIG).")(command)


def json_option(command):
    """``--json``: print one JSON object (the command's summary) instead of text."""
    return click.option("--json", "as_json", is_flag=True, expose_value=False, callback=_set_json,
                        help="Print a JSON summary instead of text.")(command)


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
    from relabel.models.fit import ModelSettings  # heavy: imported only when --featurizer is given
    return ModelSettings.from_dict({"featurizer": non_empty_string("featurizer", value)}).featurizer


def _loop(ctx: click.Context, wait: float = 0.0) -> Loop:
    obj = ctx.obj
    config = load_config(obj["config_path"])
    loop = Loop.from_config(config, connector=obj.get("connector"), lock_wait=wait)
    ctx.call_on_close(loop.close)
    return loop


# Every command that changes the store or Label Studio holds the store's writer lock (relabel/loop/lock.py).
_wait_option = click.option(
    "--wait", "wait", type=click.FloatRange(min=0, max=86400), default=0, show_default=True, metavar="SECONDS",
    help="When another relabel command is writing to the store, wait up to this long for it instead of "
         "exiting 1 at once.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="relabel")
@click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True, envvar="RELABEL_CONFIG",
              type=click.Path(dir_okay=False), help="The relabel.toml to use (also accepted after the command).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or step lines (bars show only on a terminal).")
@click.option("-v", "--verbose", count=True, help="Show each step as it is logged (the events table); -vv: debug.")
@click.pass_context
def cli(ctx: click.Context, config_path: str, quiet: bool, verbose: int):
    """Find and fix label errors in a Label Studio project, in relabel rounds.

    \b
    export LABEL_STUDIO_API_KEY=...          # an owner/admin token (never stored)
    relabel init --url http://localhost:8080 --project 3
    relabel round --budget 20                # score, push the 20 worst items to review
    relabel round --budget 20                # collect the reviews, rescore, push the next 20
    relabel status
    relabel report --out report.html         # plots, annotators, classes, worst items
    relabel log                              # what every command did (the events table)
    """
    ctx.ensure_object(dict)
    ctx.obj.setdefault("config_path", config_path)
    ctx.obj["quiet"] = quiet
    progress.set_quiet(quiet)
    set_verbosity(verbose)
    cli_warnings.install()       # a warning is one line naming classes by label, not Python's file:line format


@cli.command()
@click.option("--url", envvar=URL_ENV, show_envvar=True, callback=_validated(label_studio_url),
              help="The Label Studio server, e.g. http://localhost:8080 (required).")
@click.option("--project", type=int, callback=_positive("project"),
              help="The source project id, the number in /projects/<id>/ (required).")
@click.option("--label-tag", default=None, callback=_non_empty("label_tag"), help="The <Choices name=...> to score, if the config has several.")
@click.option("--text-field", default=None, callback=_non_empty("text_field"), help="The task data field holding the text, if ambiguous.")
@click.option("--api-key-file", default=None, callback=_non_empty("api_key_file"), help=f"A file holding the API key (else ${API_KEY_ENV}).")
@click.option("--mode", type=click.Choice(REVIEW_MODES), default="project", show_default=True,
              help="Review in a separate project or in place.")
@click.option("--budget", type=int, default=DEFAULT_BUDGET, show_default=True, callback=_validated(positive_budget),
              help="Review tasks to keep open: each round tops the queue up to this many.")
@click.option("--store", "store_path", default="relabel.db", show_default=True, callback=_non_empty("store"),
              help="The SQLite store.")
@click.option("--featurizer", default=None, callback=_validated(_featurizer),
              help="The model's featurizer ('tfidf', the default, or 'sentence-transformers').")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@click.option("--example", is_flag=True, help="Print the commented example config (every key) and stop.")
@_wait_option
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def init(ctx, url, project, label_tag, text_field, api_key_file, mode, budget, store_path, featurizer, force,
         example, wait):
    """Write relabel.toml and check the connection to the project.

    Prints the project's title, task and annotation counts and classes. Nothing is written if the
    server, the key or the project is wrong, or if the project is relabel's own review project.
    `relabel init --example` prints a commented example config instead (nothing is checked or written).

    \b
    export LABEL_STUDIO_API_KEY=...
    relabel init --url http://localhost:8080 --project 3 --budget 20
    relabel init --example > relabel.toml
    """
    if example:
        from relabel.config import example_config
        text = example_config()
        say(ctx, {"example_config": text}, text.rstrip("\n"))
        return
    for name, value in (("--url", url), ("--project", project)):
        if value is None:
            raise click.UsageError(f"Missing option '{name}'" + (f" (or set {URL_ENV})." if name == "--url" else "."))
    info = initialise(ctx.obj["config_path"], url=url, project=project, label_tag=label_tag,
                      text_field=text_field, api_key_file=api_key_file, mode=mode, budget=budget,
                      store=store_path, featurizer=featurizer, overwrite=force, connector=ctx.obj.get("connector"),
                      lock_wait=wait)
    multi_label = bool(getattr(info, "multi_label", False))
    kind = ", multi-label: a set of classes per task" if multi_label else ""
    say(ctx, {"project": info.project_id, "title": info.title, "tasks": info.n_tasks,
              "annotations": info.n_annotations, "skipped": info.n_skipped, "label_tag": info.label_tag,
              "classes": list(info.classes), "multi_label": multi_label,
              "config": str(ctx.obj["config_path"])},
        [f"Project {info.project_id}: {info.title}",
         f"  tasks: {info.n_tasks}  annotations: {info.n_annotations} (and {info.n_skipped} skipped)",
         f"  classes ({info.label_tag}{kind}): {', '.join(info.classes)}",
         f"Wrote {ctx.obj['config_path']}; next: " + (
             f"relabel round --budget {budget}" if info.n_annotations else
             "annotate some tasks in Label Studio (the project has 0 annotations and relabel scores annotated "
             f"tasks), then relabel round --budget {budget}")])


@cli.command()
@click.option("--full", is_flag=True, help="Read the whole project (a snapshot export), not only what changed.")
@_wait_option
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def pull(ctx, full, wait):
    """Pull new, changed and deleted annotations from Label Studio into the store.

    Only tasks changed since the last pull are read; deleted tasks are found from the project's counts.
    The whole project is read on the first pull, with --full, and every `full_pull_hours` (default 24).

    \b
    relabel pull
    relabel pull --full
    """
    s = _loop(ctx, wait).pull(full=True if full else None)
    say(ctx, pull_json(s), pull_line(s, unchanged=True))
    if not wants_json(ctx):
        for w in s.warnings:
            click.echo(f"warning: {w}", err=True)


_DASK_OPTION = click.option(
    "--dask-scheduler", default=None, metavar="ADDRESS",
    help="Embed on this running Dask cluster (e.g. tcp://host:8786); overrides [model] dask_scheduler.")


def _on_dask(loop: Loop, address: str | None) -> Loop:
    """Point the loop's sentence-transformers featurizer at a Dask scheduler given on the command line."""
    if address is not None:
        from relabel.models.embed_dask import check_scheduler
        model = loop.model if isinstance(loop.model, dict) else vars(loop.model)
        loop.model = {**model, "dask_scheduler": check_scheduler(address)}
    return loop


@cli.command()
@_DASK_OPTION
@_wait_option
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def score(ctx, dask_scheduler, wait):
    """Score every item: model, consensus (model-aware Dawid-Skene) and quality, label issues, ActiveLab.

    \b
    relabel pull && relabel score
    relabel score --dask-scheduler tcp://scheduler:8786   # embeddings on a Dask cluster
    """
    s = _on_dask(_loop(ctx, wait), dask_scheduler).score()
    say(ctx, jsonable(s), score_lines(s))


_ADD_OPTION = click.option("--add", type=click.IntRange(0), default=None, metavar="N",
                           help="Push N new review tasks whatever is still open (instead of topping the queue "
                                "up to the budget).")


@cli.command()
@click.option("--budget", type=int, default=None, callback=_validated(positive_budget),
              help="Review tasks to keep open: the round pushes budget - open (default: the config's budget).")
@_ADD_OPTION
@_wait_option
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def push(ctx, budget, add, wait):
    """Push the latest round's lowest-quality items to review, up to [review] budget open review tasks; running
    it again creates nothing new.

    \b
    relabel push --budget 20
    """
    s = _loop(ctx, wait).push(budget, add)
    say(ctx, jsonable(s), push_line(s))


@cli.command()
@_wait_option
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def collect(ctx, wait):
    """Record reviewers' answers to pushed review tasks as decisions.

    \b
    relabel collect
    """
    s = _loop(ctx, wait).collect()
    say(ctx, jsonable(s), collect_lines(s))


@cli.command("round")
@click.option("--budget", type=int, default=None, callback=_validated(positive_budget),
              help="Review tasks to keep open: the round pushes budget - open (default: the config's budget).")
@click.option("--force", is_flag=True, help="Start a round even when nothing changed since the last one.")
@_ADD_OPTION
@_DASK_OPTION
@_wait_option
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def round_(ctx, budget, force, add, dask_scheduler, wait):
    """Run a relabel round: collect -> pull -> score -> select -> push (resumes a round that died).

    With nothing new since the last round (no new or changed annotations, no new or changed decisions) it
    says so and exits 0 without starting a round, so it is safe to run from cron; --force starts one anyway.
    [review] budget (--budget) is the number of open review tasks to keep: a round pushes budget - open, so
    the queue tops up instead of stacking; --add N pushes N more whatever is open.
    Each step prints its line when it ends; off a terminal (cron, CI) each step also says when it starts,
    on standard error, so a log never sits silent for the minute a scoring takes.

    \b
    relabel round --budget 20
    """
    as_json = wants_json(ctx)
    # A terminal has progress bars; a pipe or a log file gets a line as each step starts.
    announce = not as_json and not ctx.obj.get("quiet") and not sys.stderr.isatty()
    starting = {"collect": "Collecting reviewers' answers...", "pull": "Pulling from Label Studio...",
                "score": "Scoring (model, consensus, quality)...", "push": "Selecting and pushing review tasks..."}

    def on_step(name, summary):
        if summary is None:
            if announce:
                click.echo(starting.get(name, f"{name}..."), err=True)
        elif not as_json:
            for line in step_lines(name, summary):
                click.echo(line)

    s = _on_dask(_loop(ctx, wait), dask_scheduler).round(budget, force=force, on_step=on_step, add=add)
    unchanged = None if s.unchanged_reason is None else \
        f"{s.unchanged_reason[0].upper()}{s.unchanged_reason[1:]}; no new round (--force starts one anyway)."
    if as_json:
        click.echo(json.dumps({"round": s.round, "resumed": s.resumed, "steps": list(s.steps),
                               "unchanged": s.unchanged_reason,
                               "collect": jsonable(s.collect) if s.collect else None,
                               "pull": pull_json(s.pull) if s.pull else None,
                               "score": jsonable(s.score) if s.score else None,
                               "push": jsonable(s.push) if s.push else None, "notes": list(s.notes)},
                              default=jsonable))
        return
    if s.resumed:
        click.echo(f"Resumed round {s.round}.")
    if unchanged is not None:
        click.echo(unchanged)
    for note in s.notes:
        click.echo(f"note: {note}")


@cli.command()
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def status(ctx):
    """Show every round: items, annotations, review tasks pushed, reviewed, corrected, expected errors left.

    \b
    relabel status --json
    """
    report = _loop(ctx).status()
    if wants_json(ctx):
        click.echo(json.dumps(report))
        return
    if not report["rounds"]:
        click.echo("No rounds yet; run `relabel round`.")
        return
    header = ["round", "status", "items", "annotations", "pushed", "reviewed", "corrected",
              "expected_remaining_errors", "wrong_in_batch"]
    rows = [[r[h] for h in header[:7]]
            + [format_expected(r["expected_remaining_errors"], r["expected_low"], r["expected_high"]),
               format_expected(r["batch_expected"], r["batch_low"], r["batch_high"])]
            for r in report["rounds"]]
    click.echo(text_table(header, rows))
    click.echo(report["wrong_labels_left"]["text"])
    for r in report["rounds"]:
        if r["stop_reason"]:
            click.echo(f"round {r['round']}: {r['stop_reason']}")
    latest = report["rounds"][-1]
    click.echo(f"round {latest['round']}: {regime_sentence(latest.get('overrides'))}")


@cli.command()
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def annotators(ctx):
    """Per-annotator quality, agreement with consensus, worst class and number of labels (latest round).

    \b
    relabel annotators --json
    """
    rows = _loop(ctx).annotators()
    if wants_json(ctx):
        click.echo(json.dumps({"annotators": rows}))
        return
    if rows and "exact_f1" in rows[0]:      # a span project (relabel/loop/span_round.py)
        click.echo(span_annotator_table(rows))
        return
    header = ["annotator", "quality", "agreement", "worst_class", "labels"]
    click.echo(text_table(header, [[r[h] for h in header] for r in rows], formats={1: "{:.3f}", 2: "{:.1%}"}))


@cli.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The HTML file to write.")
@click.option("--round", "round_number", type=int, default=None, callback=_positive("round"),
              help="The round to report (default: the latest).")
@click.option("--top", type=int, default=DEFAULT_TOP, show_default=True, callback=_positive("top"),
              help="How many of the items most likely mislabelled to list.")
@click.option("--url", default=None, callback=_validated(label_studio_url),
              help="The Label Studio URL for task links (default: the config's).")
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def report(ctx, out, round_number, top, url):
    """Write a self-contained HTML report of a round: trend, review queue, agreement, annotators, classes, items.

    One file that opens offline (plots inline, no external scripts or fonts), to share with annotators.

    \b
    relabel report --out report.html
    relabel report --round 2 --top 30 --out round2.html
    """
    from relabel.report.page import write_report

    loop = _loop(ctx)
    config_url = load_config(ctx.obj["config_path"]).label_studio.url
    s = write_report(loop.store, out, round_number, url=url or config_url, top=top)
    say(ctx, {"round": s.round, "path": str(s.path), "bytes": s.bytes, "items_listed": s.items_listed},
        f"Wrote the round {s.round} report to {out} ({s.bytes / 1e6:.1f} MB, {s.items_listed} items listed).")


@cli.command()
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS + ("conll",)), required=True,
              help="Output format (span projects: jsonl or conll, CoNLL BIO).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True), help="Output file.")
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def export(ctx, fmt, out):
    """Export every item with its final label (reviewer's where reviewed, consensus elsewhere).

    \b
    relabel export --format csv --out labels.csv
    """
    n = _loop(ctx).export(fmt, out)
    say(ctx, {"items": n, "path": out, "format": fmt}, f"Wrote {n} items to {out}.")


@cli.command("log")
@click.option("--round", "round_number", type=int, default=None, help="Only the events of this round.")
@click.option("--step", default=None, help="Only this step (init, pull, score, select, push, collect, ...).")
@click.option("--limit", type=click.IntRange(0), default=DEFAULT_LOG_LIMIT, show_default=True,
              help="The latest this many events (0: all).")
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def log_(ctx, round_number, step, limit):
    """Print the store's audit log (the events table): what every command did, and when, oldest first.

    \b
    relabel log
    relabel log --round 3 --step push
    relabel log --limit 0 --json > events.json
    """
    from relabel.report.html import when

    events = _loop(ctx).store.events(step)
    if round_number is not None:
        events = [e for e in events if e["round"] == round_number]
    if limit:
        events = events[-limit:]
    if wants_json(ctx):
        click.echo(json.dumps({"events": [{**e, "details": json.loads(e["details"]) if e["details"] else None}
                                          for e in events]}))
        return
    if not events:
        click.echo("No events yet." if step is None and round_number is None else "No events match.")
        return
    click.echo(text_table(["at", "round", "step", "message"],
                          [[when(e["at"]), e["round"], e["step"], e["message"]] for e in events]))


@cli.command()
@_wait_option
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def writeback(ctx, wait):
    """Write every item's final label into the source project's task field `relabel_final`.

    The same label `relabel export` gives (the reviewer's where reviewed, the consensus elsewhere); only
    changed tasks are written, so running it twice changes nothing. Label Studio's exports then carry it.

    \b
    relabel round && relabel writeback
    """
    s = _loop(ctx, wait).writeback()
    say(ctx, jsonable(s),
        f"Final labels in Label Studio: {s.written} written, {s.updated} updated, {s.removed} removed, "
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
@click.option("--serve", is_flag=True,
              help="Run `relabel serve` against it: rounds start by themselves as the expert answers (--rounds is the most).")
@json_option
@click.pass_context
@_errors_to_exit_1
def demo(ctx, root, n_items, budget, rounds, simulate_review, featurizer, keep_running, serve):
    """Run relabel end to end on a private Label Studio with real texts and simulated annotators.

    Starts Label Studio on a free 127.0.0.1 port (data in --dir; a second run reuses it and starts in
    seconds), creates a project of BBC News articles labelled by five simulated annotators, runs a round and
    prints what it found. Waits for Ctrl-C before stopping the server when run in a terminal.

    \b
    relabel demo                                   # one round, then browse it in Label Studio
    relabel demo --simulate-review --rounds 3      # an expert reviews; measured error rate per round
    relabel demo --serve --rounds 4                # the same, with the rounds started by relabel serve
    """
    import time

    from relabel.demo import run_demo

    def wait():
        while True:
            time.sleep(3600)

    as_json = wants_json(ctx)
    # Under --json the demo's story goes to standard error and standard output carries only the JSON.
    figures = run_demo(root, n_items=n_items, budget=budget, rounds=rounds, simulate_review=simulate_review,
                       keep_running=keep_running, featurizer=featurizer,
                       echo=functools.partial(click.echo, err=True) if as_json else click.echo,
                       wait=wait if sys.stdin.isatty() and sys.stdout.isatty() and not as_json else None,
                       serve=serve)
    if as_json:
        click.echo(json.dumps({"dir": str(root), "rounds": figures}, default=jsonable))


@cli.command()
@click.option("--host", default=None, help="The address to listen on (default: [serve] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="The port (default: [serve] port, 9090).")
@click.option("--register", is_flag=True,
              help="Once listening, connect the project: webhooks with the secret and the ML backend (idempotent).")
@click.option("--unregister", is_flag=True, help="Remove the webhooks and the ML backend connection, then exit.")
@click.option("-v", "--verbose", count=True, help="Log requests and tracebacks too.")
@config_option
@json_option
@click.pass_context
@_errors_to_exit_1
def serve(ctx, host, port, register, unregister, verbose):
    """Run relabel as a Label Studio plugin: ML backend, webhooks, rounds that start by themselves.

    Label Studio shows relabel's label and quality as predictions, sends its webhooks here, and the next
    round runs when the review queue is drained (or per [serve] trigger). Secrets come from
    RELABEL_SERVE_PASSWORD and RELABEL_WEBHOOK_SECRET (or 0600 files named in [serve]). Logs go to stderr;
    --json applies to --unregister's summary.

    \b
    export RELABEL_SERVE_PASSWORD=... RELABEL_WEBHOOK_SECRET=...
    relabel serve --register                 # listen on 127.0.0.1:9090 and connect the project
    relabel serve --unregister               # disconnect it
    """
    from relabel.service.runner import serve as run_service, setup_logging, unregister_service, with_address

    if register and unregister:
        raise click.UsageError("--register and --unregister cannot be used together.")
    setup_logging(verbose)
    config = with_address(load_config(ctx.obj["config_path"]), host, port)
    if unregister:
        done = unregister_service(config)
        say(ctx, {**jsonable(done), "url": config.serve.public_url},
            f"Removed {done.webhooks_deleted} webhooks and the ML backend connection ({done.ml_backend}) for "
            f"{config.serve.public_url}.")
        return
    code = run_service(config, register_first=register, verbose=verbose)
    if code:
        raise click.ClickException("relabel serve stopped with an error; the log above says why.")



def main() -> None:
    """The `relabel` console script."""
    cli(obj={})
