"""README "Quick start": which Pythons make install takes, and the toolchain check's logic."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from harness.controlplane import ROOT
from harness.toolchain import (
    Interpreter,
    Outcome,
    _failed,
    candidates,
    choose,
    parse_description,
    pyenv_root,
    unsupported,
    verdict,
)

CHECK_PYTHON = ROOT / "hack" / "check-python.py"


def check_python() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_python", CHECK_PYTHON)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- make install: which interpreter it takes ----------------------------------------------


@pytest.mark.parametrize("minor", [11, 12, 13])
def test_a_supported_python_with_venv_is_taken(minor: int) -> None:
    problem = check_python().problem
    assert problem((3, minor), "/x/python3", "/x", has_venv=True, debian=False) is None


@pytest.mark.parametrize("version", [(3, 10), (3, 14), (2, 7)])
def test_an_unsupported_python_is_refused_naming_what_to_use(version: tuple[int, int]) -> None:
    problem = check_python().problem
    line = problem(version, "/usr/bin/python3", "/usr", has_venv=True, debian=True)
    found = f"{version[0]}.{version[1]}"
    wanted = "status-reporter needs Python 3.11, 3.12 or 3.13"
    assert line == f"/usr/bin/python3 is Python {found}; {wanted}"


def test_debians_python_without_venv_names_the_package() -> None:
    problem = check_python().problem
    line = problem((3, 12), "/usr/bin/python3", "/usr", has_venv=False, debian=True)
    assert line == "/usr/bin/python3 has no venv module: install Debian's package python3.12-venv"


def test_another_python_without_venv_is_refused() -> None:
    problem = check_python().problem
    line = problem((3, 11), "/opt/py/bin/python3", "/opt/py", has_venv=False, debian=True)
    assert line == "/opt/py/bin/python3 has no venv module (ensurepip): use a Python built with it"


def test_an_interpreter_without_venv_gets_one_line(tmp_path: Path) -> None:
    # A fake interpreter: this one, with an ensurepip that cannot be imported.
    shadow = tmp_path / "ensurepip"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('not here')\n")
    done = subprocess.run(
        [sys.executable, str(CHECK_PYTHON)],
        env={"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: {sys.executable} has no venv module")


def test_this_interpreter_is_taken() -> None:
    done = subprocess.run(
        [sys.executable, str(CHECK_PYTHON)], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")


# --- the toolchain check ------------------------------------------------------------------


def test_pyenv_is_found_without_its_shims(tmp_path: Path) -> None:
    assert pyenv_root({"PYENV_ROOT": "/opt/pyenv"}, tmp_path) == Path("/opt/pyenv")
    assert pyenv_root({}, tmp_path) == tmp_path / ".pyenv"


def test_candidates_are_pyenv_versions_and_system_pythons(tmp_path: Path) -> None:
    pyenv, system = tmp_path / "pyenv", tmp_path / "bin"
    for name in ("3.11.7", "3.13.0"):
        (pyenv / "versions" / name / "bin").mkdir(parents=True)
        (pyenv / "versions" / name / "bin" / "python3").touch()
    system.mkdir()
    for name in ("python3.11", "python3.11-config", "python3", "python3.12m", "python3.12"):
        (system / name).touch()
    assert candidates(pyenv, [system]) == [
        pyenv / "versions/3.11.7/bin/python3",
        pyenv / "versions/3.13.0/bin/python3",
        system / "python3.11",
        system / "python3.12",
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("CPython 3 12 1 23.2.1", ("CPython", (3, 12, 1), "23.2.1")),
        ("CPython 3 11 2 -", ("CPython", (3, 11, 2), "-")),
        ("PyPy 3 10 14 24.0", ("PyPy", (3, 10, 14), "24.0")),
        ("", None),
        ("Python 2.7.18", None),
    ],
)
def test_an_interpreters_description_is_read(
    line: str, expected: tuple[str, tuple[int, int, int], str] | None
) -> None:
    found = parse_description(Path("/p"), line)
    if expected is None:
        assert found is None
    else:
        assert found == Interpreter(Path("/p"), *expected)


def interpreter(path: str, version: tuple[int, int, int], kind: str = "CPython") -> Interpreter:
    return Interpreter(Path(path), kind, version, "23.2.1")


def test_only_supported_cpythons_are_chosen_once_each(tmp_path: Path) -> None:
    real = tmp_path / "python3.12"
    real.touch()
    alias = tmp_path / "python3"
    alias.symlink_to(real)
    found = [
        interpreter("/usr/bin/python3.11", (3, 11, 2)),
        interpreter(str(alias), (3, 12, 1)),
        interpreter(str(real), (3, 12, 1)),
        interpreter("/p/3.10/bin/python3", (3, 10, 13)),
        interpreter("/p/3.14/bin/python3", (3, 14, 0)),
        interpreter("/p/pypy/bin/python3", (3, 11, 9), kind="PyPy"),
        interpreter("/p/3.11.7/bin/python3", (3, 11, 7)),
    ]
    assert [str(i.path) for i in choose(found)] == [
        "/usr/bin/python3.11",
        "/p/3.11.7/bin/python3",
        str(alias),
    ]


def test_a_newer_cpython_is_named_not_tried() -> None:
    found = [
        interpreter("/p/3.14/bin/python3", (3, 14, 0)),
        interpreter("/p/3.10/bin/python3", (3, 10, 13)),
        interpreter("/p/3.13/bin/python3", (3, 13, 0)),
        interpreter("/p/pypy/bin/python3", (3, 15, 0), kind="PyPy"),
    ]
    assert [str(i.path) for i in unsupported(found)] == ["/p/3.14/bin/python3"]


def outcome(version: tuple[int, int, int], step: str = "passed") -> Outcome:
    detail = "893 passed" if step == "passed" else "error: something"
    return Outcome(interpreter(f"/p/{version}", version), step, 40.0, 90.0, detail)


def test_two_minor_versions_passing_pass_the_check() -> None:
    assert verdict([outcome((3, 11, 7)), outcome((3, 13, 0))], allow_skips=False) == []


def test_one_minor_version_fails_the_check_naming_what_is_missing() -> None:
    problems = verdict([outcome((3, 11, 2)), outcome((3, 11, 7))], allow_skips=False)
    assert problems == [
        "2 supported minor versions must pass, 1 did (3.11): install one of 3.12, 3.13 "
        "(pyenv install, or Debian's python3.X and python3.X-venv)"
    ]


def test_no_interpreter_fails_the_check_unless_skips_are_allowed() -> None:
    assert verdict([], allow_skips=False) == [
        "2 supported minor versions must pass, 0 did (none): install one of 3.11, 3.12, 3.13 "
        "(pyenv install, or Debian's python3.X and python3.X-venv)"
    ]
    assert verdict([], allow_skips=True) == []


def test_every_interpreter_found_must_pass() -> None:
    outcomes = [outcome((3, 11, 7)), outcome((3, 12, 1)), outcome((3, 13, 0), "make install")]
    assert verdict(outcomes, allow_skips=True) == [
        "/p/(3, 13, 0) (3.13.0): make install failed: error: something"
    ]


def test_a_failed_step_shows_its_logs_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "install.log"
    log.write_text("".join(f"line {n}\n" for n in range(1, 31)) + "\n")
    python = interpreter("/usr/bin/python3.11", (3, 11, 2))
    assert _failed(python, "make install", (12.0, 0.0), log) == Outcome(
        python, "make install", 12.0, 0.0, "line 30"
    )
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == "--- make install with /usr/bin/python3.11 (3.11.2), last lines:"
    assert shown[1:] == [f"line {n}" for n in range(11, 31)]
