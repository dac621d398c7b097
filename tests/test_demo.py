"""`relabel demo` end to end: its own Label Studio, real texts, simulated annotators, measured figures."""
import json

import pytest

from relabel.demo import DemoPaths, run_demo


@pytest.mark.integration
@pytest.mark.slow
def test_demo_with_simulated_review_lowers_the_measured_error_rate(tmp_path):
    lines = []
    figures = run_demo(tmp_path / "demo", n_items=120, budget=15, rounds=3, simulate_review=True,
                       featurizer="tfidf", echo=lines.append)
    output = "\n".join(lines)
    paths = DemoPaths(tmp_path / "demo")
    truth = json.loads(paths.truth.read_text())
    # up to 3 rounds: the stop signal may end the loop after round 2 (run_demo's docstring), and then says so
    assert len(truth) == 120
    assert len(figures) == 3 or (len(figures) == 2 and "nothing pushed" in output), output
    # measured, not typed: every figure is recomputed here from the exported labels and the hidden truth
    errors = [f["wrong_final_labels"] for f in figures]
    assert errors[0] > 0, "the simulated annotators should leave some wrong consensus labels"
    assert errors[0] > errors[1] >= errors[-1], errors
    # a round that fixed nothing more is one the stop signal ended: it says so (issue 10)
    assert errors[1] > errors[-1] or errors[-1] == 0 or "nothing pushed" in output, (errors, output)
    assert all(f["wrong_final_labels"] <= f["majority_vote_wrong"] for f in figures)
    assert "review queue's precision" in output and "Round by round" in output
    # the key lives in a 0600 key file named by the config, never in the TOML
    config = paths.config.read_text()
    assert "api_key_file" in config and paths.api_key.read_text() not in config
    assert oct(paths.api_key.stat().st_mode & 0o777) == "0o600"


def test_demo_keeps_its_login_when_the_first_start_fails(tmp_path, monkeypatch):
    import relabel.server

    passwords = []

    def failing_start(data_dir, *, username, password, **kw):
        passwords.append(password)
        raise RuntimeError("Label Studio did not start")

    monkeypatch.setattr(relabel.server, "start_label_studio", failing_start)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            run_demo(tmp_path / "demo", echo=lambda line: None)
    # the admin account was made with the first password: the second run must print that one, not a new one
    assert passwords[0] == passwords[1]
    state = DemoPaths(tmp_path / "demo").state
    assert json.loads(state.read_text())["password"] == passwords[0]
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    # Label Studio's data (every user's token in label_studio.sqlite3) sits in a folder only the owner can enter
    assert oct(state.parent.stat().st_mode & 0o777) == "0o700"
