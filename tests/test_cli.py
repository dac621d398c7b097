"""The CLI through click's CliRunner, against the in-memory fake Label Studio of test_rounds."""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.records import AnnotationRecord
from relabel.cli import cli
from relabel.config import API_KEY_ENV
from relabel.errors import AuthError, ConnectorError
from relabel.loop.store import Store
from test_rounds import ANNOTATORS, FakeLabelStudio


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(API_KEY_ENV, "test-key-not-secret")
    return CliRunner()


def run(runner, fake, *args):
    return runner.invoke(cli, list(args), obj={"connector": fake}, catch_exceptions=False)


def init(runner, fake, *extra):
    return run(runner, fake, "init", "--url", "http://ls.example:8080", "--project", str(fake.project_id),
               "--featurizer", "tfidf", *extra)


def test_every_command_has_help_with_a_worked_example(runner):
    for name, command in cli.commands.items():
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert f"relabel {name}" in result.output, f"{name} help lacks a worked example"


def test_init_writes_config_and_prints_the_project(runner, tmp_path):
    fake = FakeLabelStudio()
    result = init(runner, fake, "--budget", "12")
    assert result.exit_code == 0, result.output
    assert "Project 7: News" in result.output
    assert "tasks: 60  annotations: 180" in result.output
    assert "classes (topic): sport, politics, tech" in result.output
    text = (tmp_path / "relabel.toml").read_text()
    assert "test-key-not-secret" not in text and 'featurizer = "tfidf"' in text and "budget = 12" in text
    with Store(tmp_path / "relabel.db") as s:
        assert s.project_id == 7 and s.classes == ("sport", "politics", "tech")
    again = init(runner, fake)
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.parametrize("error", [
    ConnectorError("Cannot reach Label Studio at http://ls.example:8080 (connection refused); start it or fix --url."),
    AuthError(f"Label Studio rejected the API key (401); check {API_KEY_ENV}."),
])
def test_init_failure_is_one_line_exit_1_and_writes_nothing(runner, tmp_path, error):
    class Broken(FakeLabelStudio):
        def describe(self):
            raise error
    result = init(runner, Broken())
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {error}"
    assert not (tmp_path / "relabel.toml").exists() and not (tmp_path / "relabel.db").exists()


def test_bad_usage_is_exit_2(runner):
    assert runner.invoke(cli, ["init", "--url", "http://x"]).exit_code == 2            # --project missing
    assert runner.invoke(cli, ["export", "--format", "xml", "--out", "x"]).exit_code == 2
    assert runner.invoke(cli, ["nosuchcommand"]).exit_code == 2


def test_bad_budget_is_a_usage_error_with_the_settings_message(runner):
    fake = FakeLabelStudio()
    init(runner, fake)
    result = run(runner, fake, "round", "--budget", "-3")
    assert result.exit_code == 2   # bad usage, as the README says; runtime failures stay exit 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: Invalid value for '--budget': The 'budget' setting must be a positive integer. Got -3.")
    assert fake.push_calls == []


def test_commands_without_a_config_say_how_to_start(runner):
    result = runner.invoke(cli, ["status"])
    assert result.exit_code == 1 and "relabel init" in result.output and len(result.output.strip().splitlines()) == 1


