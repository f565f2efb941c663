"""The import graph of the engine and the toolkit has no cycles.

A cycle means two modules cannot be understood (or tested) apart; it is how `ops.py` ↔
`ops_cli.py` came to run a module twice. Every import counts, including ones deferred
into a function body: deferring hides a cycle, it does not remove it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TREES = {"bot4": ROOT / "src" / "bot4", "ci": ROOT / "ci"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top, base in TREES.items():
        for path in sorted(base.rglob("*.py")):
            parts = [top, *path.relative_to(base).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, known: set[str]) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for imported in names:
            # the deepest known module the import names (a package, or a module in it)
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                yield target


def graph() -> dict[str, set[str]]:
    """Module → the project modules it imports."""
    modules = _modules()
    known = set(modules)
    return {m: set(_imports(m, p, known)) for m, p in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


@pytest.mark.e2e
def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


@pytest.mark.e2e
def test_graph_sees_deferred_and_relative_imports() -> None:
    edges = graph()
    assert "ci.ops.cli" in edges["ci.ops.__main__"]
    assert "ci.errors" in edges["ci.gate.toolchain"]
    assert "ci.cli" not in edges["ci.errors"]


@pytest.mark.e2e
def test_the_toolkit_reaches_the_engine_through_one_adapter() -> None:
    """ci/ depends on bot4 only in ci.release.bot4_signer (bot4's secrets backends as a
    ``ci.release.keys.Signer``), declared as bot4-ci's ``signing`` extra."""
    edges = graph()
    reaching = {
        module
        for module, targets in edges.items()
        if module.startswith("ci.") and any(t == "bot4" or t.startswith("bot4.") for t in targets)
    }
    assert reaching == {"ci.release.bot4_signer"}
