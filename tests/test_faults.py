"""Fault injection against the real Label Studio the suite starts: a faulty proxy (tests/fault_proxy.py) sits
between relabel and the server; runs are real processes killed with SIGKILL (tests/fault_runs.py).

After every scenario ``check()`` asserts what issue 12 asks: the rerun succeeds, no duplicate review tasks, no
orphans (review tasks in Label Studio the store does not know, or the reverse), the store's counts match Label
Studio's, and no reviewer's decision is lost.

Kept fast on purpose: one server for the session, small projects (36 tasks, budget 6) built once per module,
stores copied from templates made once, and killable runs forked from a process that imported everything once.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import connectors.label_studio_writes as writes_module
from connectors.label_studio import REVIEW_MARKER, model_version
from fault_proxy import FaultProxy
from fault_runs import Run
from label_studio_helpers import answer_task, build_acceptance_project
from relabel.cli import cli
from relabel.config import API_KEY_ENV
from relabel.loop.store import Store

pytestmark = [pytest.mark.integration]
BUDGET = 5
N_TASKS = 30
# `make test` runs a seeded sample that keeps this module to a few minutes; RELABEL_FAULTS=full runs the counts
# issue 12's acceptance asks for (10 seeded runs per import variant, rounds started 0, 0.5, 2 and 5 s apart).
FULL = os.environ.get("RELABEL_FAULTS") == "full"
SEEDS = range(10) if FULL else range(3)
GAPS = [0, 0.5, 2, 5] if FULL else [0, 2]
CHAOS_SEEDS = [1, 2] if FULL else [1]
KILL_POINTS = 20           # the suite's own floor: at least 20 seeded SIGKILL points, in both modes
# Requests held up by the proxy in these tests land within ~1 s; the settle window (5 s in production) is
# shortened for the in-process reruns so that the suite stays fast, and stays above every delay used here.
SETTLE_FOR_TESTS = 1.0
IMPORT = r"^/api/projects/\d+/import\?"
PROJECT = r"^/api/projects/\d+$"                       # the project, and its counts (describe, project_counts)
# A full pull (the first one, --full, periodic, or counts that disagree) reads a snapshot export: create, then
# download (then delete); an incremental pull reads the task list filtered by updated_at.
SNAPSHOT = r"^/api/projects/\d+/exports/$"
DOWNLOAD = r"^/api/projects/\d+/exports/\d+/download"
CHANGED_TASKS = r"^/api/tasks/\?.*updated_at"


# ---- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api_key_env(label_studio):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(API_KEY_ENV, label_studio.api_key)
        yield


@pytest.fixture(autouse=True)
def fast_settle(monkeypatch):
    monkeypatch.setattr(writes_module, "SETTLE_SECONDS", SETTLE_FOR_TESTS)
    monkeypatch.setattr(writes_module, "SETTLE_POLL_SECONDS", 0.3)


@pytest.fixture(scope="module")
def proxy(label_studio):
    p = FaultProxy(label_studio.url).start()
    yield p
    p.stop()


@pytest.fixture(autouse=True)
def clean_proxy(request):
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").clear()
    yield
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").clear()


@pytest.fixture(scope="module")
def http(label_studio):
    """Straight to Label Studio (not through the proxy), for the checks."""
    with httpx.Client(base_url=label_studio.url, headers={"Authorization": f"Token {label_studio.api_key}"},
                      timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        yield client


@pytest.fixture(scope="module")
def source(ls_admin):
    return build_acceptance_project(ls_admin, title="relabel faults", n_tasks=N_TASKS, n_unlabelled=0, seed=21,
                                    email_prefix="faults-")


@pytest.fixture(scope="module")
def in_place_source(ls_admin):
    return build_acceptance_project(ls_admin, title="relabel faults in place", n_tasks=N_TASKS, n_unlabelled=0,
                                    seed=22, email_prefix="faults-ip-")


def relabel(workdir: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(workdir / "relabel.toml"), *args], obj={},
                              catch_exceptions=False)


def _template(base: Path, proxy_url: str, project_id: int, *extra) -> dict[str, Path]:
    fresh, scored = base / "fresh", base / "scored"
    fresh.mkdir()
    ok(relabel(fresh, "init", "--url", proxy_url, "--project", str(project_id), "--featurizer", "tfidf",
               "--budget", str(BUDGET), *extra))
    # Pre-selected suggestions are predictions, whose project model_version a push must keep right.
    config = fresh / "relabel.toml"
    assert "preselect = false" in config.read_text()
    config.write_text(config.read_text().replace("preselect = false", "preselect = true"))
    # Every round here must push (the faults are in the push): the stop rule on expected errors is not the subject.
    config.write_text(config.read_text().replace("[review]\n", "[review]\nmin_expected_errors = 0\n"))
    assert "min_expected_errors = 0" in config.read_text()
    # Audit items (on by default) are off here so that a batch is exactly the budget these tests count; audits
    # against a real Label Studio: test_loop_integration.test_audit_items_two_rounds_against_label_studio.
    config.write_text(config.read_text().replace("[review]\n", "[review]\naudit = 0\n"))
    shutil.copytree(fresh, scored)
    ok(relabel(scored, "pull"))
    ok(relabel(scored, "score"))
    return {"fresh": fresh, "scored": scored}


@pytest.fixture(scope="module")
def templates(tmp_path_factory, proxy, source, api_key_env):
    """Stores made once: "fresh" (init only) and "scored" (pulled and scored, nothing pushed)."""
    return _template(tmp_path_factory.mktemp("fault-templates"), proxy.url, source.project_id)


@pytest.fixture(scope="module")
def in_place_templates(tmp_path_factory, proxy, in_place_source, api_key_env):
    return _template(tmp_path_factory.mktemp("fault-templates-ip"), proxy.url, in_place_source.project_id,
                     "--mode", "in_place")


@pytest.fixture
def fresh(tmp_path, templates, http, source):
    return _workdir(tmp_path, templates["fresh"], http, source.project_id)


@pytest.fixture
def scored(tmp_path, templates, http, source):
    return _workdir(tmp_path, templates["scored"], http, source.project_id)


def _workdir(tmp_path: Path, template: Path, http: httpx.Client, source_id: int) -> Path:
    """A private copy of a template store, and no review project left by an earlier scenario."""
    for project in review_projects(http, source_id):
        http.delete(f"/api/projects/{project['id']}").raise_for_status()
    work = tmp_path / "work"
    shutil.copytree(template, work)
    return work


# ---- what Label Studio holds, and the checks -------------------------------------------------------------
def review_projects(http: httpx.Client, source_id: int) -> list[dict]:
    body = http.get("/api/projects/", params={"page_size": 1000, "include": "id,description,model_version"}).json()
    marker = f"{REVIEW_MARKER}{source_id}"
    return [p for p in body["results"] if marker in (p.get("description") or "").split()]


def tasks_of(http: httpx.Client, project_id: int) -> list[dict]:
    body = http.get("/api/tasks/", params={"project": project_id, "page_size": 10000, "fields": "all"}).json()
    return body["tasks"]


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def check(workdir: Path, http: httpx.Client, source_id: int, *, decisions: dict[int, str] | None = None,
          mode: str = "project", forgotten_ok: bool = False) -> dict:
    """No duplicates, no orphans, counts equal, nothing in flight, no decision lost. Returns a few counts."""
    with Store(workdir / "relabel.db") as store:
        recorded = store.review_tasks()
        rounds = store.rounds()
        selections = {r["round"]: store.selection(r["round"]) for r in rounds}
        stored_annotations = {r[0] for r in store.db.execute(
            "select annotation_id from annotations where kind = 'annotation' and deleted = 0").fetchall()}
        made = {(d["task_id"], d["label"]) for d in store.decisions()}
        in_flight = store.get_meta("push_in_flight")
    assert in_flight is None, "a push is still marked in flight after a run that succeeded"
    for r in rounds:
        mine = [t for t in recorded if t["round"] == r["round"]]
        if r["status"] == "pushed":
            # every selected item has its review task (unless its review project was deleted: forgotten_ok)
            got, wanted = {t["item_id"] for t in mine}, {s["item_id"] for s in selections[r["round"]]}
            assert got <= wanted and (forgotten_ok or got == wanted)
            # the budget buys the ranked part; audit items ([review] audit) come on top of it
            audited = {s["item_id"] for s in selections[r["round"]] if s.get("audit")}
            assert len([t for t in mine if t["item_id"] not in audited]) <= BUDGET
    source_tasks = tasks_of(http, source_id)
    in_ls = {str(a["id"]) for t in source_tasks for a in t["annotations"]}
    if mode == "project":
        projects = review_projects(http, source_id)
        assert len(projects) <= 1, f"{len(projects)} review projects"
        tasks = tasks_of(http, projects[0]["id"]) if projects else []
        keys = Counter((str(t["data"]["relabel_item"]), int(t["data"]["relabel_round"])) for t in tasks)
        assert not [k for k, n in keys.items() if n > 1], f"duplicate review tasks: {keys.most_common(3)}"
        here = {(str(t["data"]["relabel_item"]), int(t["data"]["relabel_round"])): t["id"] for t in tasks}
        current = {(t["item_id"], t["round"]): t["task_id"] for t in recorded
                   if projects and t["target_project"] == projects[0]["id"]}
        assert here == current, "review tasks in Label Studio and in the store differ (orphans or lost tasks)"
        if recorded and projects:
            assert projects[0]["model_version"] == model_version(max(t["round"] for t in recorded))
        answered = {(t["id"], a["result"][0]["value"]["choices"][0]) for t in tasks for a in t["annotations"]
                    if a["result"]}
        in_ls -= {str(a["id"]) for t in tasks for a in t["annotations"]}
    else:
        pushed = {int(t["item_id"]): t for t in recorded}
        by_id = {t["id"]: t for t in source_tasks}
        for task_id, t in pushed.items():
            versions = Counter(p["model_version"] for p in by_id[task_id]["predictions"] if isinstance(p, dict))
            assert versions[model_version(t["round"])] == 1, f"task {task_id}: {versions}"
        tagged = {tid for tid, t in by_id.items() for p in t["predictions"]
                  if isinstance(p, dict) and str(p.get("model_version", "")).startswith("relabel-round-")}
        assert tagged == set(pushed), "predictions in Label Studio the store does not know"
        views = http.get("/api/dm/views/", params={"project": source_id}).json()
        titles = Counter(v["data"].get("title") for v in views)
        for r in {t["round"] for t in recorded}:
            assert titles[f"relabel round {r}"] == 1, titles
        answered = set()
    assert stored_annotations == in_ls, "the store's annotations differ from Label Studio's"
    for task_id, label in (decisions or {}).items():
        assert (task_id, label) in made, f"the decision on review task {task_id} was lost"
        assert mode != "project" or (task_id, label) in answered or task_id not in {t for t, _ in answered}
    return {"review_tasks": len(recorded), "rounds": len(rounds)}


def answer_some(http, ls_admin, source, workdir: Path, n: int, seed: int = 0) -> dict[int, str]:
    """Reviewers answer ``n`` of the round's review tasks in Label Studio; returns task id -> label."""
    rng = random.Random(seed)
    with Store(workdir / "relabel.db") as store:
        tasks = sorted(store.review_tasks(), key=lambda t: t["task_id"])
    reviewer = next(iter(source.annotators.values()))
    answers = {}
    for t in rng.sample(tasks, n):
        label = rng.choice(source.classes)
        answer_task(ls_admin, t["task_id"], label, reviewer)
        answers[t["task_id"]] = label
    return answers


