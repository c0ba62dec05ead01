"""The import graph, read from the source with ``ast`` (nothing is imported).

Every ``import`` and ``from … import`` counts, also those inside functions (the lazy
imports that keep ``yolocam --help`` fast are still dependencies); imports under
``if TYPE_CHECKING:`` count for the "who may import what" rules but not for cycles
(they never run). ``from package import name`` is an edge to ``package.name`` when that
is a module, else to the package. A package's ``__init__`` is not implied by importing
one of its modules (as import-linter and grimp count it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = "yolocam_core"
CLI = "yolocam_core.cli"

#: Cycles known and scheduled for removal (none now). The test also fails on an entry
#: that no longer matches a cycle, so an entry cannot be forgotten.
PENDING_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    """Module name -> file, for the library, the app package, the app pages and bench."""
    files = {}
    for pattern in ("yolocam_core/**/*.py", "yolocam_app/**/*.py", "app_pages/*.py", "bench/*.py"):
        for path in sorted(ROOT.glob(pattern)):
            files[module_name(path)] = path
    files["app"] = ROOT / "app.py"
    return files


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:``."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    inside.update(id(n) for n in ast.walk(child))
    return inside


def imports_of(name: str, path: Path, modules: set[str]) -> Iterator[tuple[str, bool]]:
    """(imported module, runs at run time) for every import statement of one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    static_only = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        runs = id(node) not in static_only
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, runs
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in modules else base), runs


def import_graph(runtime_only: bool) -> dict[str, set[str]]:
    """Module -> the project modules (or, outside the project, top-level names) it imports."""
    files = source_files()
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges = graph.setdefault(name, set())
        for target, runs in imports_of(name, path, modules):
            if runtime_only and not runs:
                continue
            edges.add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the first module of a component, for the message."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return component


def core_cycles() -> tuple[list[list[str]], dict[str, set[str]]]:
    graph = import_graph(runtime_only=True)
    core = {m: {t for t in e if t.startswith(CORE)} for m, e in graph.items() if m.startswith(CORE)}
    return strongly_connected(core), core


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph(runtime_only=False)
    # a lazy import inside a function
    assert "yolocam_core.explainer" in graph["yolocam_core.cli.explain"]
    # `from yolocam_core import render` is the module, not the package
    assert "yolocam_core.render" in graph["yolocam_core.outputs"]
    assert "tensorflow" in graph["yolocam_core.runtime"]


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["e"]]
    assert one_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_no_import_cycles_in_the_library():
    cycles, graph = core_cycles()
    report = "\n".join(" -> ".join(one_cycle(graph, c)) for c in cycles)
    unexpected = [c for c in cycles if frozenset(c) not in PENDING_CYCLES]
    stale = [sorted(p) for p in PENDING_CYCLES if p not in {frozenset(c) for c in cycles}]
    assert not unexpected, f"import cycles in yolocam_core:\n{report}"
    assert not stale, f"PENDING_CYCLES lists cycles that are gone; remove them: {stale}"


def test_nothing_outside_the_cli_imports_it():
    graph = import_graph(runtime_only=False)
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if not (module == CLI or module.startswith(CLI + "."))
        for target in targets
        if target == CLI or target.startswith(CLI + ".")
    )
    assert not offenders, "\n".join(offenders)


def test_the_library_imports_no_front_end():
    graph = import_graph(runtime_only=False)
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.startswith(CORE)
        for target in targets
        if target.split(".")[0] in ("streamlit", "yolocam_app", "app", "pages")
    )
    assert not offenders, "\n".join(offenders)
