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


# --- sizes: a class read in one sitting ----------------------------------------------

# The engine's class holds the run's lifecycle only; the rest lives in the rooms it uses.
REPORTER_MAX_LINES = 250
# More instance fields than this in one class is state no reader keeps in mind.
MAX_FIELDS = 12


def _classes() -> list[tuple[Path, ast.ClassDef]]:
    return [
        (path, node)
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    ]


def _fields(cls: ast.ClassDef) -> set[str]:
    """Every attribute a method of ``cls`` assigns on ``self``."""
    fields = set()
    for node in ast.walk(cls):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                if (
                    isinstance(part, ast.Attribute)
                    and isinstance(part.value, ast.Name)
                    and part.value.id == "self"
                ):
                    fields.add(part.attr)
    return fields


def test_the_reporter_reads_in_one_sitting() -> None:
    (reporter,) = [cls for path, cls in _classes() if cls.name == "Reporter"]
    assert reporter.end_lineno is not None
    lines = reporter.end_lineno - reporter.lineno + 1
    assert lines <= REPORTER_MAX_LINES, f"Reporter is {lines} lines"


@pytest.mark.parametrize(("path", "cls"), _classes(), ids=lambda value: getattr(value, "name", ""))
def test_no_class_holds_more_than_a_dozen_fields(path: Path, cls: ast.ClassDef) -> None:
    fields = _fields(cls)
    assert len(fields) <= MAX_FIELDS, f"{path.name}:{cls.name} has {sorted(fields)}"


def test_the_field_count_sees_every_assignment() -> None:
    source = "class C:\n def f(self):\n  self.a = 1\n  self.b += 1\n  self.c: int = 2\n  x.d = 3\n"
    (cls,) = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)]
    assert _fields(cls) == {"a", "b", "c"}


def test_the_condition_writer_is_built_in_one_place_per_path() -> None:
    """Once on the run's path (start-up, when the Job is named) and once for an invalid
    environment (app.py), never rebuilt under a changing Job name."""
    built = [
        f"{path.parent.name}/{path.name}"
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "ConditionWriter"
    ]
    assert sorted(built) == ["shell/app.py", "shell/startup.py"]


# --- no import cycle ----------------------------------------------------------------------


def _module_name(path: Path) -> str:
    return f"status_reporter.{path.parent.name}.{path.stem}"


def _imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, at the top or inside a function."""
    known = {_module_name(p) for p in MODULES}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found - {_module_name(path)}


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph``, or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return []


def test_no_module_imports_itself_through_others() -> None:
    graph = {_module_name(path): _imports(path) for path in MODULES}
    assert _cycle(graph) == []


def test_the_cycle_search_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []
