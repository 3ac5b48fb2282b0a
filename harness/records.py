"""Figures that one suite measures and another step reports: kept under
``bench-results/`` (ignored by git) with when and on which commit they were taken, and
:func:`splice`, which puts a generated section into a document between its markers
(``make bench`` into BENCHMARKS.md, the cluster tests into README.md)."""

from __future__ import annotations

import datetime
import json
import subprocess
from dataclasses import dataclass

from harness.controlplane import ROOT

REAL_POD_MEMORY = ROOT / "bench-results" / "real-pod-memory.json"


@dataclass(frozen=True)
class RealPodMemory:
    """The reporter's peak memory in a real Pod, as the cluster tests measured it."""

    cgroup_peak_mib: float  # the container cgroup's maximum usage
    vmhwm_mib: float | None  # the process's own peak, as it logged at exit
    measured_at: str  # UTC, ISO 8601
    commit: str  # the checkout's commit, "+" when it had uncommitted changes


def checkout_commit() -> str:
    """The checkout's short commit, with "+" when tracked files have changes."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+" if git("status", "--porcelain", "--untracked-files=no") else "")


def record_real_pod_memory(cgroup_peak_bytes: int, vmhwm_mib: float | None) -> None:
    """Keep the cluster tests' measurement for the next ``make bench``."""
    record = RealPodMemory(
        cgroup_peak_mib=round(cgroup_peak_bytes / 2**20, 1),
        vmhwm_mib=vmhwm_mib,
        measured_at=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        commit=checkout_commit(),
    )
    REAL_POD_MEMORY.parent.mkdir(exist_ok=True)
    REAL_POD_MEMORY.write_text(json.dumps(record.__dict__) + "\n")


def real_pod_memory() -> RealPodMemory | None:
    """The last recorded measurement, or None when the cluster tests never ran here."""
    try:
        return RealPodMemory(**json.loads(REAL_POD_MEMORY.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def splice(document: str, begin: str, end: str, section: str, *, before: str | None = None) -> str:
    """``document`` with the text from ``begin`` to ``end`` replaced by ``section`` (which
    carries the markers itself); without the markers, ``section`` goes right before
    ``before`` when the document has it, else at the end."""
    if begin in document and end in document:
        head, rest = document.split(begin, 1)
        return head + section + rest.split(end, 1)[1]
    if before is not None and before in document:
        head, rest = document.split(before, 1)
        return head + section + "\n\n" + before + rest
    return document.rstrip("\n") + "\n\n" + section + "\n"