def test_round_status_push_collect_annotators_export(runner, tmp_path):
    fake = FakeLabelStudio()
    init(runner, fake)
    result = run(runner, fake, "round", "--budget", "10")
    assert result.exit_code == 0, result.output
    assert "Round 1 scored (model-dawid-skene)" in result.output
    # the budget's 10 ranked items plus the audit on top of it ([review] audit: 10%, at least 10 items)
    assert "20 new review tasks (project), 20 in total" in result.output
    assert "10 of them are audit items" in result.output

    again = run(runner, fake, "push")
    assert again.exit_code == 0 and "0 new review tasks" in again.output and "20 in total" in again.output
    assert len(fake.review_tasks) == 20

    status = json.loads(run(runner, fake, "status", "--json").output)
    assert list(status) == ["rounds", "wrong_labels_left"] and len(status["rounds"]) == 1
    assert status["wrong_labels_left"]["source"] == "model"           # no audit item decided yet
    r1 = status["rounds"][0]
    assert list(r1) == ["round", "status", "items", "annotations", "pushed", "reviewed", "corrected",
                        "expected_remaining_errors", "expected_low", "expected_high", "batch_expected", "batch_low",
                        "batch_high", "batch_evidence", "stop_reason", "overrides"]
    assert r1["expected_low"] <= r1["expected_remaining_errors"] <= r1["expected_high"] and r1["stop_reason"] is None
    assert r1["batch_low"] <= r1["batch_expected"] <= r1["batch_high"] <= 10
    assert (r1["round"], r1["status"], r1["items"], r1["annotations"], r1["pushed"]) == (1, "pushed", 60, 180, 20)

    task_ids = sorted(fake.review_tasks.values())
    fake.answer(task_ids[0], "eve@x", "tech")
    fake.answer(task_ids[1], "eve@x", None)
    collected = run(runner, fake, "collect")
    assert collected.exit_code == 0 and "Collected 2 decisions" in collected.output and "1 skipped" in collected.output

    table = run(runner, fake, "status").output.splitlines()
    assert table[0].split() == ["round", "status", "items", "annotations", "pushed", "reviewed", "corrected",
                                "expected_remaining_errors", "wrong_in_batch"]
    assert table[2].split()[:5] == ["1", "pushed", "60", "180", "20"]      # 10 ranked + 10 audit items

    ann = json.loads(run(runner, fake, "annotators", "--json").output)["annotators"]
    assert {a["annotator"] for a in ann} == set(ANNOTATORS)
    text = run(runner, fake, "annotators").output.splitlines()
    assert text[0].split() == ["annotator", "quality", "agreement", "worst_class", "labels"]
    assert len(text) == 2 + len(ANNOTATORS)
    assert len({line.index(line.split()[1]) for line in text[2:]}) == 1   # columns aligned

    out = tmp_path / "labels.csv"
    exported = run(runner, fake, "export", "--format", "csv", "--out", str(out))
    assert exported.exit_code == 0 and "Wrote 60 items" in exported.output
    rows = {r["item_id"]: r for r in csv.DictReader(out.open())}
    reviewed_item = next(item for (rnd, item), tid in fake.review_tasks.items() if tid == task_ids[0])
    assert rows[reviewed_item]["final_label"] == "tech" and rows[reviewed_item]["reviewed"] == "True"
    assert sum(r["reviewed"] == "True" for r in rows.values()) == 1


def test_empty_project_round_fails_cleanly(runner, tmp_path):
    fake = FakeLabelStudio(n_items=0, n_unlabelled=4)
    assert init(runner, fake).exit_code == 0
    result = run(runner, fake, "round")
    assert result.exit_code == 1 and "has no labelled tasks" in result.output
    lines = result.output.strip().splitlines()
    # the steps that ran printed their lines as they went; the error itself is one line, the last
    assert lines[-1].startswith("Error: ") and "has no labelled tasks" in lines[-1]
    assert lines[:-1] == ["Pulling from Label Studio...", "Pulled 0 annotations (0 skipped) on 4 items: 0 new, "
                          "0 changed, 0 deleted.", "Scoring (model, consensus, quality)..."]
    with Store(tmp_path / "relabel.db") as s:
        assert s.rounds() == [] and s.count("scores") == 0


def test_pull_and_score_commands(runner):
    fake = FakeLabelStudio(annotators=("solo@x",), per_item=1)
    init(runner, fake)
    pulled = run(runner, fake, "pull")
    assert pulled.exit_code == 0 and "60 new" in pulled.output
    assert "0 new" in run(runner, fake, "pull").output
    scored = run(runner, fake, "score")
    assert scored.exit_code == 0 and "Round 1 scored (model-dawid-skene)" in scored.output


