"""A relabel.toml is data, not code: settings that name code accept only scikit-learn classifiers, and anything
else is refused with one line before it is imported, so nothing it names ever runs (issue 12, "The config runs
code"). Each case plants a command that would create a marker file, runs the real CLI in a fresh interpreter,
and checks the exit code, the one-line message, and that the marker never appeared."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relabel.models.classifiers import ALLOWED_CLASSIFIERS, classifier_class
from relabel.errors import ConfigError
from relabel.models.fit import ModelSettings, make_classifier

REPO = Path(__file__).resolve().parents[1]


def toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_cli(tmp_path: Path, model_table: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "relabel.toml").write_text(
        '[label_studio]\nurl = "http://127.0.0.1:9"\nproject = 1\n\n[model]\n' + model_table, encoding="utf-8")
    env = {**os.environ, "LABEL_STUDIO_API_KEY": "not-a-real-key", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", "from relabel.cli import main; main()", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def marker_command(marker: Path) -> str:
    return f"touch {marker}"


@pytest.mark.parametrize("table", [
    'classifier = "subprocess.run"\nclassifier_options = {{args = {cmd}, shell = true}}\n',
    'classifier = "os.system"\nclassifier_options = {{command = {cmd}}}\n',
    'classifier = "subprocess.Popen"\nclassifier_options = {{args = {cmd}, shell = true}}\n',
    'classifier = "builtins.exec"\nclassifier_options = {{source = {code}}}\n',
], ids=["subprocess.run", "os.system", "subprocess.Popen", "builtins.exec"])
@pytest.mark.parametrize("command", ["score", "status"])
def test_config_naming_code_is_refused_before_import_and_nothing_runs(tmp_path, table, command):
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').write('ran')"
    done = run_cli(tmp_path, table.format(cmd=toml_string(marker_command(marker)), code=toml_string(code)), command)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is not a scikit-learn classifier" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not marker.exists()


def test_a_scikit_learn_object_that_is_not_an_estimator_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    done = run_cli(tmp_path, 'classifier = "sklearn.utils.estimator_checks.check_estimator"\n', "score")
    assert done.returncode == 1 and "not a scikit-learn estimator class" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not marker.exists()


@pytest.mark.parametrize("name, message", [
    ("subprocess.run", "is not a scikit-learn classifier"),
    ("os.system", "is not a scikit-learn classifier"),
    ("sklearnx.evil.Thing", "is not a scikit-learn classifier"),      # a look-alike package
    ("sklearn.linear_model.LinearRegression", "has no predict_proba"),  # an estimator without probabilities
    ("sklearn.svm.LinearSVC", "has no predict_proba"),
    ("sklearn.utils.estimator_checks.check_estimator", "not a scikit-learn estimator class"),
    ("sklearn.linear_model", "not a scikit-learn estimator class"),     # a module
    ("sklearn.linear_model.__import__", "does not exist in scikit-learn"),
    ("LogisticRegression; rm -rf /", "is not a scikit-learn classifier"),
])
def test_classifier_names_are_checked(name, message):
    with pytest.raises(ConfigError, match=message):
        classifier_class(name)


def test_refused_paths_are_never_imported():
    """A module outside scikit-learn is refused before the import system sees it."""
    name = "relabel_test_never_imported_module"
    with pytest.raises(ConfigError, match="is not a scikit-learn classifier"):
        classifier_class(f"{name}.Thing")
    assert name not in sys.modules
    with pytest.raises(ConfigError, match="is not a scikit-learn classifier"):
        ModelSettings(classifier="antigravity.fly")
    assert "antigravity" not in sys.modules


def test_allowlisted_names_and_sklearn_paths_work():
    for name in ALLOWED_CLASSIFIERS:
        assert hasattr(classifier_class(name), "predict_proba")
    assert classifier_class("sklearn.ensemble.RandomForestClassifier").__name__ == "RandomForestClassifier"
    est = make_classifier("RandomForestClassifier", {"n_estimators": 3}, seed=1)
    assert est.n_estimators == 3 and est.random_state == 1


def test_classifier_options_must_be_plain_data():
    with pytest.raises(ConfigError, match="not plain values"):
        ModelSettings(classifier_options={"callback": print})
    assert ModelSettings(classifier_options={"max_iter": 5, "solver": "lbfgs"}).classifier_options["max_iter"] == 5


def test_model_package_names_are_located_not_imported(tmp_path, monkeypatch):
    """'model' names an installed package; relabel finds its folder without running its __init__."""
    from relabel.models.featurizers import resolve_model_path
    package = tmp_path / "relabel_fake_model_pkg"
    (package / "model").mkdir(parents=True)
    marker = tmp_path / "pwned"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (package / "model" / "modules.json").write_text("[]")
    monkeypatch.syspath_prepend(str(tmp_path))
    directory, label = resolve_model_path("relabel_fake_model_pkg")
    assert directory == (package / "model").resolve() and label == "relabel_fake_model_pkg"
    assert not marker.exists()
