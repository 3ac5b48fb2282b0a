"""bench/launch.py, run for real (it needs root for its mount namespace): the program
it releases runs untraced with the launcher's own scheduling, and its report has the time
the program's ``execve`` completed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from bench.measure import LAUNCHER, in_cluster_unavailable
from harness.required import unavailable

# What the program says of itself first thing: its clock, scheduling policy, nice value
# and who traces it. Its clock comes after its interpreter has started up.
SELF_REPORT = """
import json, os, time
clock = time.time()
tracer = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("TracerPid"))
policy, nice = os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)
print(json.dumps({"clock": clock, "policy": policy, "nice": nice, "tracer": tracer}))
"""
OWN_NICE = 3


@pytest.fixture(autouse=True)
def _launchable() -> None:
    problem = in_cluster_unavailable()
    if problem:
        unavailable("mount namespace for bench/launch.py", problem)


def _launch(tmp_path: Path, program: list[str]) -> dict[str, Any]:
    """Run the launcher at nice ``OWN_NICE`` with ``--release``, release it, and return
    its report."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name in ("token", "ca.crt", "namespace"):
        (credentials / name).write_text(name)
    ready, ready_in = os.pipe()
    go_out, go = os.pipe()
    report = tmp_path / "launch.json"
    command = [sys.executable, "-S", "-I", str(LAUNCHER), "--release", f"{ready_in},{go_out}"]
    command += [str(report), str(credentials), str(tmp_path / "program.log"), "--", *program]
    launcher = subprocess.Popen(
        command,
        pass_fds=(ready_in, go_out),
        preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, OWN_NICE),  # noqa: PLW1509 - no threads
    )
    os.close(ready_in)
    os.close(go_out)
    try:
        assert os.read(ready, 1) == b"."
        os.close(go)
        assert launcher.wait(timeout=60) == 0
    finally:
        os.close(ready)
        launcher.kill()
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def test_the_program_runs_untraced_with_the_launchers_own_scheduling(tmp_path: Path) -> None:
    report = _launch(tmp_path, [sys.executable, "-S", "-I", "-c", SELF_REPORT])
    assert report["exit_code"] == 0
    program = json.loads((tmp_path / "program.log").read_text())
    # Not the real-time scheduling of the released launcher, through the child's exec.
    assert program["policy"] == os.SCHED_OTHER
    assert program["nice"] == OWN_NICE
    assert program["tracer"] == "0"


def test_the_report_has_the_time_the_exec_completed(tmp_path: Path) -> None:
    before = time.time()
    report = _launch(tmp_path, [sys.executable, "-S", "-I", "-c", SELF_REPORT])
    program = json.loads((tmp_path / "program.log").read_text())
    # Seen before the program ran its first instruction, after the launcher forked.
    assert before <= report["spawned"] <= report["executed"] <= program["clock"]
    assert report["cpu_seconds"] > 0
    assert report["max_rss_kib"] > 0


def test_a_program_that_cannot_be_executed_has_no_execve_time(tmp_path: Path) -> None:
    report = _launch(tmp_path, [str(tmp_path / "missing")])
    assert report["exit_code"] == 127
    assert report["executed"] is None