def test_config_option_chooses_the_file(runner, tmp_path):
    fake = FakeLabelStudio()
    result = run(runner, fake, "--config", "team/relabel.toml", "init", "--url", "http://x:1", "--project", "7",
                 "--featurizer", "tfidf")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "team" / "relabel.toml").exists() and (tmp_path / "team" / "relabel.db").exists()
    assert run(runner, fake, "--config", "team/relabel.toml", "status").output.startswith("No rounds yet")


def test_export_to_a_missing_folder_is_one_line_exit_1(runner, tmp_path):
    fake = FakeLabelStudio()
    init(runner, fake)
    assert run(runner, fake, "round", "--budget", "5").exit_code == 0
    result = runner.invoke(cli, ["export", "--format", "csv", "--out", "no-such-dir/labels.csv"],
                           obj={"connector": fake})
    assert result.exit_code == 1 and "Error: Cannot write the export" in result.output, result.output
    assert not (tmp_path / "no-such-dir").exists()


def test_init_with_an_unknown_featurizer_writes_nothing(runner, tmp_path):
    fake = FakeLabelStudio()
    result = run(runner, fake, "init", "--url", "http://ls.example:8080", "--project", "7", "--featurizer", "bogus")
    assert result.exit_code == 2 and "'featurizer'" in result.output and "bogus" in result.output, result.output
    assert not (tmp_path / "relabel.toml").exists() and not (tmp_path / "relabel.db").exists()


def test_round_stops_and_says_why_when_nothing_is_worth_reviewing(runner):
    fake = FakeLabelStudio()
    init(runner, fake)
    Path("relabel.toml").write_text(Path("relabel.toml").read_text().replace(
        "[review]\n", "[review]\nmin_expected_errors = 1000\naudit = 0\n"))   # the audited rule: test_audit_loop
    first = run(runner, fake, "round", "--budget", "10")
    # round 1 always pushes, and says what its batch holds
    assert first.exit_code == 0 and "10 new review tasks" in first.output, first.output
    assert "They hold ≈ " in first.output and "no reviewer decisions yet" in first.output
    for task_id in fake.review_tasks.values():
        fake.answer(task_id, "eve@x", "tech")
    result = run(runner, fake, "round", "--budget", "10")
    assert result.exit_code == 0, result.output
    assert "nothing pushed" in result.output and "min_expected_errors = 1000" in result.output
    assert "90% interval" in result.output and "of 10 items in round 1" in result.output
    assert "set [review] min_expected_errors = 0 to push anyway" in result.output
    assert len(fake.push_calls) == 1
    status = run(runner, fake, "status")
    assert "stopped" in status.output and "90% interval" in status.output
    assert "round 2: The 10 items this round would send hold" in status.output
    bad = Path("relabel.toml").read_text().replace("min_expected_errors = 1000", "min_expected_errors = -1")
    Path("relabel.toml").write_text(bad)
    result = run(runner, fake, "round")
    assert result.exit_code == 1 and "min_expected_errors" in result.output


# ---- CLI conventions (issue 13, point 8) ---------------------------------------------------------------------
def _round_done(runner, fake, config="relabel.toml"):
    assert run(runner, fake, "init", "--url", "http://ls.example:8080", "--project", "7", "--featurizer", "tfidf",
               "--config", config).exit_code == 0
    assert run(runner, fake, "round", "--budget", "5", "--config", config).exit_code == 0


class _WritableFake(FakeLabelStudio):
    """The fake with the writeback call of the Label Studio connector: counts what it was given."""

    def write_task_field(self, labels):
        return {"written": len(labels), "updated": 0, "removed": 0, "unchanged": 0, "missing": 0}


