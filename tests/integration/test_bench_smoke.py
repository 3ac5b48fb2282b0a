"""The benchmark code runs end to end (every measurement once, N = 1, tiny sizes); no
targets asserted."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from bench.measure import (
    AT_ONCE,
    MODES,
    REFERENCE_BINARY,
    ROLES,
    RUNTIME,
    SMOKE,
    WORST_CASE,
    reference_unavailable,
)
from bench.run import LoadSampler, collect, write_report
from harness.controlplane import ControlPlane, binaries
from harness.reporter import SCRIPT

pytestmark = pytest.mark.integration


def test_benchmark_smoke_run(plane: ControlPlane, tmp_path: Path) -> None:
    # status-reporter also authenticates in-cluster, so it stands in for the reference
    # binary to exercise the launcher, where the machine allows a mount namespace.
    stand_in = "" if reference_unavailable(str(SCRIPT)) else str(SCRIPT)
    settings = dataclasses.replace(SMOKE, reference_binary=stand_in)
    load = LoadSampler().start()
    measured = collect(binaries(), tmp_path / "work", settings, print, plane=plane)
    load.stop()
    results = measured.results
    for mode in MODES:
        for kind in ("result", "crash"):
            runs = results.select(kind, mode=mode)
            assert len(runs) == SMOKE.latency_runs
            assert all(r.latency > 0 and r.rss_mib > 0 and r.ready > 0 for r in runs)
    for role in ROLES:
        at_once = results.select(AT_ONCE, role=role)
        assert len(at_once) == SMOKE.at_once_runs
        assert all(r.first_request > 0 and r.cpu_total > 0 for r in at_once)
        assert all(r.exit_code == 0 and r.rss_mib > 0 and r.cpu_self > 0 for r in at_once)
        assert all(sum(r.requests.values()) >= 4 for r in at_once)
        runtimes = results.select(RUNTIME, role=role)
        assert sorted(r.runtime for r in runtimes) == sorted(SMOKE.api_runtimes)
        assert all(sum(r.requests.values()) >= 4 for r in runtimes)
    worst = results.select(WORST_CASE)
    assert {math.isnan(r.ready) for r in worst} == {True, False}
    assert all(r.exit_code == 0 and r.rss_mib > 0 for r in worst)
    assert {(p.mode, p.n) for p in results.scale} == {(m, 1) for m in MODES}
    assert results.storm is not None
    assert results.storm.rate > 0
    assert results.storm.seen_seconds > 0
    assert [p.n for p in measured.watches] == list(SMOKE.watches)
    assert measured.watches[-1].still_open == SMOKE.watches[-1]
    report = write_report(measured, binaries(), load, tmp_path, smoke=True)
    text = report.read_text()
    assert "Smoke run" in text
    assert "CPU while other files are churned" in text
    assert f"status-reporter measured from `{SCRIPT}`: Python 3." in text
    assert "peak RSS in a real Pod" in text
    # Where a mount namespace is possible, the result-at-once runs authenticate in-cluster.
    assert ("runs use in-cluster credentials" in text) == (not results.in_cluster_note)
    assert "## Targets" in text
    assert "## External figures" in text
    assert "## 8. kube-apiserver memory per idle watch" in text
    reference = [r for r in results.runs if r.mode == REFERENCE_BINARY]
    if stand_in:
        assert len(reference) == SMOKE.at_once_runs + len(SMOKE.api_runtimes)
        assert all(r.exit_code == 0 and r.rss_mib > 0 and r.first_request > 0 for r in reference)
        assert "measured in this run" in text
    else:
        assert not reference
