"""The CLI through click's CliRunner, against the in-memory fake Label Studio of test_rounds."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from relabel.cli import cli
from relabel.config import API_KEY_ENV
from relabel.errors import AuthError, ConnectorError
from relabel.store import Store
from test_rounds import ANNOTATORS, FakeLabelStudio


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(API_KEY_ENV, "test-key-not-secret")
    return CliRunner()


def run(runner, fake, *args):
    return runner.invoke(cli, list(args), obj={"connector": fake}, catch_exceptions=False)


def init(runner, fake, *extra, stop_signal=False):
    result = run(runner, fake, "init", "--url", "http://ls.example:8080", "--project", str(fake.project_id),
                 "--featurizer", "tfidf", *extra)
    config = Path("relabel.toml")
    if not stop_signal and result.exit_code == 0 and config.exists():
        # The small fake holds few expected errors: turn the stop signal off unless a test is about it.
        config.write_text(config.read_text().replace("[review]\n", "[review]\nmin_expected_errors = 0\n"))
    return result


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
    assert "10 new review tasks (project), 10 in total" in result.output

    again = run(runner, fake, "push")
    assert again.exit_code == 0 and "0 new review tasks" in again.output and "10 in total" in again.output
    assert len(fake.review_tasks) == 10

    status = json.loads(run(runner, fake, "status", "--json").output)
    assert list(status) == ["rounds"] and len(status["rounds"]) == 1
    r1 = status["rounds"][0]
    assert list(r1) == ["round", "status", "items", "annotations", "pushed", "reviewed", "corrected",
                        "expected_remaining_errors", "expected_low", "expected_high", "stop_reason"]
    assert r1["expected_low"] <= r1["expected_remaining_errors"] <= r1["expected_high"] and r1["stop_reason"] is None
    assert (r1["round"], r1["status"], r1["items"], r1["annotations"], r1["pushed"]) == (1, "pushed", 60, 180, 10)

    task_ids = sorted(fake.review_tasks.values())
    fake.answer(task_ids[0], "eve@x", "tech")
    fake.answer(task_ids[1], "eve@x", None)
    collected = run(runner, fake, "collect")
    assert collected.exit_code == 0 and "Collected 2 decisions" in collected.output and "1 skipped" in collected.output

    table = run(runner, fake, "status").output.splitlines()
    assert table[0].split() == ["round", "status", "items", "annotations", "pushed", "reviewed", "corrected",
                                "expected_remaining_errors"]
    assert table[2].split()[:5] == ["1", "pushed", "60", "180", "10"]

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
    assert len(result.output.strip().splitlines()) == 1
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
    init(runner, fake, stop_signal=True)
    Path("relabel.toml").write_text(Path("relabel.toml").read_text().replace(
        "[review]\n", "[review]\nmin_expected_errors = 1000\n"))
    result = run(runner, fake, "round", "--budget", "10")
    assert result.exit_code == 0, result.output
    assert "nothing pushed" in result.output and "min_expected_errors = 1000" in result.output
    assert "90% interval" in result.output
    assert fake.push_calls == []
    status = run(runner, fake, "status")
    assert "stopped" in status.output and "90% interval" in status.output
    bad = Path("relabel.toml").read_text().replace("min_expected_errors = 1000", "min_expected_errors = -1")
    Path("relabel.toml").write_text(bad)
    result = run(runner, fake, "round")
    assert result.exit_code == 1 and "min_expected_errors" in result.output
