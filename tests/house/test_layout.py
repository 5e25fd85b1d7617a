"""The house rules of docs/DESIGN.md section 1, checked on the source tree itself.

The import rules keep each program installable on its own (a camera device has no server or torch), and keep the
inference engine runnable without the fleet half (`edgefleet agent infer`). The size limits keep modules to one
job each: a file past them is usually two ideas."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("edgefleet", "models", "training", "fleet_server", "edge_agent")
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 80

# (package prefix, forbidden import prefixes, why)
IMPORT_RULES = [
    ("edge_agent.engine", ("edge_agent.fleet", "edge_agent.cli", "fleet_server", "training"),
     "the engine runs alone in `agent infer`"),
    ("edge_agent", ("fleet_server", "training", "torch"), "a device installs neither the server nor training"),
    ("fleet_server", ("edge_agent", "training", "torch"), "the server talks to agents only through edgefleet.protocol"),
    ("models", ("fleet_server", "edge_agent", "training", "torch", "fastapi"), "every program shares models"),
    ("edgefleet", ("fleet_server", "edge_agent", "training"),
     "the spine loads the programs by name (lazily), never by import"),
]
# Modules of the spine that exist to mount the programs: they name them in strings or import them inside a function.
SPINE_MOUNTS = {"edgefleet.demo", "edgefleet.model_cli", "edgefleet.demo_model"}


def python_modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imported_names(path: Path) -> Iterator[tuple[int, str]]:
    """Every absolute import in the file, at module level or inside functions (lazy imports count too)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def import_violations() -> list[str]:
    found = []
    for module, path in python_modules():
        for owner, forbidden, why in IMPORT_RULES:
            if not _within(module, owner) or module in SPINE_MOUNTS:
                continue
            for line, name in imported_names(path):
                if any(_within(name, bad) for bad in forbidden):
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {name} ({why})")
    return found


def test_import_rules_hold() -> None:
    assert import_violations() == []


def test_the_rule_checker_sees_a_violation(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from edge_agent.fleet.agent import Agent\n")
    assert [name for _, name in imported_names(source)] == ["edge_agent.fleet.agent"]
    assert _within("edge_agent.fleet.agent", "edge_agent.fleet") and not _within("edge_agent.fleetx", "edge_agent.fleet")


def long_functions(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield node.name, length


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_and_functions_stay_small(package: str) -> None:
    too_big = []
    for module, path in python_modules():
        if not _within(module, package):
            continue
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{path.relative_to(ROOT)}: {lines} lines")
        too_big += [f"{path.relative_to(ROOT)}: {name}() {n} lines" for name, n in long_functions(path)]
    assert too_big == []
