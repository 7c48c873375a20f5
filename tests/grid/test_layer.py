"""The grid is the bottom of mem8's numerics: it imports only itself and the bottom layer."""

from __future__ import annotations

import ast
from pathlib import Path

import mem8.grid

ALLOWED = ("mem8.grid", "mem8.scope", "mem8.text")


def imported(path: Path) -> set[str]:
    """Every module a source file imports, anywhere in it (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(f"{package}.") for package in packages)


def test_the_grid_imports_nothing_above_it() -> None:
    upward = {
        f"{path.name}: {name}"
        for path in sorted(Path(mem8.grid.__file__).parent.glob("*.py"))
        for name in imported(path)
        if _within(name, ("mem8",)) and not _within(name, ALLOWED)
    }
    assert upward == set()
