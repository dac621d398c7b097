"""Run cleanlab's own tests against relabel.compat.cleanlab (issue 19, acceptance 6).

    python benchmarks/cleanlab_suite.py FOLDER_OR_FILES... [-k EXPR] [--no-baseline]

FOLDER holds cleanlab test files (e.g. tests/test_multiannotator.py, test_filter_count.py, test_rank.py from
cleanlab's repository; they are not part of relabel and are never committed here). Each file is copied to a
temporary folder with its imports of cleanlab's ``multiannotator``, ``filter``, ``count`` and ``rank`` pointed at
``relabel.compat.cleanlab`` (everything else, e.g. cleanlab.benchmarking used to make test data, stays cleanlab's),
and pytest runs on the copies. The test data are built by cleanlab: inside the files' ``make_*`` data helpers the
four modules stay cleanlab's (they are inputs to the tests, not what is tested), so a multi-label data set built at
import time does not hide every test of the file. The same files also run unchanged against the installed cleanlab (the baseline):
a test that fails there too is not a relabel incompatibility (the files may be newer or older than the installed
cleanlab). Prints pass/fail counts and every failing test grouped by reason.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULES = ("multiannotator", "filter", "count", "rank")
TARGET = "relabel.compat.cleanlab"

# `from cleanlab import a, b as c` (one line or parenthesised over several).
FROM_PACKAGE = re.compile(r"^from cleanlab import (\((?:[^)]*)\)|[^\n]+)$", re.MULTILINE)
# cleanlab.<module> not preceded by a dot or word character (so cleanlab.multilabel_classification.filter stays).
DOTTED = re.compile(r"(?<![\w.])cleanlab\.(" + "|".join(MODULES) + r")\b")


# A top-level `def make_...(` data helper, up to the next top-level line (not the `):` closing its signature).
DATA_HELPER = re.compile(r"^def make_\w+\(.*?(?=^[^\s)])", re.MULTILINE | re.DOTALL)
MODULE_USE = re.compile(r"(?<![\w.])(" + "|".join(MODULES) + r")\.")


def rewrite(source: str) -> str:
    """Point every use of cleanlab's four modules at relabel.compat.cleanlab, except in the data helpers."""
    def split_from(match: re.Match) -> str:
        names = [n.strip() for n in match.group(1).strip("()").replace("\n", " ").split(",") if n.strip()]
        ours = [n for n in names if n.split(" as ")[0].strip() in MODULES]
        theirs = [n for n in names if n not in ours]
        lines = []
        if ours:
            lines.append(f"from {TARGET} import {', '.join(ours)}")
        if theirs:
            lines.append(f"from cleanlab import {', '.join(theirs)}")
        return "\n".join(lines)

    source = FROM_PACKAGE.sub(split_from, source)
    used = sorted(set(DOTTED.findall(source)))
    source = DOTTED.sub(lambda m: f"{TARGET}.{m.group(1)}", source)
    # `import relabel.compat.cleanlab.filter` (rewritten from `import cleanlab.filter`) binds `relabel`, so a bare
    # `cleanlab.` elsewhere would need `import cleanlab`; make sure both names exist.
    source = DATA_HELPER.sub(lambda m: MODULE_USE.sub(r"_cleanlab_\1.", m.group(0)), source)
    header = "".join(f"import {TARGET}.{m}\n" for m in used)
    header += "".join(f"import cleanlab.{m} as _cleanlab_{m}\n" for m in MODULES)
    return header + "import cleanlab  # noqa: F401 (kept for the parts of cleanlab the tests still use)\n" + source