def test_every_command_takes_config_after_the_subcommand_and_json(runner, tmp_path):
    fake = _WritableFake()
    _round_done(runner, fake, config="sub/other.toml")           # init and round take --config after the command
    assert (tmp_path / "sub" / "other.toml").exists() and not (tmp_path / "relabel.toml").exists()
    calls = {
        "init": ["--url", "http://ls.example:8080", "--project", "7", "--force"],
        "pull": [], "score": [], "push": [], "collect": [], "round": [], "status": [], "annotators": [],
        "export": ["--format", "jsonl", "--out", "x.jsonl"], "report": ["--out", "r.html"], "log": [],
        "writeback": [],
    }
    # demo and serve start servers: their --json is checked by their own tests (test_demo, test_service)
    assert set(calls) | {"demo", "serve"} >= set(cli.commands), "a new command needs a line here"
    for name, args in calls.items():
        result = run(runner, fake, name, *args, "--config", "sub/other.toml", "--json")
        assert result.exit_code == 0, (name, result.output)
        summary = json.loads(result.output)          # one JSON object, nothing else on standard output
        assert isinstance(summary, dict) and summary, name
    demo_help = runner.invoke(cli, ["demo", "--help"]).output
    assert "--json" in demo_help
    serve_help = runner.invoke(cli, ["serve", "--help"]).output
    assert "--json" in serve_help and "--config" in serve_help
    assert json.loads(run(runner, fake, "report", "--out", "r.html", "--json", "--config", "sub/other.toml")
                      .output)["path"] == "r.html" and (tmp_path / "r.html").stat().st_size > 10_000
    # without --config, the subcommand uses ./relabel.toml, which does not exist: one line, exit 1
    missing = run(runner, fake, "status")
    assert missing.exit_code == 1 and "No config file at 'relabel.toml'" in missing.output


def test_round_json_and_pull_counts_name_the_skips(runner):
    fake = FakeLabelStudio()
    fake.annotations += [AnnotationRecord(annotation_id=f"s{n}", item_id=str(1000 + n), annotator_id="ann@x",
                                          label=None, created_at="2026-01-01", updated_at="2026-01-01T00:00:00",
                                          skipped=True) for n in range(6)]
    init(runner, fake)
    text = run(runner, fake, "pull").output
    assert text == "Pulled 186 annotations (6 skipped) on 60 items: 186 new, 0 changed, 0 unchanged, 0 deleted.\n"
    fake.annotations += [AnnotationRecord(annotation_id="late", item_id="1001", annotator_id="new@x", label="tech",
                                          created_at="2026-01-02", updated_at="2026-01-02T00:00:00")]
    result = run(runner, fake, "round", "--budget", "5", "--json")
    summary = json.loads(result.output)
    assert summary["round"] == 1 and summary["steps"] == ["pull", "score", "select", "push"]
    assert (summary["pull"]["pulled"], summary["pull"]["new"], summary["push"]["new"]) == (1, 1, 15)
    assert summary["push"]["audit"] == 10                # on top of the budget
    batch = summary["push"]["batch"]         # the stop signal's figures, in JSON too
    assert batch["items"] == 5 and batch["low"] <= batch["expected"] <= batch["high"] and batch["source"] == "posterior"
    assert batch["evidence"] == {"round": None, "decided": 0, "corrected": 0}


def test_a_round_off_a_terminal_prints_a_line_per_step(runner):
    fake = FakeLabelStudio()
    init(runner, fake)
    lines = run(runner, fake, "round", "--budget", "5").output.splitlines()
    assert lines[0] == "Pulling from Label Studio..."
    assert lines[1].startswith("Pulled 180 annotations (0 skipped) on 60 items")
    assert lines[2] == "Scoring (model, consensus, quality)..." and lines[3].startswith("Round 1 scored")
    assert lines[4].startswith("model: ") and "out-of-fold log-loss" in lines[4]   # the chosen pipeline
    assert lines[5].startswith("Overrides earned: the model may change final labels; the model agrees with an "
                               "item's annotators")                             # the override regime (issue 20)
    assert lines[6] == "Selecting and pushing review tasks..." and lines[7].startswith("Round 1: 15 new review tasks")
    quiet = run(runner, fake, "--quiet", "round", "--budget", "5").output
    assert "..." not in quiet and "Collected 0 decisions" in quiet


