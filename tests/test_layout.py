"""The layers stay as designed: the library below, the jobs above, no import cycle (issue #23).

Every import in real3d/**.py is read from the source (at module level and inside functions alike), so an
import added anywhere is seen without running it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "real3d"
JOBS = ("real3d.jobs", "real3d.cli", "real3d.__main__")  # the job layer: subcommands, argparse, dispatch
API = ("real3d",)  # the package's lazy `real3d.generate` entry point may name a job
METHOD = ("real3d.jobs", "real3d.system", "real3d.guidance", "real3d.render.nerf", "real3d.render.dmtet")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The real3d modules that `path` imports (`from pkg import name` counts as pkg.name where that is a module)."""
    name, found = module_name(path), set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("real3d")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.startswith("real3d"):
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return found - {name}


def graph() -> dict[str, set[str]]:
    paths = sorted(ROOT.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports(p, modules) for p in paths}


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one() -> None:  # a checker that cannot fail proves nothing
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_library_module_imports_a_job() -> None:
    upward = {
        m: sorted(d for d in deps if within(d, JOBS))
        for m, deps in graph().items()
        if not within(m, JOBS) and m not in API
    }
    assert {m: d for m, d in upward.items() if d} == {}


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("real3d.toyworld", METHOD),  # the toy world judges the method; it must not depend on it
        ("real3d.priors", ("real3d.toyworld", *JOBS)),  # the priors package is usable on its own
    ],
)
def test_packages_stay_independent(package: str, forbidden: tuple[str, ...]) -> None:
    g = graph()
    bad = {m: sorted(d for d in deps if within(d, forbidden)) for m, deps in g.items() if within(m, (package,))}
    assert {m: d for m, d in bad.items() if d} == {}
    assert any(within(m, (package,)) for m in g)  # the package is there to be checked