# ---- 1. a fault at every step of a round ------------------------------------------------------------------
# Each scenario is a list of rules (several faults in one run keeps the suite fast); every rule must fire.
READ_FAULTS = {
    "pull: resets": [dict(action="reset", method="GET", path=PROJECT, times=2),
                     dict(action="reset", method="POST", path=SNAPSHOT),
                     dict(action="reset", method="GET", path=DOWNLOAD)],
    "pull: 502, 504, 429 Retry-After": [dict(action="status", method="POST", path=SNAPSHOT, status=502),
                                        dict(action="status", method="GET", path=DOWNLOAD, status=504),
                                        dict(action="status", method="GET", path=PROJECT, status=429,
                                             retry_after=1)],
    "snapshot: answers lost": [dict(action="drop", method="POST", path=SNAPSHOT),
                               dict(action="drop", method="GET", path=DOWNLOAD)],
    "server stopped for 2 s": [dict(action="down", method="POST", path=SNAPSHOT, seconds=2.0)],
}
# The same faults on an incremental pull (a store already pulled): the changed-tasks list and the counts.
INCREMENTAL_READ_FAULTS = {
    "incremental pull: resets": [dict(action="reset", method="GET", path=PROJECT, times=2),
                                 dict(action="reset", method="GET", path=CHANGED_TASKS)],
    "incremental pull: 502, 504, 429 Retry-After": [
        dict(action="status", method="GET", path=CHANGED_TASKS, status=502),
        dict(action="status", method="GET", path=CHANGED_TASKS, status=504),
        dict(action="status", method="GET", path=PROJECT, status=429, retry_after=1)],
    "task list: answer lost": [dict(action="drop", method="GET", path=CHANGED_TASKS)],
    "server stopped for 2 s during the task list": [dict(action="down", method="GET", path=CHANGED_TASKS,
                                                         seconds=2.0)],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", READ_FAULTS)
def test_pull_step_faults_are_retried_and_the_round_completes(fresh, proxy, http, source, name):
    assert f"{BUDGET} new review tasks" in faulty_run(proxy, READ_FAULTS[name], fresh, "round").output
    assert check(fresh, http, source.project_id)["review_tasks"] == BUDGET


@pytest.mark.slow
@pytest.mark.parametrize("name", INCREMENTAL_READ_FAULTS)
def test_incremental_pull_faults_are_retried_and_the_round_completes(scored, proxy, http, source, name):
    # `round` on the scored store would resume its open round (push only), so the pull is run on its own.
    pulled = faulty_run(proxy, INCREMENTAL_READ_FAULTS[name], scored, "pull").output
    assert not any(e.method == "POST" and re.search(SNAPSHOT, e.path) for e in proxy.log), "not incremental"
    assert "0 deleted" in pulled, pulled
    assert f"{BUDGET} in total" in ok(relabel(scored, "push")).output
    assert check(scored, http, source.project_id)["review_tasks"] == BUDGET


def faulty_run(proxy: FaultProxy, rules: list[dict], workdir: Path, *command: str):
    """Run a command in-process with the proxy's ``rules`` in force; it must succeed and every rule fire."""
    added = [proxy.add(**rule) for rule in rules]
    result = ok(relabel(workdir, *command))
    assert all(rule.hits for rule in added), f"a fault never fired: {added}"
    return result


PUSH_FAULTS = {
    "import: answer lost after landing": [dict(action="drop", method="POST", path=IMPORT)],
    "import: 502 after landing": [dict(action="status_after", method="POST", path=IMPORT, status=502)],
    "import: reset, then 503, before sending": [dict(action="reset", method="POST", path=IMPORT),
                                                dict(action="status", method="POST", path=IMPORT, status=503)],
    "import: HTML 200 (a proxy's page)": [dict(action="html", method="POST", path=IMPORT)],
    "review project creation: answer lost; task listing reset": [
        dict(action="drop", method="POST", path=r"^/api/projects/$"),
        dict(action="reset", method="GET", path=r"^/api/tasks/", times=2)],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", PUSH_FAULTS)
def test_push_step_faults_leave_exactly_one_batch(scored, proxy, http, source, name):
    assert f"{BUDGET} in total" in faulty_run(proxy, PUSH_FAULTS[name], scored, "push").output
    assert check(scored, http, source.project_id)["review_tasks"] == BUDGET
    again = ok(relabel(scored, "push"))                 # and a rerun changes nothing
    assert "0 new review tasks" in again.output
    assert check(scored, http, source.project_id)["review_tasks"] == BUDGET


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["PATCH reset, 502, answer lost", "import answer lost", "killed at the PATCH"])
def test_the_next_round_is_sortable_after_model_version_faults(scored, proxy, http, source, fault):
    """The "silent half state": a rerun after a lost answer or a failed PATCH must still move the review
    project's model_version to the new round (Label Studio sets it by itself only on a project's first import)."""
    ok(relabel(scored, "push"))
    if fault.startswith("PATCH"):
        faulty_run(proxy, [dict(action="reset", method="PATCH", path=PROJECT),
                           dict(action="status", method="PATCH", path=PROJECT),
                           dict(action="drop", method="PATCH", path=PROJECT)], scored, "round", "--force",
                   "--add", str(BUDGET))   # round 1's batch is still open: --add pushes a second one anyway
    elif fault == "import answer lost":
        faulty_run(proxy, [dict(action="drop", method="POST", path=IMPORT)], scored, "round", "--force", "--add",
                   str(BUDGET))
    else:
        box: list = [None]
        fired = _kill_at(proxy, box, "received", "PATCH", PROJECT)
        proxy.add("reset", method="PATCH", path=PROJECT, times=-1)    # killed before the PATCH reached the server
        box[0] = Run(scored, "round", "--force", "--add", str(BUDGET)).start()   # a forced round 2, a full batch
        assert box[0].wait() == -9 and fired.is_set(), box[0].output
        proxy.clear()
        (review,) = review_projects(http, source.project_id)
        assert review["model_version"] == model_version(1)        # the half state the kill left
        ok(relabel(scored, "round"))
    assert check(scored, http, source.project_id)["review_tasks"] == 2 * BUDGET   # model_version is round 2


def test_a_login_page_instead_of_json_is_one_line_and_nothing_is_written(fresh, proxy, http, source):
    proxy.add("html", method="GET", path=PROJECT, times=1)
    result = relabel(fresh, "round")
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    # one error line (off a terminal `round` also announces each step as it starts, on standard error)
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert "instead of JSON" in errors[0] and "Traceback" not in result.output
    with Store(fresh / "relabel.db") as store:
        assert store.rounds() == [] and store.count("annotations") == 0
    ok(relabel(fresh, "round"))
    check(fresh, http, source.project_id)


def test_a_server_that_stays_down_is_a_clear_error(fresh, proxy):
    proxy.add("down", seconds=15.0)
    started = time.monotonic()
    result = relabel(fresh, "pull")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "Cannot reach Label Studio" in result.output and "check the URL" in result.output
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_collect_faults_lose_no_decision(scored, proxy, http, ls_admin, source):
    ok(relabel(scored, "push"))
    answers = answer_some(http, ls_admin, source, scored, 3)
    result = faulty_run(proxy, [dict(action="reset", method="GET", path=r"^/api/tasks/"),
                                dict(action="status", method="GET", path=r"^/api/tasks/", status=502),
                                dict(action="drop", method="GET", path=r"^/api/tasks/")], scored, "collect")
    assert "Collected 3 decisions" in result.output
    check(scored, http, source.project_id, decisions=answers)


# ---- 2. the import's outcome unknown: killed in flight, or its answer lost (acceptance 2) -------------------
def _kill_at(proxy: FaultProxy, run_box: list, event: str, method: str, path: str) -> threading.Event:
    fired = threading.Event()

    def hook(what, number, m, p):
        if what == event and m == method and re.search(path, p) and not fired.is_set():
            run_box[0].kill()
            fired.set()
    proxy.on_request = hook
    return fired


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["killed, import still on the way", "killed, import landed",
                                     "reset after the import landed", "502 after the import landed"])
