"""The toolchain check (``make test-toolchain``, part of ``make test``).

For every CPython on the machine that README "Quick start" supports (pyenv's versions,
found without its shims, and the system's ``/usr/bin/python3.X``, Debian's being the
image's), a clean clone of HEAD runs ``make install PYTHON=<it>`` and ``make test-unit``
in an empty environment: ``env -i`` with a plain PATH and a new HOME, so no ``PIP_*``
variable, user ``pip.conf`` or upgraded pip helps. Only the pip cache is shared
(``XDG_CACHE_HOME``), to save downloads, not to change what is installed. At least two
minor versions must be found and pass, or the run fails, naming what is missing, unless
``ALLOW_SKIPS=1``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.controlplane import ROOT
from harness.required import skips_allowed

SUPPORTED = ((3, 11), (3, 12), (3, 13))
# What a clean environment finds on PATH: the system's directories, no pyenv shims.
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM_DIRS = (Path("/usr/bin"), Path("/usr/local/bin"))
DEBIAN_VENV = ROOT / "hack" / "debian-venv.sh"
# Run by each interpreter: implementation, version, and the pip its ensurepip would seed.
DESCRIBE = (
    "import platform, sys\n"
    "try:\n    import ensurepip; pip = ensurepip.version()\n"
    "except Exception:\n    pip = '-'\n"
    "print(platform.python_implementation(), *sys.version_info[:3], pip)"
)
MIN_MINORS = 2


@dataclass(frozen=True)
class Interpreter:
    """A Python found on the machine."""

    path: Path
    implementation: str
    version: tuple[int, int, int]
    pip: str  # the pip version a new virtualenv starts from ("-" if none)

    @property
    def minor(self) -> tuple[int, int]:
        """Major and minor version."""
        return self.version[:2]

    @property
    def name(self) -> str:
        """How the report names it."""
        return f"{self.path} ({'.'.join(map(str, self.version))})"


@dataclass(frozen=True)
class Outcome:
    """What became of one interpreter in a clean clone."""

    interpreter: Interpreter
    step: str  # "passed", or the step that failed: "make install", "make test-unit"
    install_seconds: float
    test_seconds: float
    detail: str  # the step's last line of output

    @property
    def passed(self) -> bool:
        """Whether install and unit tests passed."""
        return self.step == "passed"


def pyenv_root(env: Mapping[str, str], home: Path) -> Path:
    """Where pyenv keeps its versions: PYENV_ROOT, else its default under HOME."""
    return Path(env.get("PYENV_ROOT") or home / ".pyenv")


def candidates(pyenv: Path, system_dirs: Iterable[Path]) -> list[Path]:
    """Executables that may be a Python 3: pyenv's versions and the system's python3.X."""
    found = sorted(pyenv.glob("versions/*/bin/python3"))
    for directory in system_dirs:
        found += sorted(
            p for p in directory.glob("python3.*") if re.fullmatch(r"python3\.\d+", p.name)
        )
    return found


def parse_description(path: Path, line: str) -> Interpreter | None:
    """An Interpreter from the line DESCRIBE prints, or None if it is not one."""
    fields = line.split()
    if len(fields) != 5 or not all(f.isdigit() for f in fields[1:4]):
        return None
    major, minor, micro = (int(f) for f in fields[1:4])
    return Interpreter(path, fields[0], (major, minor, micro), fields[4])


def describe(path: Path) -> Interpreter | None:
    """Ask ``path`` what it is; None if it cannot say (not a Python 3, broken)."""
    try:
        done = subprocess.run(
            [str(path), "-c", DESCRIBE], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    return parse_description(path, done.stdout.strip()) if done.returncode == 0 else None


def choose(found: Iterable[Interpreter]) -> list[Interpreter]:
    """The CPythons README supports, one per executable (pyenv's aliases are one)."""
    chosen: dict[Path, Interpreter] = {}
    for interpreter in found:
        if interpreter.implementation == "CPython" and interpreter.minor in SUPPORTED:
            chosen.setdefault(interpreter.path.resolve(), interpreter)
    return sorted(chosen.values(), key=lambda i: (i.version, str(i.path)))


def unsupported(found: Iterable[Interpreter]) -> list[Interpreter]:
    """CPythons newer than README supports: named in the report, not tried."""
    return [i for i in found if i.implementation == "CPython" and i.minor > SUPPORTED[-1]]


def verdict(outcomes: Sequence[Outcome], *, allow_skips: bool) -> list[str]:
    """The problems that fail the check (none: it passed)."""
    problems = [
        f"{o.interpreter.name}: {o.step} failed: {o.detail}" for o in outcomes if not o.passed
    ]
    passed = sorted({o.interpreter.minor for o in outcomes if o.passed})
    if len(passed) < MIN_MINORS and not allow_skips:
        names = ", ".join(f"{major}.{minor}" for major, minor in passed) or "none"
        missing = ", ".join(f"{a}.{b}" for a, b in SUPPORTED if (a, b) not in passed)
        problems.append(
            f"{MIN_MINORS} supported minor versions must pass, {len(passed)} did ({names}): "
            f"install one of {missing} (pyenv install, or Debian's python3.X and python3.X-venv)"
        )
    return problems


def report(outcomes: Sequence[Outcome]) -> list[str]:
    """One line an interpreter: version, the pip it starts from, times, result."""
    return [
        f"{o.interpreter.name:<48} pip {o.interpreter.pip:<8} install {o.install_seconds:5.0f} s"
        f"  unit tests {o.test_seconds:5.0f} s  {'passed' if o.passed else o.step + ' FAILED'}"
        for o in outcomes
    ]


def _failed(
    interpreter: Interpreter, step: str, seconds: tuple[float, float], log: Path
) -> Outcome:
    """The outcome of a failed step, its log's tail printed."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    print("\n".join([f"--- {step} with {interpreter.name}, last lines:", *lines[-20:]]))
    return Outcome(interpreter, step, *seconds, lines[-1].strip() if lines else "(no output)")


def _step(
    command: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path
) -> tuple[bool, float]:
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    return done.returncode == 0, time.monotonic() - started


def prove(interpreter: Interpreter, workdir: Path, cache: Path) -> Outcome:
    """Clone HEAD into ``workdir``, install with ``interpreter`` and run the unit tests."""
    clone = workdir / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    home = workdir / "home"
    home.mkdir()
    env = {"PATH": CLEAN_PATH, "HOME": str(home), "XDG_CACHE_HOME": str(cache)}
    install_log, test_log = workdir / "install.log", workdir / "unit.log"
    make = ["make", "--no-print-directory"]
    ok, install = _step([*make, "install", f"PYTHON={interpreter.path}"], clone, env, install_log)
    if not ok:
        return _failed(interpreter, "make install", (install, 0), install_log)
    ok, tests = _step([*make, "test-unit"], clone, env, test_log)
    if not ok:
        return _failed(interpreter, "make test-unit", (install, tests), test_log)
    return Outcome(interpreter, "passed", install, tests, "")


def _dirty_paths() -> int:
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return len(status.stdout.splitlines())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; print one line an interpreter and what fails it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the clones and their logs")
    args = parser.parse_args(argv)
    home = Path.home()
    found = [i for i in map(describe, candidates(pyenv_root(os.environ, home), SYSTEM_DIRS)) if i]
    for interpreter in choose(found):
        if interpreter.path.parent == Path("/usr/bin") and interpreter.pip == "-":
            # Debian ships venv apart (python3.X-venv); the image's build needs it too.
            subprocess.run([str(DEBIAN_VENV), str(interpreter.path)], check=False)
    chosen = choose(describe(i.path) or i for i in found)
    for interpreter in unsupported(found):
        print(f"note: {interpreter.name} is newer than README supports: not tried")
    dirty = _dirty_paths()
    if dirty:
        print(f"note: {dirty} uncommitted path(s) are not in the clones: the check proves HEAD")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    workdir = Path(tempfile.mkdtemp(prefix="toolchain-"))
    outcomes = []
    try:
        for index, interpreter in enumerate(chosen):
            print(f"toolchain: {interpreter.name}, pip {interpreter.pip} ...", flush=True)
            (workdir / str(index)).mkdir()
            outcomes.append(prove(interpreter, workdir / str(index), cache))
            print(report(outcomes[-1:])[0], flush=True)
    finally:
        if args.keep:
            print(f"clones and logs: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    problems = verdict(outcomes, allow_skips=skips_allowed())
    print("\n".join(["toolchain check:", *report(outcomes)]))
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
