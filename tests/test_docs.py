"""The README is part of the product: every command is documented there and its Python example runs."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from relabel.cli import cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(cli.commands)


def test_there_are_commands():
    assert {"init", "pull", "score", "push", "collect", "round", "status", "annotators", "export", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_and_a_readme_entry(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    help_text = result.output.split("Options:")[0]
    assert len(help_text.split()) > 8, f"`relabel {name} --help` says almost nothing"
    assert f"relabel {name}" in README, f"`relabel {name}` is not in the README"


def test_readme_python_example_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "the README has no Python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the example prints its results"


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    quick = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_demo_folder_is_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", ".relabel-demo/relabel.db"], cwd=REPO, capture_output=True)
    assert ignored.returncode == 0, ".relabel-demo/ must be in .gitignore"


def test_make_test_says_before_it_installs_chromium_with_apt():
    # `make test` may run apt-get as root (tests/test_report.py needs a browser): a user must be told first.
    recipe = (REPO / "Makefile").read_text().split("\nbrowser:", 1)[1].split("\n\n", 1)[0]
    assert "apt-get install" in recipe
    assert recipe.index("echo") < recipe.index("apt-get update"), recipe
    assert "chromium" in recipe[recipe.index("echo"):recipe.index("apt-get update")]
