"""No import circle among the project's modules, read with the standard library's ``ast``.

Every ``.py`` under ``handson/`` (and ``app/`` once it has more than one module) is a
module of the graph; an edge is an import of one of them, wherever it stands: at the top,
inside a function, or under ``if TYPE_CHECKING:`` (a circle there is still a circle of
the design, and the first run-time import in it breaks the program). An import of a
package is an import of its ``__init__``; ``from pkg import name`` where ``pkg/name.py``
exists is an import of that submodule. Importing ``a.b.c`` also runs ``a`` and ``a.b``,
but those implicit edges are not drawn: a package's ``__init__`` importing its own
submodules would otherwise close a circle with every submodule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sources() -> list[Path]:
    sources = [ROOT / "handson"]
    if len(list((ROOT / "app").rglob("*.py"))) > 1:
        sources.append(ROOT / "app")
    return sources


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for source in _sources()
        for path in sorted(source.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The project module ``name`` names: itself, or its longest known prefix."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for each import in the module ``name``."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known(alias.name, modules)
                if target is not None:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package[: len(package) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in modules else _known(base, modules)
                if target is not None:
                    yield target, node.lineno


def _graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: line of its first import}."""
    modules = _modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for target, line in _imports(name, path, modules):
            edges.setdefault(target, line)
    return graph


def _components(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _circle(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """A shortest circle through the component's first module, as a path back to it."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node]):
            if target == start:
                return [*paths[node], start]
            if target in inside and target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"no circle through {start}")  # a component always has one


def _spelled(graph: dict[str, dict[str, int]], circle: list[str]) -> str:
    modules = _modules()
    steps = [
        f"  {modules[a].relative_to(ROOT)}:{graph[a][b]} imports {b}"
        for a, b in zip(circle, circle[1:], strict=False)
    ]
    return " -> ".join(circle) + "\n" + "\n".join(steps)


def _circles(graph: dict[str, dict[str, int]]) -> list[str]:
    """Each group of modules that import one another, and one circle through it."""
    return [
        f"{len(component)} modules: {', '.join(component)}\n"
        + _spelled(graph, _circle(graph, component))
        for component in _components(graph)
        if len(component) > 1 or component[0] in graph[component[0]]
    ]


def test_the_graph_reads_the_known_imports() -> None:
    graph = _graph()
    assert len(graph) > 50
    # A plain import, a submodule named in "from pkg import name", a TYPE_CHECKING import.
    assert "handson.sandbox.dataplane.engine" in graph["handson.sandbox.server"]
    assert "handson.sandbox.dataplane.moto_bridge" in graph["handson.sandbox.dataplane.tasks"]
    assert (
        "handson.sandbox.dataplane.engine" in graph["handson.sandbox.dataplane.moto_bridge.hooks"]
    )
    assert (
        "handson.sandbox.dataplane.moto_bridge.views"
        in graph["handson.sandbox.dataplane.moto_bridge"]
    )


def test_the_cycle_finder_spells_a_circle_out() -> None:
    graph: dict[str, dict[str, int]] = {
        "a": {"b": 1},
        "b": {"c": 2},
        "c": {"a": 3, "d": 4},
        "d": {},
    }
    components = [c for c in _components(graph) if len(c) > 1]
    assert components == [["a", "b", "c"]]
    assert _circle(graph, components[0]) == ["a", "b", "c", "a"]


def test_no_import_circle() -> None:
    circles = _circles(_graph())
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_data_plane_views_of_moto_import_no_data_plane_module() -> None:
    # The hooks call the data plane back; the views are what the data plane calls.
    views = _graph()["handson.sandbox.dataplane.moto_bridge.views"]
    assert not [m for m in views if m.startswith("handson.")], views


def test_only_the_connection_and_the_cli_import_the_sandbox() -> None:
    importers = sorted(
        name
        for name, edges in _graph().items()
        if not (name == "handson.sandbox" or name.startswith("handson.sandbox."))
        and any(m == "handson.sandbox" or m.startswith("handson.sandbox.") for m in edges)
    )
    assert importers == ["handson.cli", "handson.connection"]
