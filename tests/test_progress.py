"""Progress bars: drawn on a terminal only, never with --quiet, and hooked into the slow steps."""
from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner

from relabel import progress
from relabel.cli import cli
from relabel.models.fit import cross_val_pred_probs


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def not_quiet():
    progress.set_quiet(False)
    yield
    progress.set_quiet(False)


def test_a_bar_draws_on_a_terminal_and_ends_its_line():
    out = Terminal()
    with progress.bar("Pulling tasks", total=4, stream=out) as bar:
        for _ in range(4):
            bar.update()
    text = out.getvalue()
    assert text.startswith("\rPulling tasks [") and text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert "100%" in last and "4/4" in last and "#" * progress.BAR_WIDTH in last


def test_no_bar_off_a_terminal_or_when_quiet():
    plain = io.StringIO()
    with progress.bar("Pulling tasks", total=4, stream=plain) as bar:
        bar.update(4)
    assert plain.getvalue() == "" and not progress.enabled(plain)
    progress.set_quiet(True)
    out = Terminal()
    with progress.bar("Pulling tasks", total=4, stream=out) as bar:
        bar.update(4)
    assert out.getvalue() == "" and not progress.enabled(out)


def test_a_bar_without_total_counts():
    out = Terminal()
    with progress.bar("Collecting", stream=out) as bar:
        bar.update(1234)
    assert "Collecting  1,234" in out.getvalue()


def test_redraws_are_throttled():
    out = Terminal()
    with progress.bar("Pulling tasks", total=100_000, stream=out) as bar:
        for _ in range(100_000):
            bar.update()
    # one draw on entry, a few while running (at most every REDRAW_SECONDS), the final one and the exit
    assert out.getvalue().count("\r") < 100


def test_cross_validation_shows_a_bar_per_fold(monkeypatch):
    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    cross_val_pred_probs(X, y, n_folds=3)
    assert "Cross-validating (folds)" in err.getvalue() and "3/3" in err.getvalue()


def test_connector_steps_advance_a_bar(monkeypatch):
    from connectors.label_studio_common import advancing
    out = Terminal()
    seen = list(advancing(iter(range(7)), progress.bar("Collecting answers", total=7, stream=out)))
    assert seen == list(range(7)) and "7/7" in out.getvalue()


def test_cli_quiet_flag_turns_bars_off(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--quiet", "status"], obj={})
    assert result.exit_code == 1 and "No config file" in result.output   # ran, and failed for its own reason
    assert not progress.enabled(Terminal())
