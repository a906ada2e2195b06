"""The airflow_mlops package has no import circle, and no module uses another module's private names.

The graph is built from the source with `ast`: every import of an airflow_mlops module, at the top
level and inside functions (an import inside a function only hides a circle until it runs), but not
the imports under `if TYPE_CHECKING:`. A name imported through a package's `__init__` counts as an
import of the module that defines it, so a package's own modules are not a circle with its `__init__`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PACKAGE = "airflow_mlops"
SOURCE = Path(__file__).resolve().parents[2] / "plugins" / PACKAGE

# (importing module, private name) still used across modules inside core/registry, core/drift and core/config:
# being split in issue 23 (empty this once the splits have landed).
ALLOWED_PRIVATE: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Use:
    """One import (or attribute use) of another airflow_mlops module, where it is written."""

    importer: str
    target: str
    name: str | None
    line: int

    def where(self) -> str:
        path = modules()[self.importer].relative_to(SOURCE.parent)
        what = f"{self.target}.{self.name}" if self.name else self.target
        return f"{path}:{self.line} uses {what}"


@dataclass
class Graph:
    edges: dict[str, dict[str, Use]] = field(default_factory=dict)
    private: list[Use] = field(default_factory=list)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def is_package(module: str) -> bool:
    return modules()[module].name == "__init__.py"


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of the tree except the bodies of `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package(module):
        base = base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def reexports(package: str) -> dict[str, str]:
    """A package `__init__`'s names imported at its top level from an airflow_mlops module: name -> module."""
    found = {}
    tree = ast.parse(modules()[package].read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            source = absolute(package, node)
            if source.split(".")[0] == PACKAGE:
                for alias in node.names:
                    found[alias.asname or alias.name] = source
    return found


def defining_module(module: str, name: str, seen: int = 0) -> str:
    """Where `module.name` comes from, following the re-exports of package `__init__`s."""
    if seen < 10 and is_package(module):
        source = reexports(module).get(name)
        if source is not None:
            if f"{source}.{name}" in modules():
                return f"{source}.{name}"
            if source in modules():
                return defining_module(source, name, seen + 1)
    return module


def longest_module(dotted: list[str]) -> tuple[str | None, list[str]]:
    """The longest prefix of a dotted name that is a module, and the rest of the name."""
    for end in range(len(dotted), 0, -1):
        candidate = ".".join(dotted[:end])
        if candidate in modules():
            return candidate, dotted[end:]
    return None, dotted


def dotted_name(node: ast.expr) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def module_uses(module: str) -> Iterator[tuple[Use, bool]]:
    """Each use of another airflow_mlops module by `module`, and whether it names a private name."""
    tree = ast.parse(modules()[module].read_text(), filename=str(modules()[module]))
    bound: dict[str, str] = {}  # a local name bound to an airflow_mlops module
    attributes = []
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target, _ = longest_module(alias.name.split("."))
                if target is None:
                    continue
                yield Use(module, target, None, node.lineno), False
                if alias.asname:
                    bound[alias.asname] = target
                else:
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            if source not in modules():
                continue
            for alias in node.names:
                if f"{source}.{alias.name}" in modules():
                    target = f"{source}.{alias.name}"
                    bound[alias.asname or alias.name] = target
                    yield Use(module, target, None, node.lineno), False
                elif alias.name == "*":
                    yield Use(module, source, None, node.lineno), False
                else:
                    target = defining_module(source, alias.name)
                    own_reexport = is_package(module) and source.startswith(f"{module}.")
                    yield Use(module, target, alias.name, node.lineno), is_private(alias.name) and not own_reexport
        elif isinstance(node, ast.Attribute):
            attributes.append(node)
    for node in attributes:
        dotted = dotted_name(node)
        if dotted is None or dotted[0] not in bound:
            continue
        target, rest = longest_module([*bound[dotted[0]].split("."), *dotted[1:]])
        if target is None or target == module or not rest:
            continue
        if node.attr == rest[0]:  # the outermost attribute naming a module's member: count it once
            yield Use(module, defining_module(target, rest[0]), rest[0], node.lineno), is_private(rest[0])


def build() -> Graph:
    graph = Graph()
    for module in modules():
        edges = graph.edges.setdefault(module, {})
        for use, private in module_uses(module):
            if use.target != module:
                edges.setdefault(use.target, use)
            if private:
                graph.private.append(use)
    return graph


def circles(edges: dict[str, dict[str, Use]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def one_cycle(edges: dict[str, dict[str, Use]], component: list[str]) -> list[Use]:
    """A shortest cycle through the component's first module, as the imports that make it."""
    members = set(component)
    start = component[0]
    paths: dict[str, list[Use]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt, use in sorted(edges[node].items()):
                if nxt == start:
                    return [*paths[node], use]
                if nxt in members and nxt not in paths:
                    paths[nxt] = [*paths[node], use]
                    following.append(nxt)
        frontier = following
    return []


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking_ones() -> None:
    graph = build()
    assert "airflow_mlops.core.evaluation.decision" in graph.edges["airflow_mlops.core.evaluation.gate"]
    # operators import core inside execute() only: those imports are edges too
    assert any(target.startswith("airflow_mlops.core.") for target in graph.edges["airflow_mlops.operators.deploy"])
    uses = [use for use, _ in module_uses("airflow_mlops.cli")]
    assert all(use.line > 25 for use in uses), "cli.py's TYPE_CHECKING imports are not runtime edges"


def test_circles_are_found_and_named() -> None:
    a, b, c = "airflow_mlops.a", "airflow_mlops.b", "airflow_mlops.c"
    edges = {a: {b: Use(a, b, None, 1)}, b: {c: Use(b, c, None, 2)}, c: {a: Use(c, a, None, 3)}}
    assert circles(edges) == [[a, b, c]]
    assert [use.target for use in one_cycle(edges, [a, b, c])] == [b, c, a]
    del edges[c][a]
    assert circles(edges) == []


def test_no_import_circle() -> None:
    edges = build().edges
    found = circles(edges)
    report = [
        " -> ".join([component[0], *(use.target for use in cycle)])
        + "\n      "
        + "\n      ".join(use.where() for use in cycle)
        for component in found
        for cycle in [one_cycle(edges, component)]
    ]
    assert not found, (
        "import circles (move the piece both need to the module below them, or to a small new one):\n  "
        + "\n  ".join(report)
    )


def test_no_module_uses_another_modules_private_names() -> None:
    private = build().private
    where = sorted(use.where() for use in private if (use.importer, use.name) not in ALLOWED_PRIVATE)
    assert not where, (
        "private names used outside their module (make the name public, or move the code that needs it):\n  "
        + "\n  ".join(where)
    )
