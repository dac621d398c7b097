"""`relabel demo --serve` end to end (issue 14 acceptance 7): the service starts the rounds by itself."""
import json

import pytest

from relabel.demo import DemoPaths, run_demo
from relabel.store import Store


@pytest.mark.integration
@pytest.mark.slow
def test_demo_serve_runs_rounds_started_by_the_service(tmp_path):
    lines = []
    figures = run_demo(tmp_path / "demo", n_items=60, budget=12, rounds=3, serve=True, featurizer="tfidf",
                       echo=lines.append)
    output = "\n".join(lines)
    paths = DemoPaths(tmp_path / "demo")
    assert len(figures) == 3
    # Round 1 because there was none; rounds 2 and 3 because the expert drained the review queue: no CLI call.
    assert "started by the service (no round yet)" in output
    assert output.count("were answered)") == 2, output
    assert "registered with project" in output and "/status.json" in output
    with Store(paths.store) as store:
        rounds = store.rounds()
        events = [e["step"] for e in store.events()]
        decisions = store.decisions()
    assert [r["round"] for r in rounds] == [1, 2, 3] and all(r["status"] == "pushed" for r in rounds)
    assert len(decisions) == 24 and "register" in events and "unregister" in events
    # measured against the hidden truth: reviewing fixes labels, it never adds wrong ones
    errors = [f["wrong_final_labels"] for f in figures]
    assert errors[2] <= errors[1] <= errors[0], errors
    # the service's secrets are 0600 files named by the config, never in the TOML
    config = paths.config.read_text()
    for secret in (paths.serve_password, paths.webhook_secret):
        assert oct(secret.stat().st_mode & 0o777) == "0o600" and secret.read_text() not in config
    assert json.loads(paths.state.read_text())["project"] == 1