def test_import_outcome_unknown_never_duplicates(tmp_path, templates, proxy, http, source, variant):
    """Seeded runs of each (10 with RELABEL_FAULTS=full): the rerun, started at once, creates no duplicates and
    no orphans."""
    for seed in SEEDS:
        rng = random.Random(seed)
        work = _workdir(tmp_path / str(seed), templates["scored"], http, source.project_id)
        proxy.clear()
        if variant.startswith("killed"):
            on_the_way = "on the way" in variant
            if on_the_way:    # held by the proxy, forwarded after the sender died
                proxy.add("delay", method="POST", path=IMPORT, seconds=rng.uniform(0.1, 0.5))
            box: list = [None]
            fired = _kill_at(proxy, box, "received" if on_the_way else "forwarded", "POST", IMPORT)
            box[0] = Run(work, "push").start()
            assert box[0].wait() == -9, box[0].output
            assert fired.is_set()
        else:
            action = "drop" if variant.startswith("reset") else "status_after"
            proxy.add(action, method="POST", path=IMPORT, status=502)
        result = ok(relabel(work, "push"))              # at once
        assert f"{BUDGET} in total" in result.output
        time.sleep(0.3 if variant.startswith("killed") else 0)
        assert check(work, http, source.project_id)["review_tasks"] == BUDGET, f"seed {seed}"


