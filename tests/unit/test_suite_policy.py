"""A suite that cannot run here fails the run, unless a partial run is asked for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness.controlplane import ROOT

SKIPPING = """
from harness.required import unavailable

def test_needs_a_container_engine():
    unavailable("container engine", "none works here")
"""


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_skipping.py"
    test.write_text(SKIPPING)
    environment = {k: v for k, v in os.environ.items() if k not in ("ALLOW_SKIPS", "CI")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:randomly",
         "-p", "no:cacheprovider", str(test)],
        cwd=ROOT, env={**environment, **env}, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_a_skipped_suite_fails_the_run_outside_ci_too(tmp_path: Path) -> None:
    done = _run(tmp_path)
    assert done.returncode == 1, done.stdout
    assert "a skipped suite fails the run" in done.stdout
    assert "NO CONTAINER ENGINE: tests that need it are skipped: none works here" in done.stdout


@pytest.mark.parametrize("value", ["1", "yes"])
def test_allow_skips_accepts_a_partial_run(tmp_path: Path, value: str) -> None:
    done = _run(tmp_path, ALLOW_SKIPS=value)
    assert done.returncode == 0, done.stdout
    assert "1 test(s) skipped (ALLOW_SKIPS is set)" in done.stdout
