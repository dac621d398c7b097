"""The built wheel installs under its distribution name in a fresh venv and gives a working `relabel`.

Nothing is downloaded: the wheel is built without build isolation and installed with --no-deps --no-index; the
fresh venv sees its dependencies (numpy, torch 2.13.0, ...) through a .pth line naming the site-packages of the
Python running the tests, so no other torch can ever be pulled.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

import relabel

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_distribution_name_license_and_readme_agree():
    name = PYPROJECT["project"]["name"]
    assert name == relabel.DISTRIBUTION != "relabel"           # "relabel" on PyPI is someone else's package
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    license_text = (REPO / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    readme = (REPO / "README.md").read_text()
    assert "pip install" in readme and name in readme
    # every message that tells users what to install names the distribution, never the bare import name
    for path in list((REPO / "relabel").glob("*.py")) + list((REPO / "connectors").glob("*.py")) + [REPO / "README.md"]:
        assert "'relabel[" not in path.read_text() and '"relabel[' not in path.read_text(), path


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv(tmp_path):
    # Built from a copy, so setuptools' build/ and egg-info never land in the repository (an egg-info there would
    # also make pip think the distribution is installed wherever the repository is on PYTHONPATH).
    source, dist = tmp_path / "source", tmp_path / "dist"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", ".relabel-demo", "build", "dist",
                                                                "*.egg-info", "test-artifacts", "__pycache__",
                                                                ".pytest_cache", ".hypothesis", "benchmarks"),
                    symlinks=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RELABEL_CONFIG")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
                    "-w", str(dist), str(source)], check=True, cwd=tmp_path, env=env, timeout=600)
    (wheel,) = dist.glob("*.whl")
    assert wheel.name.startswith(PYPROJECT["project"]["name"].replace("-", "_") + "-")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "relabel/relabel.example.toml" in names and any(n.endswith("licenses/LICENSE") for n in names)
        assert zf.read("relabel/relabel.example.toml") == (REPO / "configs" / "relabel.example.toml").read_bytes()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bin_dir = venv / "bin"
    subprocess.run([bin_dir / "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True,
                   env=env, timeout=300)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    def run(*args):
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=300)
    where = run(bin_dir / "python", "-c", "import relabel, importlib.metadata as m; "
                f"print(relabel.__file__); print(m.version({PYPROJECT['project']['name']!r}))")
    assert where.returncode == 0, where.stderr
    path, version = where.stdout.split()
    assert Path(path).is_relative_to(site) and version == PYPROJECT["project"]["version"]
    assert run(bin_dir / "relabel", "--version").stdout.strip() == f"relabel, version {relabel.__version__}"
    example = run(bin_dir / "relabel", "init", "--example")
    assert example.returncode == 0 and "[label_studio]" in example.stdout
    check = run(bin_dir / "python", "-m", "pip", "check")
    missing = [line for line in check.stdout.splitlines() if "relabel" in line.lower()]
    assert missing == [], check.stdout