# ---- 3. SIGKILL at seeded points of a round ----------------------------------------------------------------
def _round_requests(tmp_path, templates, proxy, http, source) -> list[tuple[int, str, str]]:
    work = _workdir(tmp_path / "count", templates["fresh"], http, source.project_id)
    proxy.clear()
    ok(relabel(work, "round"))
    return [(n + 1, e.method, e.path) for n, e in enumerate(proxy.log)]


@pytest.mark.slow
def test_sigkill_at_seeded_points_of_a_round(tmp_path, templates, proxy, http, source):
    requests = _round_requests(tmp_path, templates, proxy, http, source)
    rng = random.Random(12)
    points = [(n, event) for n in range(1, len(requests) + 1) for event in ("received", "forwarded", "answered")]
    chosen = sorted(rng.sample(points, KILL_POINTS))
    outcomes = []
    for n, event in chosen:
        work = _workdir(tmp_path / f"{n}-{event}", templates["fresh"], http, source.project_id)
        proxy.clear()
        box: list = [None]

        def hook(what, number, method, path, n=n, event=event):
            if number == n and what == event:
                box[0].kill()
        proxy.on_request = hook
        box[0] = Run(work, "round").start()
        code = box[0].wait()
        proxy.on_request = None
        outcomes.append((n, event, requests[n - 1][1], requests[n - 1][2].split("?")[0], code))
        assert code in (-9, 0), box[0].output
        result = ok(relabel(work, "round"))                    # the rerun, at once
        assert "review tasks" in result.output
        time.sleep(0.2)
        # a kill after the round was recorded leaves it complete: the rerun then makes round 2
        counts = check(work, http, source.project_id)
        assert counts["review_tasks"] == BUDGET * counts["rounds"] and counts["rounds"] <= 2, (n, event, counts)
    killed = [o for o in outcomes if o[4] == -9]
    assert len(killed) >= KILL_POINTS - 2, outcomes      # the last "answered" events may come after the run is done
    assert any(o[2] == "POST" and o[3].endswith("/import") and o[1] != "answered" for o in killed), \
        "no kill landed during the import request"


