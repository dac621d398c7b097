"""Fast unit tests of `relabel serve`'s pure parts: the round policy, the auth checks, the [serve] settings."""
from __future__ import annotations

import base64
import os

import pytest

from relabel.config import (SERVE_PASSWORD_ENV, WEBHOOK_SECRET_ENV, ServeSettings, parse_config)
from relabel.errors import ConfigError
from relabel.service.policy import Situation, round_due
from relabel.service.predictions import project_of
from relabel.service.webhooks import basic_auth_matches, event_of, secret_matches

LS = {"url": "http://localhost:8080", "project": 3}


def situation(**changes) -> Situation:
    base = dict(latest_round=2, open_round=False, pushed=10, answered=4, new_annotations=0,
                seconds_since_round=60.0, stopped=None)
    base.update(changes)
    return Situation(**base)


@pytest.mark.parametrize("changes, trigger, expected", [
    ({}, ("drained",), None),                                                   # 4 of 10 answered
    ({"answered": 10}, ("drained",), "all 10 review tasks of round 2 were answered"),
    ({"answered": 10}, ("annotations",), None),                                 # not this policy
    ({"new_annotations": 49}, ("annotations",), None),
    ({"new_annotations": 50}, ("annotations",), "50 annotations changed since round 2"),
    ({"seconds_since_round": 3599.0}, ("schedule",), None),
    ({"seconds_since_round": 3600.0}, ("schedule",), "60 minutes since round 2"),
    ({"latest_round": None, "pushed": 0, "answered": 0}, ("schedule",), "no round yet"),
    ({"open_round": True}, ("drained",), "round 2 was left half way"),
    # a round that stopped the loop is not followed by identical rounds, whatever the policy ...
    ({"pushed": 0, "answered": 0, "stopped": "nothing to review"}, ("drained",), None),
    ({"answered": 10, "stopped": "stop signal", "seconds_since_round": 1e6}, ("drained", "schedule"), None),
    # ... until annotations change
    ({"pushed": 0, "answered": 0, "stopped": "stop signal", "new_annotations": 1}, ("drained",),
     "1 annotations changed since round 2 stopped (stop signal)"),
])
def test_round_policy(changes, trigger, expected):
    assert round_due(situation(**changes), ServeSettings(trigger=trigger)) == expected


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_and_secret_checks():
    assert basic_auth_matches(header("relabel", "pw:with:colons"), "relabel", "pw:with:colons")
    for bad in (None, "", "Bearer x", header("relabel", "wrong"), header("other", "pw"), "Basic !!!notbase64",
                "Basic " + base64.b64encode(b"no-colon").decode()):
        assert not basic_auth_matches(bad, "relabel", "pw")
    assert secret_matches("s3cret", "s3cret")
    assert not secret_matches(None, "s3cret") and not secret_matches("", "s3cret") and not secret_matches("s3", "s3cret")


def test_webhook_events_and_project_ids():
    assert event_of({"action": "ANNOTATION_CREATED", "project": {"id": 4, "token": "x"}}).project == 4
    assert event_of({"action": "TASKS_DELETED", "project": {"id": 4}}).action == "TASKS_DELETED"
    assert event_of({"action": "PROJECT_UPDATED", "project": {"id": 4}}) is None
    assert event_of({}) is None
    assert project_of({"project": "12.1700000000"}) == 12 and project_of({"tasks": [{"id": 1, "project": 5}]}) == 5
    assert project_of({"project": "nonsense"}) is None


def test_serve_settings_are_validated_and_secrets_stay_out_of_the_toml(tmp_path, monkeypatch):
    config = parse_config({"label_studio": LS, "serve": {"trigger": ["drained", "schedule"], "every_minutes": 30,
                                                         "host": "0.0.0.0", "port": 9191}})
    assert config.serve.trigger == ("drained", "schedule") and config.serve.public_url == "http://127.0.0.1:9191"
    assert parse_config({"label_studio": LS}).serve == ServeSettings()
    for bad, needle in (({"trigger": "hourly"}, "'trigger'"), ({"port": 70000}, "'port'"),
                        ({"new_annotations": 0}, "'new_annotations'"), ({"password": "x"}, "must not hold"),
                        ({"webhook_secret": "x"}, "must not hold"), ({"colour": 1}, "Unknown setting 'colour'")):
        with pytest.raises(ConfigError, match=needle):
            parse_config({"label_studio": LS, "serve": bad})

    monkeypatch.delenv(SERVE_PASSWORD_ENV, raising=False)
    monkeypatch.delenv(WEBHOOK_SECRET_ENV, raising=False)
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-the-file-of-24-chars\n")
    config = parse_config({"label_studio": LS, "serve": {"webhook_secret_file": "secret"}}, base=tmp_path)
    os.chmod(secret_file, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        config.webhook_secret()
    os.chmod(secret_file, 0o600)
    assert config.webhook_secret() == "from-the-file-of-24-chars"
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, "from-the-environment")
    assert config.webhook_secret() == "from-the-environment"
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, "hunter2")          # issue 20: a guessable secret is refused with the fix
    with pytest.raises(ConfigError, match="has 7 characters; use at least 16, e.g. export RELABEL_WEBHOOK_SECRET="):
        config.webhook_secret()
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, "from-the-environment")
    with pytest.raises(ConfigError, match=SERVE_PASSWORD_ENV):
        config.serve_password()


class _FakeStore:
    def latest_round(self):
        return {"round": 1, "status": "pushed", "scored_at": "2026-01-01T00:00:00+00:00"}

    def review_tasks(self, round=None):
        return []

    def decisions(self):
        return []


