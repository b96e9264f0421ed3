"""The import structure: no circle anywhere in the library, and the layers point one way.

Imports are read from the source (module level and inside functions alike), so a lazy import that
runs a layer backwards counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every dotted name an import statement of the file names (``from a import b`` gives a and a.b)."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(top: str) -> dict[str, set[str]]:
    files = {module_name(p): p for p in (REPO_ROOT / top).rglob("*.py")}
    return {name: {d for d in imported_names(path) if d in files and d != name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan). A package importing its own
    submodules (an __init__ re-exporting them) is not a circle."""
    edges = {m: {d for d in ds if not d.startswith(m + ".") and not m.startswith(d + ".")} for m, ds in graph.items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"p": {"p.x"}, "p.x": {"p"}}) == []  # a package and its own submodule


def test_the_library_has_no_import_circle():
    assert cycles(import_graph("pipeline")) == []


def closure(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Every module each module reaches, directly or through others. Importing ``a.b.c`` runs the
    ``__init__`` of ``a`` and ``a.b`` first, so a module reaches the packages above what it imports."""

    def with_parents(name: str) -> set[str]:
        parts = name.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & graph.keys()

    direct = {m: set().union(*(with_parents(d) for d in ds)) - {m} if ds else set() for m, ds in graph.items()}
    reach: dict[str, set[str]] = {}
    for start in graph:
        seen, todo = set(), list(direct[start])
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(direct[module])
        reach[start] = seen - {start}
    return reach


def test_reach_follows_imports_through_other_modules_and_parent_packages():
    graph = {"p": set(), "p.a": {"p.b"}, "p.b": {"q.c"}, "q": {"q.d"}, "q.c": set(), "q.d": set()}
    assert closure(graph)["p.a"] == {"p", "p.b", "q", "q.c", "q.d"}  # the __init__ of p and q run; q's imports q.d


def inside(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


# (lower, higher): nothing in `lower` reaches `higher`, through any chain of imports
RULES = [
    ("pipeline.stage_one", "pipeline.stage_two"),  # the two stages are two rooms: stage one knows no student
    ("pipeline.stage_one", "pipeline.training"),  # it reads checkpoints (pipeline.checkpoints) and audio only
    ("pipeline.stage_one", "pipeline.experiments"),
    ("pipeline.stage_two", "pipeline.stage_one"),  # stage two reads stores, never the code that wrote them
    ("pipeline.stage_two", "pipeline.experiments"),
    ("pipeline.training", "pipeline.stage_two"),  # training knows the KDSource record, never the join
    ("pipeline.training", "pipeline.stage_one"),
    ("pipeline.training", "pipeline.experiments"),
    ("pipeline.training", "pipeline.inference"),
    ("pipeline.checkpoints", "pipeline.training"),
    ("pipeline.store", "pipeline.training"),
    ("pipeline.store", "pipeline.models"),  # the format needs no model code (and no torch)
    ("pipeline.models", "pipeline.training"),
    ("pipeline.models", "pipeline.store"),
    ("pipeline.manifests", "pipeline.models"),
    ("pipeline.manifests", "pipeline.store"),
    ("pipeline.manifests", "pipeline.training"),
    ("pipeline.export", "pipeline.inference"),  # an export is read by predict, never the reverse
    ("pipeline.inference", "pipeline.training"),  # tagging needs a model and the front end, not the loop
    ("pipeline", "stages"),
    ("pipeline", "bench"),
]


@pytest.mark.parametrize("lower, higher", RULES)
def test_layers_point_one_way(lower, higher):
    graph = {**import_graph("pipeline"), **import_graph("stages"), **import_graph("bench")}
    reach = closure(graph)
    offenders = {m: sorted(d for d in reach[m] if inside(d, higher)) for m in graph if inside(m, lower)}
    assert {m: found for m, found in offenders.items() if found} == {}


def test_the_kd_target_is_built_in_one_place():
    """losses.kd_targets is the only function that turns teacher logits into KD targets, and the
    training loop's step is the only library code that calls it."""
    callers = []
    for path in (REPO_ROOT / "pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "kd_targets":
                callers.append(module_name(path))
    assert callers == ["pipeline.training.loop"]


def test_the_documented_path_of_a_clip_names_functions_that_exist():
    """docs/architecture.md lists one clip's path as `module.py:function` rows; each must be real."""
    import importlib
    import re

    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| \d+ \| `([\w/]+)\.py:([\w.]+)` \|", text, flags=re.M)
    assert len(rows) >= 10
    for path, qualified in rows:
        target = importlib.import_module("pipeline." + path.replace("/", "."))
        for part in qualified.split("."):
            target = getattr(target, part)
        assert callable(target), (path, qualified)


def test_the_generated_data_package_is_for_tests_and_benchmarks_only():
    """pipeline.testing writes made-up datasets and stores: no library or driver code may reach it."""
    graph = {**import_graph("pipeline"), **import_graph("stages")}
    reach = closure(graph)
    users = {
        m for m in graph if not inside(m, "pipeline.testing") and any(inside(d, "pipeline.testing") for d in reach[m])
    }
    assert users == set()