# ---- 4. 30% of requests reset or answered 502 (acceptance 3) ------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("seed", CHAOS_SEEDS)
def test_a_round_completes_with_30_percent_of_requests_failing(fresh, proxy, http, ls_admin, source, seed):
    proxy.chaos(0.3, seed)
    ok(relabel(fresh, "round"))
    assert len(proxy.faults()) >= 3, proxy.log
    assert check(fresh, http, source.project_id)["review_tasks"] == BUDGET
    answers = answer_some(http, ls_admin, source, fresh, 2, seed)
    ok(relabel(fresh, "round", "--add", str(BUDGET)))          # collect + a full round 2 under the same chaos
    assert check(fresh, http, source.project_id, decisions=answers)["review_tasks"] == 2 * BUDGET


# ---- 5. two writers at once (acceptance 1) ------------------------------------------------------------------
def _both(first: Run, second: Run, gap: float) -> tuple[int, int]:
    first.start()
    time.sleep(gap)
    second.start()
    return first.wait(), second.wait()


@pytest.mark.slow
@pytest.mark.parametrize("gap", GAPS)
def test_two_rounds_at_once_push_one_batch(fresh, proxy, http, source, gap):
    # The first round's import is held long enough for the second to start while it is still running.
    proxy.add("delay", method="POST", path=IMPORT, seconds=gap + 3)
    codes = _both(a := Run(fresh, "round"), b := Run(fresh, "round"), gap)
    assert sorted(codes) == [0, 1], (a.output, b.output)
    loser = a if codes[0] == 1 else b
    winner = b if loser is a else a
    lines = loser.output.strip().splitlines()
    # "round 1 is running", or "round is running" when it lost the race before the winner knew its round
    assert re.match(r"Error: round (1 )?is running \(pid \d+ on host .*, since \d\d:\d\d\); try again later",
                    lines[-1]), lines
    assert f"pid {winner.pid} on host" in lines[-1]
    assert check(fresh, http, source.project_id)["review_tasks"] == BUDGET


