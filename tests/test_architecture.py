"""The house keeps its rooms: no import cycles, and every import points down the layers.

    app (cli, demo, service, compat, the public API in relabel/__init__) -> report -> loop -> connectors
        -> config -> models -> scoring -> the small shared modules (errors, results, progress, ...)

Every import counts, also those inside functions and under TYPE_CHECKING: a lazy import is still a dependency,
and a cycle hidden in a function is the one that bites when someone moves it to the top. The README section
"How the code is laid out" explains the layers.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("relabel", "connectors")

SHARED = {"relabel.errors", "relabel.results", "relabel.progress", "relabel.redaction", "relabel.atomic_files",
          "relabel.about"}
# (layer, prefix): a module belongs to the first row whose prefix it has. Higher layers may import lower ones.
LAYERS = (
    (1, "relabel.scoring"),
    (2, "relabel.models"),
    (3, "relabel.config"),
    (4, "connectors"),
    (5, "relabel.loop"),
    (6, "relabel.report"),
    (7, "relabel.service"),
    (7, "relabel.compat"),
    (7, "relabel.cli"),
    (7, "relabel.demo"),
    (7, "relabel.demo_data"),
    (7, "relabel.server"),
    (7, "relabel"),       # the public API re-exports from every layer
)
LAYER_NAMES = {0: "shared", 1: "scoring", 2: "models", 3: "config", 4: "connectors", 5: "loop", 6: "report", 7: "app"}


def layer_of(module: str) -> int:
    if module in SHARED:
        return 0
    for layer, prefix in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in tests/test_architecture.py")


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                # `from relabel import progress` imports a module; `from relabel import DISTRIBUTION` the package.
                target = f"{source}.{alias.name}"
                found.add(target if target in modules else source)
    return {m for m in found if m in modules and m != name}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} ({LAYER_NAMES[layer_of(a)]}) imports {b} ({LAYER_NAMES[layer_of(b)]})"
                  for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_imports_point_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_every_subpackage_says_what_lives_there_and_what_it_may_import():
    for init in sorted((ROOT / "relabel").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "import" in doc, f"{init.relative_to(ROOT)} needs a docstring naming what it may import"


@pytest.mark.parametrize("plant, expected", [
    ("from relabel.loop.store import Store\n", "relabel.scoring.annotations (scoring) imports relabel.loop.store (loop)"),
    ("from relabel.scoring import consensus_em\n", "cycle"),
])
def test_the_checks_catch_a_planted_import(tmp_path, plant, expected):
    # A copy of the tree with one bad import added to a scoring module: the checks must name it.
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text())
    planted = tmp_path / "relabel" / "scoring" / ("annotations.py" if "loop" in plant else "fitted_em.py")
    planted.write_text(planted.read_text() + "\n\ndef _planted():\n    " + plant)
    graph = import_graph(tmp_path)
    if expected == "cycle":
        assert any("relabel.scoring.fitted_em" in c and "relabel.scoring.consensus_em" in c for c in cycles(graph))
    else:
        assert expected in upward_imports(graph)
