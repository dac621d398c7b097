"""`relabel demo --serve` end to end (issue 14 acceptance 7): the service starts the rounds by itself."""
import json

import pytest

from relabel.demo import DemoPaths, run_demo
from relabel.loop.store import Store


@pytest.mark.integration
@pytest.mark.slow
def test_demo_serve_runs_rounds_started_by_the_service(tmp_path):
    lines = []
    figures = run_demo(tmp_path / "demo", n_items=60, budget=12, rounds=3, serve=True, featurizer="tfidf",
                       echo=lines.append)
    output = "\n".join(lines)
    paths = DemoPaths(tmp_path / "demo")
    # Every round is started by the service: round 1 because there was none, the next ones because the expert
    # drained the review queue (no CLI call), until 3 rounds or the stop signal (nothing worth reviewing) ends it.
    assert 2 <= len(figures) <= 3, output
    assert "started by the service (no round yet)" in output
    assert output.count("were answered)") == len(figures) - 1, output
    assert "registered with project" in output and "/status.json" in output
    with Store(paths.store) as store:
        rounds = store.rounds()
        events = [e["step"] for e in store.events()]
        decisions = store.decisions()
        answered_rounds = range(1, min(len(figures), 2) + 1)
        pushed_tasks = sum(len(store.review_tasks(r)) for r in answered_rounds)
        ranked = [sum(not s["audit"] for s in store.selection(r)) for r in answered_rounds]
    pushed = [r["round"] for r in rounds if r["status"] == "pushed"]
    assert pushed == list(range(1, len(figures) + 1)), rounds
    if len(figures) < 3:        # the stop signal ended it: round 3 was scored, pushed nothing and said why
        assert [r["status"] for r in rounds][-1] == "stopped" and "stopped the loop" in output, output
    # the expert answers every pushed round but the third: the budget's 12 ranked items and the audit items
    # ([review] audit, on by default) on top of them
    assert ranked == [12] * len(ranked) and pushed_tasks > 12 * len(ranked), (ranked, pushed_tasks)
    assert len(decisions) == pushed_tasks and "register" in events and "unregister" in events
    # measured against the hidden truth: reviewing fixes labels, it never adds wrong ones
    errors = [f["wrong_final_labels"] for f in figures]
    assert errors == sorted(errors, reverse=True), errors
    # the service's secrets are 0600 files named by the config, never in the TOML
    config = paths.config.read_text()
    for secret in (paths.serve_password, paths.webhook_secret):
        assert oct(secret.stat().st_mode & 0o777) == "0o600" and secret.read_text() not in config
    assert json.loads(paths.state.read_text())["project"] == 1