@pytest.mark.slow
def test_two_pushes_at_once_push_one_batch_and_a_waiting_one_adds_nothing(scored, proxy, http, source):
    proxy.add("delay", method="POST", path=IMPORT, seconds=1.5)
    codes = _both(a := Run(scored, "push"), b := Run(scored, "push"), 0)
    assert sorted(codes) == [0, 1], (a.output, b.output)
    assert "is running (pid" in (a.output + b.output)
    assert check(scored, http, source.project_id)["review_tasks"] == BUDGET
    # With --wait the second one waits its turn, then finds the round pushed.
    proxy.add("delay", method="GET", path=r"^/api/projects/\?", seconds=1.5)
    codes = _both(a := Run(scored, "push"), b := Run(scored, "push", "--wait", "60"), 0.2)
    assert codes == (0, 0), (a.output, b.output)
    assert check(scored, http, source.project_id)["review_tasks"] == BUDGET


@pytest.mark.slow
def test_round_and_collect_at_once_lose_no_decision(scored, proxy, http, ls_admin, source):
    ok(relabel(scored, "push"))
    answers = answer_some(http, ls_admin, source, scored, 3)
    proxy.add("delay", method="POST", path=IMPORT, seconds=1.0)
    codes = _both(a := Run(scored, "round", "--wait", "120", "--add", str(BUDGET)),
                  b := Run(scored, "collect", "--wait", "120"), 0.1)
    assert codes == (0, 0), (a.output, b.output)
    assert check(scored, http, source.project_id, decisions=answers)["review_tasks"] == 2 * BUDGET


