"""Issue 20 acceptance 5: the batch estimate, the total left and the per-round figures come from one posterior, so
in `relabel status --json` the items a round sends never hold more expected wrong labels than all items left.
A property test over random projects (the recorded fake of test_rounds: sizes, noise, budgets, reviewers who
confirm or correct at random)."""
from __future__ import annotations

import json
import os

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from relabel.cli import cli
from relabel.config import API_KEY_ENV
from test_rounds import CLASSES, FakeLabelStudio

KEY = "0" * 40


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_items=st.integers(30, 90), noise=st.floats(0.0, 0.45), seed=st.integers(0, 10_000),
       budget=st.integers(3, 25), answered=st.floats(0.0, 1.0), correct=st.floats(0.0, 1.0))
def test_a_batch_never_holds_more_expected_wrong_labels_than_the_whole(tmp_path_factory, n_items, noise, seed,
                                                                         budget, answered, correct):
    import numpy as np

    folder = tmp_path_factory.mktemp("agree")
    fake = FakeLabelStudio(n_items=n_items, noise=noise, seed=seed)
    rng = np.random.default_rng(seed)
    runner = CliRunner(env={API_KEY_ENV: KEY, "RELABEL_CONFIG": None})
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        def run(*args):
            result = runner.invoke(cli, list(args), obj={"connector": fake}, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.output

        run("init", "--url", "http://ls.example:8080", "--project", "7", "--featurizer", "tfidf",
            "--budget", str(budget))
        from relabel.loop.store import Store
        for rnd in (1, 2, 3):
            run("round", "--force")
            with Store(folder / "relabel.db") as store:
                tasks = store.review_tasks(rnd)
            for t in tasks:
                if rng.random() < answered:
                    label = (str(rng.choice([c for c in CLASSES if c != t["suggested"]])) if rng.random() < correct
                             else t["suggested"])
                    fake.answer(t["task_id"], "eve@x", label)
        status = json.loads(run("status", "--json"))
    finally:
        os.chdir(cwd)
    checked = 0
    for r in status["rounds"]:
        if r["batch_expected"] is None:
            continue
        assert r["batch_expected"] <= r["expected_remaining_errors"] + 1e-9, r
        assert r["batch_high"] <= r["expected_high"], r
        checked += 1
    assert checked >= 1
