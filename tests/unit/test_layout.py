"""The package's layers: each module imports only its own layer and those below it
(docs/design.md "Layout"), and says in its docstring what it holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import status_reporter

PACKAGE = Path(status_reporter.__file__).parent
# Bottom to top.
LAYERS = ("core", "base", "api", "monitors", "shell")
MODULES = sorted(p for layer in LAYERS for p in (PACKAGE / layer).glob("*.py"))


def _imported_layers(path: Path) -> set[str]:
    """The layers of every ``status_reporter`` module that ``path`` imports, anywhere."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "status_reporter" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
    return found


def test_every_module_belongs_to_a_layer() -> None:
    loose = {p.name for p in PACKAGE.glob("*.py")}
    assert loose == {"__init__.py", "__main__.py"}
    assert {p.parent.name for p in MODULES} == set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_imports_only_go_down(path: Path) -> None:
    layer = LAYERS.index(path.parent.name)
    above = {name for name in _imported_layers(path) if LAYERS.index(name) > layer}
    assert not above, f"{path.parent.name}/{path.name} imports from {sorted(above)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_module_says_what_it_holds(path: Path) -> None:
    assert ast.get_docstring(ast.parse(path.read_text()))
