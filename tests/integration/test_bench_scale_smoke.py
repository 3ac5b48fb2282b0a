"""The fleet benchmark runs end to end at N = 5 with short phases, under default and
throttled flow control; it asserts what must hold at any N (nothing lost or wrong, 429s
really answered when throttled), not the speed targets."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest
from bench.fleet import (
    CRASH_BURST,
    DEFAULT,
    IMPLEMENTATIONS,
    RESULT_BURST,
    SMOKE,
    THROTTLED,
    measure_all,
)
from bench.fleet_report import BEGIN, END
from bench.measure import in_cluster_unavailable
from bench.scale import load, save, write
from harness.controlplane import binaries
from harness.reporter import SCRIPT
from harness.required import unavailable

pytestmark = pytest.mark.integration


def test_fleet_smoke_run(tmp_path: Path) -> None:
    problem = in_cluster_unavailable()
    if problem:
        unavailable("in-cluster credentials for the fleet benchmark", problem)
    # status-reporter stands in for the reference binary, to run that path too; a
    # short Pod-polling interval keeps the polled crash bursts short.
    settings = dataclasses.replace(
        SMOKE,
        reference_binary=str(SCRIPT),
        container_interval=2,
        idle=1.0,
        baseline=0.5,
        settle=0.5,
        throttle_queue=0,  # five reporters fill one seat; a queue would absorb them
    )
    runs, failures = measure_all(binaries(), tmp_path / "work", settings, print)
    assert failures == []
    assert {(r.implementation, r.flow) for r in runs} == {
        (i.name, flow) for i in IMPLEMENTATIONS for flow in (DEFAULT, THROTTLED)
    }
    for run in runs:
        described = f"{run.implementation} {run.flow}: {run.wrong_examples}"
        assert (run.lost, run.wrong) == (0, 0), described
        # Round one ends with a result (exit 0), round two with a crash (exit 1).
        assert run.exit_codes == Counter({0: 5, 1: 5}), described
        assert len(run.latencies[RESULT_BURST]) == len(run.latencies[CRASH_BURST]) == 5
        assert all(latency > 0 for latency in run.latencies[RESULT_BURST]), described
        assert [p.name for p in run.phases][2::3] == [RESULT_BURST, CRASH_BURST]
        assert run.apiserver_peak_rss_mib > 0
        assert run.reporters_cpu > 0
    assert sum(r.throttled for r in runs if r.flow == THROTTLED) > 0
    assert sum(r.throttled for r in runs if r.flow == DEFAULT) == 0
    saved = tmp_path / "fleet.json"
    save(runs, 1.0, saved)
    assert load(saved) == (runs, 1.0)
    document = "# Benchmarks\n\nTEXT-BEFORE\n\n## Analysis\n\nTEXT-AFTER\n"
    (tmp_path / "BENCHMARKS.md").write_text(document)
    text = write(runs, settings, tmp_path, 1.0, smoke=True).read_text()
    order = [text.index(mark) for mark in ("TEXT-BEFORE", BEGIN, END, "## Analysis", "TEXT-AFTER")]
    assert order == sorted(order)
    assert "lost or wrong conditions" in text