class _FlakyLoop:
    """A Loop whose pull fails ``failures`` times (Label Studio down), then works."""

    def __init__(self, failures: list[int]):
        self.failures, self.store, self.closed = failures, _FakeStore(), False

    def pull(self):
        from relabel.errors import ConnectorError
        from relabel.loop.store_pull import PullSummary
        if self.failures[0] > 0:
            self.failures[0] -= 1
            raise ConnectorError("Cannot reach Label Studio at http://127.0.0.1:1 (ConnectError)")
        return PullSummary(items=1, new=0, changed=0, unchanged=0, deleted=0)

    def close(self):
        self.closed = True


def test_worker_logs_a_failing_step_retries_with_backoff_and_shows_it(caplog):
    import time

    from relabel.service.worker import Worker

    failures, loops = [2], []

    def factory():
        loops.append(_FlakyLoop(failures))
        return loops[-1]

    config = parse_config({"label_studio": LS, "serve": {"retry_max_seconds": 1}})
    worker = Worker(config, loop_factory=factory)
    caplog.set_level("INFO", logger="relabel.serve")
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while failures[0] > 0 or worker.snapshot()["state"] != "idle":
            assert time.monotonic() < deadline, worker.snapshot()
            time.sleep(0.05)
        snap = worker.snapshot()
    finally:
        worker.stop(timeout=10)
    assert snap["retries"] == 0 and snap["last_error"]["retries"] == 2       # reset after the success
    assert snap["last_error"]["step"] == "pull" and "Cannot reach" in snap["last_error"]["message"]
    assert [r.getMessage() for r in caplog.records].count(
        "worker: pull failed (retry 1 in 1 s): Cannot reach Label Studio at http://127.0.0.1:1 (ConnectError)") == 1
    assert len(loops) == 3 and loops[0].closed and loops[1].closed      # a fresh loop after each failure
    assert snap["stopped"] == "round 1 found nothing to send to review"
    assert not worker.alive and worker.snapshot()["state"] == "stopped"


def test_serve_command_refuses_missing_secrets_and_both_flags(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from relabel.cli import cli

    monkeypatch.delenv(SERVE_PASSWORD_ENV, raising=False)
    monkeypatch.delenv(WEBHOOK_SECRET_ENV, raising=False)
    config = tmp_path / "relabel.toml"
    config.write_text('[label_studio]\nurl = "http://127.0.0.1:1"\nproject = 1\n[serve]\nport = 9999\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "serve"], obj={})
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert f"set {SERVE_PASSWORD_ENV}" in result.output and "password_file" in result.output
    both = CliRunner().invoke(cli, ["--config", str(config), "serve", "--register", "--unregister"], obj={})
    assert both.exit_code == 2 and "cannot be used together" in both.output


def test_serve_ctrl_c_exits_0_with_one_goodbye_line(tmp_path):
    """Issue 20: Ctrl-C (SIGINT) on `relabel serve` is a normal way to stop it: exit 0, one line, no traceback."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from relabel.server import free_port

    repo = Path(__file__).resolve().parents[1]
    config = tmp_path / "relabel.toml"
    config.write_text(f'[label_studio]\nurl = "http://127.0.0.1:1"\nproject = 1\n[serve]\nport = {free_port()}\n')
    env = {**os.environ, "PYTHONPATH": str(repo), SERVE_PASSWORD_ENV: "a-serve-password",
           WEBHOOK_SECRET_ENV: "a-webhook-secret-of-24-chars", "LABEL_STUDIO_API_KEY": "0" * 40}
    process = subprocess.Popen([sys.executable, "-c", "from relabel.cli import main; main()", "--config", str(config),
                                "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if process.poll() is not None:
                break
            try:
                import httpx
                if httpx.get(f"http://127.0.0.1:{config.read_text().split('port = ')[1].strip()}/health",
                             timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                continue
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == "relabel serve stopped; goodbye." and err.count("goodbye") == 1, err
    assert "listening on" in err


def test_prefill_annotators_is_off_by_default_and_register_turns_label_studios_prefill_off():
    """Issue 20: `[serve] prefill_annotators` (false by default) decides show_collab_predictions; turning it off
    keeps the project's model_version (Label Studio clears it), and the setting is remembered for --unregister."""
    from relabel.service.registration import _ensure_prefill

    assert parse_config({"label_studio": LS}).serve.prefill_annotators is False
    assert parse_config({"label_studio": LS, "serve": {"prefill_annotators": True}}).serve.prefill_annotators is True
    with pytest.raises(ConfigError, match="prefill_annotators"):
        parse_config({"label_studio": LS, "serve": {"prefill_annotators": "yes"}})

    class Project:
        def __init__(self, prefill):
            self.body = {"show_collab_predictions": prefill, "model_version": "relabel round 3"}
            self.patches = []

        def _request(self, method, path, json_body=None, **_):
            if method == "PATCH":
                self.patches.append(json_body)
                self.body.update(json_body)
            return dict(self.body)

    class Meta:
        def __init__(self):
            self.meta = {}

        def get_meta(self, key):
            return self.meta.get(key)

        def set_meta(self, key, value):
            self.meta[key] = value

    project, store = Project(True), Meta()
    _ensure_prefill(project, store, 7, prefill=False)
    assert project.patches == [{"show_collab_predictions": False}, {"model_version": "relabel round 3"}]
    assert store.meta["serve_previous_show_collab_predictions"] == "true"
    _ensure_prefill(project, store, 7, prefill=False)                  # idempotent
    assert len(project.patches) == 2
    kept = Project(True)
    _ensure_prefill(kept, Meta(), 7, prefill=True)
    assert kept.patches == []
