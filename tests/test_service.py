"""`relabel serve` against a real Label Studio 1.23.2 (issue 14 acceptance 1-6).

The module uses the session's Label Studio, started with SSRF protection off (webhooks and ML backends on
127.0.0.1 are refused otherwise), builds one small project, and runs the service as a real `relabel serve --register -v` process whose
stderr is the log the tests read. The tests run in file order and share that state: round 1 is started by the
service itself, round 2 by a drained review queue, round 3 beside a CLI `relabel round`, round 4 after Label
Studio was down and the service missed the webhooks. Every wait polls with a deadline.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from label_studio_helpers import admin_client, answer_task, build_acceptance_project, make_members
from relabel.cli import cli
from relabel.config import API_KEY_ENV, SERVE_PASSWORD_ENV, WEBHOOK_SECRET_ENV
from relabel.server import free_port, start_label_studio
from relabel.service.webhooks import ACTIONS, SECRET_HEADER
from relabel.loop.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
PASSWORD, SECRET = "serve-test-password", "serve-test-webhook-secret"
BUDGET = 8
ROUND_TIMEOUT = 180.0


def wait_for(what: str, check, timeout: float = ROUND_TIMEOUT, every: float = 0.25):
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Env:
    """Everything the module's tests share."""

    def __init__(self, root: Path, label_studio):
        self.root = root
        self.ls = label_studio
        self.port = free_port()
        self.service: subprocess.Popen | None = None
        self.log = root / "serve.log"
        self._log_file = None

    # ---- Label Studio -----------------------------------------------------------------------------------
    def restart_label_studio(self) -> None:
        """Start the session's Label Studio again (same data, port and key) after a test stopped it.

        The new process goes into the session's server object, so the other test modules keep using it and the
        session teardown stops it.
        """
        again = start_label_studio(self.ls.data_dir, port=self.ls.port, username=self.ls.username,
                                   password=self.ls.password, log_path=self.ls.log_path,
                                   ssrf_protection=False)
        self.ls.process, self.ls._log_file = again.process, again._log_file

    # ---- the service ----------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> tuple[str, str]:
        return ("relabel", PASSWORD)

    def env(self) -> dict:
        env = dict(os.environ)
        env.update({API_KEY_ENV: self.ls.api_key, SERVE_PASSWORD_ENV: PASSWORD, WEBHOOK_SECRET_ENV: SECRET,
                    "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", "")})
        return env

    def start_service(self, *args: str) -> None:
        self._log_file = open(self.log, "ab")
        self.service = subprocess.Popen(
            [sys.executable, "-c", "from relabel.cli import main; main()", "--config", str(self.root / "relabel.toml"), "serve", "-v", *args],
            cwd=self.root, env=self.env(), stdout=self._log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        wait_for("relabel serve to answer /health", self._healthy, timeout=60)

    def _healthy(self) -> bool:
        if self.service.poll() is not None:
            pytest.fail(f"relabel serve exited with {self.service.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop_service(self) -> int:
        self.service.send_signal(signal.SIGTERM)
        code = self.service.wait(timeout=120)
        self._log_file.close()
        return code

    def status(self) -> dict:
        response = httpx.get(f"{self.url}/status.json", auth=self.auth, timeout=10)
        response.raise_for_status()
        return response.json()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def store(self) -> Store:
        return Store(self.root / "relabel.db")


@pytest.fixture(scope="module")
def env(tmp_path_factory, label_studio):
    """The session's Label Studio (SSRF protection off, see conftest.py), a project, a config, and the service."""
    root = tmp_path_factory.mktemp("serve")
    e = Env(root, label_studio)
    e.admin = admin_client(e.ls.url, e.ls.api_key)
    e.project = build_acceptance_project(e.admin, title="relabel serve", n_tasks=90, n_unlabelled=6, seed=14,
                                         email_prefix="serve-")
    e.reviewer = make_members(e.admin, "serve-reviewer-", 1)[0][0]
    runner = CliRunner(env={API_KEY_ENV: e.ls.api_key})
    result = runner.invoke(cli, ["--config", str(root / "relabel.toml"), "init", "--url", e.ls.url, "--project",
                                 str(e.project.project_id), "--featurizer", "tfidf", "--budget", str(BUDGET),
                                 "--store", str(root / "relabel.db")], obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # Stop signal off: these tests are about the service, and need every round it starts to push, also after a
    # round whose reviewer confirmed everything (which the default would rightly call done).
    config = root / "relabel.toml"
    # Audits off too: a batch is then exactly the budget these tests count (audits through a real Label Studio:
    # test_loop_integration.test_audit_items_two_rounds_against_label_studio).
    config.write_text(config.read_text().replace("[review]\n", "[review]\nmin_expected_errors = 0\naudit = 0\n"))
    with open(root / "relabel.toml", "a") as f:
        f.write(f"\n[serve]\nport = {e.port}\ntrigger = \"drained\"\nreconcile_seconds = 3\n"
                f"retry_max_seconds = 2\n")
    try:
        yield e
    finally:
        if e.service is not None and e.service.poll() is None:
            e.stop_service()
        if e.ls.process.poll() is not None:       # a failed test left it stopped: the next modules need it
            e.restart_label_studio()


def ours(env, project: int) -> tuple[list[dict], list[dict]]:
    """(ML backends, webhooks) of ``project`` that point at the service, as Label Studio lists them."""
    raw = env.admin._client_wrapper.httpx_client
    backends = raw.request("api/ml/", method="GET", params={"project": project}).json()
    hooks = raw.request("api/webhooks/", method="GET", params={"project": project}).json()
    return ([b for b in backends if b["url"].rstrip("/") == env.url],
            [h for h in hooks if h["url"].startswith(env.url) and h["project"] == project])


def review_project(env) -> int:
    from connectors.label_studio import REVIEW_MARKER
    marker = f"{REVIEW_MARKER}{env.project.project_id}"
    found = [p.id for p in env.admin.projects.list() if marker in (p.description or "").split()]
    assert len(found) == 1, found
    return found[0]


def round_pushed(env, number: int):
    with env.store() as store:
        rows = [r for r in store.rounds() if r["round"] == number and r["status"] == "pushed"]
        return rows[0] if rows else None


def answer_round(env, number: int) -> int:
    """The reviewer answers every review task of round ``number`` with the true label, through the API."""
    with env.store() as store:
        tasks = store.review_tasks(number)
    for task in tasks:
        answer_task(env.admin, int(task["task_id"]), env.project.true_labels[int(task["item_id"])], env.reviewer)
    return len(tasks)


# ---- 1. register ----------------------------------------------------------------------------------------------
def test_register_connects_one_backend_and_webhooks_and_twice_adds_none(env, monkeypatch):
    env.start_service("--register")
    wait_for("the registration to be logged", lambda: "registered" in env.log_text(), timeout=60)
    source = env.project.project_id
    review = review_project(env)
    backends, hooks = ours(env, source)
    _, review_hooks = ours(env, review)
    assert len(backends) == 1 and backends[0]["auth_method"] == "BASIC_AUTH"
    assert backends[0]["basic_auth_user"] == "relabel" and "basic_auth_pass" not in backends[0]
    assert backends[0]["readable_state"] == "Connected"
    for hook in hooks + review_hooks:
        assert hook["url"] == f"{env.url}/webhook" and hook["headers"] == {SECRET_HEADER: SECRET}
        assert sorted(hook["actions"]) == sorted(ACTIONS) and not hook["send_for_all_actions"]
    # One webhook per project: Label Studio's own ML-backend webhook (all actions, no secret) was not added.
    assert len(hooks) == 1 and len(review_hooks) == 1
    # Independent annotators (issue 20): predictions are fetched for the Data Manager, but annotators' tasks are
    # not pre-filled with them ("Use predictions to prelabel tasks" off: [serve] prefill_annotators = false).
    settings = env.admin._client_wrapper.httpx_client.request(f"api/projects/{source}", method="GET").json()
    assert settings["evaluate_predictions_automatically"] is True
    assert settings["show_collab_predictions"] is False

    # --register again (the same code path as the CLI's, from a second process) creates nothing new.
    from relabel.config import load_config
    from relabel.service.runner import register_service
    for name, value in ((SERVE_PASSWORD_ENV, PASSWORD), (WEBHOOK_SECRET_ENV, SECRET), (API_KEY_ENV, env.ls.api_key)):
        monkeypatch.setenv(name, value)
    again = register_service(load_config(env.root / "relabel.toml"))
    assert (again.webhooks_created, again.webhooks_updated, again.ml_backend) == (0, 0, "kept")
    assert [len(x) for x in ours(env, source)] == [1, 1] and len(ours(env, review)[1]) == 1


# ---- 2. predictions through Label Studio --------------------------------------------------------------------
def test_label_studio_fetches_relabels_label_and_quality(env):
    # With no round in the store the service started round 1 by itself.
    first = wait_for("round 1 pushed by the service", lambda: round_pushed(env, 1))
    with env.store() as store:
        scores = {r["item_id"]: r for r in store.scores(first["round"])}
    labelled = next(t for t in env.project.task_ids if scores[str(t)]["labelled"])
    unlabelled = env.project.unlabelled[0]
    raw = env.admin._client_wrapper.httpx_client
    # Label Studio's own action "Retrieve predictions" on the connected ML backend, for two tasks.
    response = raw.request("api/dm/actions", method="POST",
                           params={"id": "retrieve_tasks_predictions", "project": env.project.project_id},
                           json={"selectedItems": {"all": False, "included": [labelled, unlabelled]}})
    assert response.status_code == 200, response.text
    for task_id, label_key, score_key in ((labelled, "final_label", "quality"),
                                          (unlabelled, "model_label", "model_prob")):
        task = raw.request(f"api/tasks/{task_id}", method="GET").json()
        mine = [p for p in task["predictions"] if p["model_version"] == "relabel round 1"]
        assert len(mine) == 1, task["predictions"]
        row = scores[str(task_id)]
        assert mine[0]["result"][0]["value"]["choices"] == [row[label_key]]
        assert mine[0]["result"][0]["from_name"] == "topic"
        assert mine[0]["score"] == pytest.approx(row[score_key])
    assert "predict: 2 tasks, 2 predictions (relabel round 1)" in env.log_text()

    # Opening a task that has no prediction yet (what the labeling screen does) fetches one too: --register
    # turned on "retrieve predictions automatically".
    opened = next(t for t in env.project.task_ids if t not in (labelled, unlabelled) and scores[str(t)]["labelled"])
    task = raw.request(f"api/tasks/{opened}", method="GET").json()
    mine = [p for p in task["predictions"] if p["model_version"] == "relabel round 1"]
    assert len(mine) == 1 and mine[0]["score"] == pytest.approx(scores[str(opened)]["quality"])


# ---- independent annotators (issue 20) ----------------------------------------------------------------------------
LABELED_INPUTS = "document.querySelectorAll('input[type=checkbox], input[type=radio]').length"
CHECKED_INPUTS = "document.querySelectorAll('input[type=checkbox]:checked, input[type=radio]:checked').length"


def _open_label_stream(env, chrome, session_id: str) -> tuple[int, int]:
    """Open the source project's label stream ("Label All Tasks") as the logged-in annotator; return (the task it
    showed, from Label Studio's next_task answer; the choices checked once the editor is drawn)."""
    chrome.events.clear()
    chrome.send("Network.setCookie", name="sessionid", value=session_id, url=env.ls.url)
    chrome.send("Page.navigate", url=f"{env.ls.url}/projects/{env.project.project_id}/data?labeling=1")
    deadline = time.monotonic() + 120
    while (chrome.evaluate(LABELED_INPUTS) or 0) < 2:
        if time.monotonic() > deadline:
            pytest.fail(f"the label stream drew no choices within 120 s: "
                        f"{chrome.evaluate('document.body.innerText.slice(0, 300)')!r}")
        time.sleep(0.5)
    time.sleep(2)                          # the editor applies a prediction right after drawing the task
    checked = int(chrome.evaluate(CHECKED_INPUTS))
    answers = [e for e in chrome.named("Network.responseReceived") if "next_task" in e["response"]["url"]]
    task = json.loads(chrome.send("Network.getResponseBody", requestId=answers[-1]["requestId"])["body"])
    return int(task["id"]), checked


def test_annotators_open_tasks_without_relabels_label(env, tmp_path_factory):
    """After --register, an annotator who presses "Label All Tasks" gets an empty task, though Label Studio has
    relabel's prediction for it; with Label Studio's pre-fill turned on, the same page shows it selected."""
    from relabel.server import _form_session, _post_form, create_user
    from test_report import DevTools

    wait_for("round 1 pushed by the service", lambda: round_pushed(env, 1))
    email, password = "serve-blind-annotator@example.com", "blind-annotator-password"
    create_user(env.ls, email, password)
    with _form_session(env.ls.url) as session:
        assert _post_form(session, "/user/login/", {"email": email, "password": password}).status_code == 302
        session_id = session.cookies.get("sessionid")
    raw = env.admin._client_wrapper.httpx_client
    source = env.project.project_id
    # Every task the stream can show (the unlabelled ones) gets relabel's prediction first, as the Data Manager
    # fetches it: pre-filling is then possible, so an empty editor shows it was not done.
    response = raw.request("api/dm/actions", method="POST", params={"id": "retrieve_tasks_predictions",
                                                                   "project": source},
                           json={"selectedItems": {"all": False, "included": list(env.project.unlabelled)}})
    assert response.status_code == 200, response.text
    chrome = DevTools(tmp_path_factory.mktemp("annotator-chromium"))
    try:
        for domain in ("Page", "Network", "Runtime"):
            chrome.send(f"{domain}.enable")
        task, checked = _open_label_stream(env, chrome, session_id)
        predictions = raw.request(f"api/tasks/{task}", method="GET").json()["predictions"]
        assert any(p["model_version"].startswith("relabel round") for p in predictions), predictions
        assert checked == 0, f"task {task} opened with {checked} choices selected"
        # The control: what the page shows with pre-filling on ([serve] prefill_annotators = true).
        version = raw.request(f"api/projects/{source}", method="GET").json().get("model_version")
        # Pre-filling takes the predictions of the project's model_version: relabel's of round 1 here.
        mine = next(p["model_version"] for p in predictions if p["model_version"].startswith("relabel round"))
        raw.request(f"api/projects/{source}", method="PATCH", json={"show_collab_predictions": True,
                                                                     "model_version": mine})
        try:
            again, checked_with_prefill = _open_label_stream(env, chrome, session_id)
        finally:   # as --register leaves it (turning it off clears model_version, which --register puts back)
            raw.request(f"api/projects/{source}", method="PATCH", json={"show_collab_predictions": False})
            if version:
                raw.request(f"api/projects/{source}", method="PATCH", json={"model_version": version})
        assert again == task and checked_with_prefill == 1
    finally:
        chrome.close()


# ---- 4. security ------------------------------------------------------------------------------------------------
def test_wrong_secret_no_auth_and_big_bodies_are_refused(env):
    before = env.status()["worker"]["webhooks_received"]
    payload = {"action": "ANNOTATION_CREATED", "project": {"id": env.project.project_id, "token": "TOKEN-XYZ-SECRET"}}
    wrong = httpx.post(f"{env.url}/webhook", json=payload, headers={SECRET_HEADER: "not-the-secret"}, timeout=10)
    missing = httpx.post(f"{env.url}/webhook", json=payload, timeout=10)
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert env.status()["worker"]["webhooks_received"] == before        # nothing was queued
    assert "refused a webhook" in env.log_text() and "TOKEN-XYZ-SECRET" not in env.log_text()

    predict = {"tasks": [{"id": env.project.task_ids[0]}], "project": str(env.project.project_id)}
    assert httpx.post(f"{env.url}/predict", json=predict, timeout=10).status_code == 401
    assert httpx.post(f"{env.url}/predict", json=predict, auth=("relabel", "wrong"), timeout=10).status_code == 401
    assert httpx.post(f"{env.url}/predict", json=predict, auth=env.auth, timeout=10).status_code == 200
    # Another project's tasks get no prediction, and connecting another project is refused with the reason.
    other = {"tasks": [{"id": env.project.task_ids[0]}], "project": "999.1700000000"}
    assert httpx.post(f"{env.url}/predict", json=other, auth=env.auth, timeout=10).json()["results"] == [[]]
    refused = httpx.post(f"{env.url}/setup", json={"project": "999.1700000000"}, auth=env.auth, timeout=10)
    assert refused.status_code == 400 and "not 999" in refused.json()["error"]
    for path in ("/", "/status.json"):
        assert httpx.get(env.url + path, timeout=10).status_code == 401
    assert httpx.post(f"{env.url}/setup", json={}, timeout=10).status_code == 401

    big = b'{"action": "ANNOTATION_CREATED", "pad": "' + b"x" * 10_000_000 + b'"}'
    headers = {SECRET_HEADER: SECRET, "content-type": "application/json"}
    assert httpx.post(f"{env.url}/webhook", content=big, headers=headers, timeout=30).status_code == 413
    assert httpx.post(f"{env.url}/predict", content=big, auth=env.auth, timeout=30).status_code == 413

    def chunks():      # no Content-Length: the cap holds while reading, too
        for _ in range(11):
            yield b"x" * 1_000_000
    assert httpx.post(f"{env.url}/webhook", content=chunks(), headers=headers, timeout=30).status_code == 413
    assert httpx.post(f"{env.url}/webhook", content=b"{not json", headers=headers, timeout=10).status_code == 400
    assert httpx.post(f"{env.url}/predict", content=b"[1, 2", auth=env.auth, timeout=10).status_code == 400
    assert env.status()["worker"]["webhooks_received"] == before
    assert env.status()["worker"]["last_error"] is None


# ---- 3. a drained review queue starts the next round ------------------------------------------------------------
def test_answering_every_review_task_runs_the_next_round(env):
    wait_for("round 1 pushed", lambda: round_pushed(env, 1))
    answered = answer_round(env, 1)
    assert answered == BUDGET
    second = wait_for("round 2 started by the service and pushed", lambda: round_pushed(env, 2))
    with env.store() as store:
        decisions = [d for d in store.decisions() if d["round"] == 1]
        round2 = store.review_tasks(2)
    assert len(decisions) == answered                     # every answer became a decision
    assert second["status"] == "pushed" and len(round2) == BUDGET
    review_tasks = list(env.admin.tasks.list(project=review_project(env), fields="all"))
    assert sum(t.data.get("relabel_round") == 2 for t in review_tasks) == BUDGET
    assert {t["item_id"] for t in round2}.isdisjoint({d["item_id"] for d in decisions})
    assert "starting a round: all 8 review tasks of round 1 were answered" in env.log_text()
    status = env.status()
    assert [r["round"] for r in status["rounds"]] == [1, 2] and status["worker"]["rounds_started"] == 2
    cli_status = CliRunner().invoke(cli, ["--config", str(env.root / "relabel.toml"), "status", "--json"], obj={})
    assert status["rounds"] == json.loads(cli_status.output)["rounds"]      # /status.json = `relabel status --json` + worker
    page = httpx.get(f"{env.url}/", auth=env.auth, timeout=60)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>Relabel report: relabel serve, round 2</title>" in page.text


# ---- 6. a CLI round beside the service's round ------------------------------------------------------------------
def test_cli_round_while_the_service_runs_one_waits_or_refuses(env):
    answer_round(env, 2)
    wait_for("the service to be running round 3",
             lambda: env.status()["worker"]["state"] == "running a round", every=0.05)
    runner = CliRunner(env={API_KEY_ENV: env.ls.api_key})
    result = runner.invoke(cli, ["--config", str(env.root / "relabel.toml"), "round"], obj={})
    still_running = env.status()["worker"]
    wait_for("round 3 pushed", lambda: round_pushed(env, 3))
    wait_for("the worker to be idle", lambda: env.status()["worker"]["state"] == "idle")
    # Refused at once (no --wait), naming what runs, in one line and without a traceback.
    assert result.exit_code == 1, result.output
    assert "is running (pid" in result.output and "try again later" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    with env.store() as store:
        rounds = store.rounds()
        tasks = store.review_tasks()
    # Whatever the CLI did, only one batch went out for this review state: no round 4, no second push.
    assert [r["round"] for r in rounds] == [1, 2, 3], (result.output, still_running)
    assert len(tasks) == 3 * BUDGET and len({(t["round"], t["item_id"]) for t in tasks}) == len(tasks)


# ---- 5. Label Studio down, webhooks missed, then everything reconciles -------------------------------------------
def test_label_studio_down_then_back_reconciles_without_duplicates_or_lost_decisions(env):
    latest = max(r["round"] for r in env.status()["rounds"])
    assert env.stop_service() in (0, -signal.SIGTERM)       # SIGTERM: a clean stop
    assert "worker: stopped" in env.log_text()
    answered = answer_round(env, latest)                    # the service is down: these webhooks are lost
    env.ls.stop()
    env.start_service()
    wait_for("two logged retries while Label Studio is down",
             lambda: env.log_text().count("pull failed (retry") >= 2, timeout=60)
    status = env.status()["worker"]
    assert status["retries"] >= 1 and "Cannot reach Label Studio" in status["last_error"]["message"]
    env.restart_label_studio()
    wait_for(f"round {latest + 1} after Label Studio came back", lambda: round_pushed(env, latest + 1))
    with env.store() as store:
        decisions = [d for d in store.decisions() if d["round"] == latest]
        tasks = store.review_tasks()
    assert len(decisions) == answered                       # no lost decisions
    review_tasks = list(env.admin.tasks.list(project=review_project(env), fields="all"))
    keys = [(t.data["relabel_item"], t.data["relabel_round"]) for t in review_tasks]
    assert len(keys) == len(set(keys)) == len(tasks)        # no duplicate review tasks, store and server agree


# ---- unregister ---------------------------------------------------------------------------------------------------
def test_unregister_removes_the_connection(env):
    env.stop_service()
    result = subprocess.run([sys.executable, "-c", "from relabel.cli import main; main()", "--config", str(env.root / "relabel.toml"),
                             "serve", "--unregister"], cwd=env.root, env=env.env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Removed 2 webhooks" in result.stdout
    assert ours(env, env.project.project_id) == ([], []) and ours(env, review_project(env))[1] == []
    settings = env.admin._client_wrapper.httpx_client.request(f"api/projects/{env.project.project_id}",
                                                               method="GET").json()
    assert settings["show_collab_predictions"] is True and settings["evaluate_predictions_automatically"] is False