def test_log_prints_the_events_table(runner):
    fake = FakeLabelStudio()
    init(runner, fake)
    run(runner, fake, "round", "--budget", "5")
    with Store("relabel.db") as store:
        events = store.events()
    text = run(runner, fake, "log").output.splitlines()
    assert text[0].split() == ["at", "round", "step", "message"] and len(text) == 2 + len(events)
    assert [line.split("  ")[0] for line in text[2:]][0].endswith("UTC (just now)")
    assert any(" push " in f" {line} " and "5 new review tasks" in line for line in text)
    only = json.loads(run(runner, fake, "log", "--round", "1", "--step", "push", "--json").output)["events"]
    assert [e["step"] for e in only] == ["push"] and only[0]["round"] == 1
    assert len(json.loads(run(runner, fake, "log", "--limit", "2", "--json").output)["events"]) == 2


def test_verbose_shows_events_as_they_happen(runner):
    fake = FakeLabelStudio()
    init(runner, fake)
    loud = runner.invoke(cli, ["-v", "round", "--budget", "5"], obj={"connector": fake})
    assert "round 1 score: round 1 scored with model-dawid-skene" in loud.output
    calm = runner.invoke(cli, ["round", "--budget", "5"], obj={"connector": fake})
    assert "score: round" not in calm.output


def test_label_studio_url_from_the_environment(runner, tmp_path, monkeypatch):
    fake = FakeLabelStudio()
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://from-env:8080")
    result = run(runner, fake, "init", "--project", "7", "--featurizer", "tfidf")
    assert result.exit_code == 0, result.output
    assert 'url = "http://from-env:8080"' in (tmp_path / "relabel.toml").read_text()
    monkeypatch.delenv("LABEL_STUDIO_URL")
    usage = runner.invoke(cli, ["init", "--project", "7"])
    assert usage.exit_code == 2 and "--url" in usage.output and "LABEL_STUDIO_URL" in usage.output
    # a config without a url takes the variable; one with a url keeps its own
    (tmp_path / "bare.toml").write_text('[label_studio]\nproject = 7\n')
    from relabel.config import load_config
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://other:9090")
    assert load_config(tmp_path / "bare.toml").label_studio.url == "http://other:9090"
    assert load_config(tmp_path / "relabel.toml").label_studio.url == "http://from-env:8080"


def test_init_refuses_relabels_own_review_project(runner, tmp_path):
    class ReviewProject(FakeLabelStudio):
        def describe(self):
            return dataclasses.replace(super().describe(), project_id=8, review_of=7)
    fake = ReviewProject(project_id=8)
    result = run(runner, fake, "init", "--url", "http://ls.example:8080", "--project", "8")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "is relabel's own review project for project 7" in result.output and "Use --project 7" in result.output
    assert not (tmp_path / "relabel.toml").exists() and not (tmp_path / "relabel.db").exists()


def test_init_example_prints_the_shipped_example(runner, tmp_path):
    result = runner.invoke(cli, ["init", "--example"])
    assert result.exit_code == 0
    from pathlib import Path
    shipped = (Path(__file__).resolve().parents[1] / "configs" / "relabel.example.toml").read_text()
    assert result.output == shipped.rstrip("\n") + "\n" and "[label_studio]" in result.output
    assert not (tmp_path / "relabel.toml").exists()


def test_init_of_a_project_without_annotations_says_to_annotate_first(runner):
    """Issue 20: `init` on a project with 0 annotations does not say "next: relabel round"."""
    fake = FakeLabelStudio(n_items=0, n_unlabelled=6)
    out = init(runner, fake).output
    assert "annotations: 0" in out
    assert "next: annotate some tasks in Label Studio (the project has 0 annotations" in out


def test_json_errors_are_json_on_stdout_and_text_on_stderr(runner):
    """Issue 20: with --json a failure is {"error": ..., "exit_code": 1} on stdout, the Error line on stderr."""
    result = runner.invoke(cli, ["--config", "missing.toml", "status", "--json"], obj={})
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["exit_code"] == 1 and "No config file at 'missing.toml'" in body["error"]
    assert result.stderr.startswith("Error: No config file at 'missing.toml'") and "{" not in result.stderr
    plain = runner.invoke(cli, ["--config", "missing.toml", "status"], obj={})
    assert plain.exit_code == 1 and plain.stdout == ""