@pytest.mark.slow
def test_readers_never_block_and_never_see_half_a_round(scored, proxy, http, source):
    proxy.add("delay", method="POST", path=IMPORT, seconds=4.0)     # the writer is mid-push for 4 s
    writer = Run(scored, "round").start()
    seen, reported = [], False
    deadline = time.monotonic() + 120
    while writer.process.is_alive() and time.monotonic() < deadline:
        started = time.monotonic()
        status = relabel(scored, "status", "--json")
        assert status.exit_code == 0, status.output
        for r in json.loads(status.output)["rounds"]:
            assert r["items"] == N_TASKS and r["annotations"] > 0      # a round row always has its scores
            seen.append((r["round"], r["status"]))
        if seen and seen[-1] == (1, "selected") and not reported:        # the writer holds the lock right now
            report = relabel(scored, "report", "--out", str(scored / "report.html"))
            export = relabel(scored, "export", "--format", "csv", "--out", str(scored / "labels.csv"))
            assert report.exit_code == 0 and export.exit_code == 0, report.output + export.output
            reported = True
        assert time.monotonic() - started < 10        # never waited for the writer
        time.sleep(0.1)
    assert writer.wait() == 0, writer.output
    assert reported and (1, "pushed") not in seen[:seen.index((1, "selected"))]
    check(scored, http, source.project_id)


# ---- 6. the review project deleted in Label Studio (acceptance 6, review-project half) ---------------------
@pytest.mark.slow
def test_a_deleted_review_project_is_detected_and_recreated(scored, proxy, http, ls_admin, source):
    ok(relabel(scored, "push"))
    answers = answer_some(http, ls_admin, source, scored, 2)
    ok(relabel(scored, "collect"))
    (old,) = review_projects(http, source.project_id)
    http.delete(f"/api/projects/{old['id']}").raise_for_status()
    result = ok(relabel(scored, "round"))
    assert f"Review project {old['id']} was deleted in Label Studio" in result.output
    assert "the 2 decisions already collected from it are kept" in result.output
    (new,) = review_projects(http, source.project_id)
    assert new["id"] != old["id"] and len(tasks_of(http, new["id"])) == BUDGET
    with Store(scored / "relabel.db") as store:
        assert {(d["task_id"], d["label"]) for d in store.decisions()} == set(answers.items())
        assert len(store.review_tasks(2)) == BUDGET and store.waiting_item_ids() == {
            t["item_id"] for t in store.review_tasks(2)}
    check(scored, http, source.project_id, decisions=answers, forgotten_ok=True)
    assert "Collected 0 decisions" in ok(relabel(scored, "collect")).output


# ---- 7. in place: predictions, overlap and the saved view under faults ---------------------------------------
@pytest.mark.slow
def test_in_place_push_under_faults_creates_each_thing_once(tmp_path, in_place_templates, proxy, http,
                                                             in_place_source):
    work = _workdir(tmp_path, in_place_templates["scored"], http, in_place_source.project_id)
    proxy.add("drop", method="POST", path=r"^/api/projects/\d+/import/predictions")
    proxy.add("status_after", method="POST", path=r"^/api/dm/views/", status=502)
    proxy.add("reset", method="PATCH", path=r"^/api/tasks/\d+", times=2)
    proxy.add("drop", method="PATCH", path=PROJECT)
    result = ok(relabel(work, "push"))
    assert f"{BUDGET} in total" in result.output and len(proxy.faults()) == 5
    check(work, http, in_place_source.project_id, mode="in_place")
    assert "0 new review tasks" in ok(relabel(work, "push")).output
    check(work, http, in_place_source.project_id, mode="in_place")