def run_pytest(folder: Path, xml_path: Path, keyword: str | None) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder),
           f"--junitxml={xml_path}", "-W", "ignore::DeprecationWarning", str(folder)]
    if keyword:
        cmd += ["-k", keyword]
    subprocess.run(cmd, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def outcomes(xml_path: Path) -> dict[str, tuple[str, str]]:
    """test id -> (outcome, failure text) from pytest's JUnit XML; collection errors count as failures."""
    result = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rpartition('.')[2]}::{case.get('name')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            result[name] = ("failed", (problem.get("message") or "") + "\n" + (problem.text or ""))
        elif case.find("skipped") is not None:
            result[name] = ("skipped", "")
        else:
            result[name] = ("passed", "")
    return result


def reason(name: str, text: str) -> str:
    """Why a test failed under relabel, from its name and the error lines of its failure (first rule wins)."""
    # pytest echoes the test's source before the error; only the "E ..." lines and the message say what failed.
    error = "\n".join(line for line in text.splitlines() if line.startswith("E ") or not line.startswith(" "))
    if "multilabel" in name.lower() or "multi_label" in name.lower() or "single-label data only" in error:
        return "multi-label (not supported until the multi-label issue)"
    if re.search(r"has no attribute '_\w+'|cannot import name '_\w+'", error):
        return "cleanlab private helper (not part of the public API)"
    if re.search(r"has no attribute '\w+'|cannot import name '\w+'|unexpected keyword argument", error):
        return "public name or argument relabel does not provide"
    if re.search(r"^E\s+(AssertionError: )?assert '.*' in |Regex pattern did not match|DID NOT RAISE", error,
                 re.MULTILINE):
        return "error type or wording differs from cleanlab's"
    # cleanlab asserts on some bad arguments; relabel raises its own ValueError subclass (compat/__init__ says so).
    if "pytest.raises(AssertionError)" in text and re.search(r"^E\s+relabel\.errors\.\w+:", error, re.MULTILINE):
        return "error type or wording differs from cleanlab's"
    if "do not sum to 1" in error or "outside [0, 1]" in error:
        return "deliberate: pred_probs that feed a score must be probability rows"
    return "other (look at it)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+", help="cleanlab test files, or folders of test_*.py files")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run against the installed cleanlab")
    args = parser.parse_args()
    files = sorted(f for p in args.paths for f in (p.glob("test_*.py") if p.is_dir() else [p]))
    if not files:
        print(f"No test_*.py files in {', '.join(map(str, args.paths))}.")
        return 2
    with tempfile.TemporaryDirectory(prefix="cleanlab-suite-") as tmp:
        tmp = Path(tmp)
        ours_dir, theirs_dir = tmp / "relabel", tmp / "cleanlab"
        ours_dir.mkdir()
        theirs_dir.mkdir()
        for f in files:
            source = f.read_text()
            (ours_dir / f.name).write_text(rewrite(source))
            (theirs_dir / f.name).write_text(source)
        run_pytest(ours_dir, tmp / "ours.xml", args.keyword)
        ours = outcomes(tmp / "ours.xml")
        theirs = {}
        if not args.no_baseline:
            run_pytest(theirs_dir, tmp / "theirs.xml", args.keyword)
            theirs = outcomes(tmp / "theirs.xml")

    def count(result, outcome):
        return sum(1 for o, _ in result.values() if o == outcome)

    print(f"cleanlab test files: {', '.join(f.name for f in files)}")
    print(f"relabel.compat.cleanlab: {count(ours, 'passed')} passed, {count(ours, 'failed')} failed, "
          f"{count(ours, 'skipped')} skipped (of {len(ours)})")
    if theirs:
        print(f"installed cleanlab (baseline): {count(theirs, 'passed')} passed, {count(theirs, 'failed')} failed, "
              f"{count(theirs, 'skipped')} skipped (of {len(theirs)})")
    groups = defaultdict(list)
    for name, (outcome, text) in sorted(ours.items()):
        if outcome != "failed":
            continue
        if theirs.get(name, ("", ""))[0] == "failed":
            groups["fails with the installed cleanlab too (test file newer/older than cleanlab 2.9.0)"].append(name)
        else:
            groups[reason(name, text)].append(name)
    for why, names in sorted(groups.items()):
        print(f"\n{why}: {len(names)}")
        for name in names:
            print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
