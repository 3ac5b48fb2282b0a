"""The fleet benchmark runs end to end at N = 5 with short phases, under default and
throttled flow control; it asserts what must hold at any N (nothing lost or wrong, 429s
really answered when throttled, the implementations taking turns, every reporter's
execve recorded, the API server's profile read), not the speed targets."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest
from bench.apiprofile import go_tool
from bench.fleet import (
    CRASH_BURST,
    DEFAULT,
    IMPLEMENTATIONS,
    RESULT_BURST,
    SMOKE,
    START_UP,
    THROTTLED,
    measure_all,
)
from bench.fleet_report import BEGIN, END
from bench.measure import in_cluster_unavailable
from bench.scale import load, save, write
from harness.controlplane import binaries
from harness.reporter import SCRIPT
from harness.required import unavailable

# Nine short runs, each on a control plane of its own.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


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
        # Default flow control twice per implementation, throttled (N = 6) once.
        repeats=2,
        repeat_up_to=5,
        throttled_sizes=(6,),
    )
    runs, failures = measure_all(binaries(), tmp_path / "work", settings, print)
    assert failures == []
    names = [i.name for i in IMPLEMENTATIONS]
    # The implementations take turns: run 1 of each, then run 2 of each.
    assert [(r.implementation, r.flow, r.repeat) for r in runs] == [
        *((name, DEFAULT, 0) for name in names),
        *((name, DEFAULT, 1) for name in names),
        *((name, THROTTLED, 0) for name in names),
    ]
    profiled = go_tool() is not None
    for run in runs:
        described = f"{run.implementation} {run.flow}: {run.wrong_examples}"
        assert (run.lost, run.wrong) == (0, 0), described
        # Round one ends with a result (exit 0), round two with a crash (exit 1).
        assert run.exit_codes == Counter({0: run.n, 1: run.n}), described
        assert len(run.latencies[RESULT_BURST]) == len(run.latencies[CRASH_BURST]) == run.n
        assert all(latency > 0 for latency in run.latencies[RESULT_BURST]), described
        assert [p.name for p in run.phases][2::3] == [RESULT_BURST, CRASH_BURST]
        assert run.apiserver_peak_rss_mib > 0
        assert run.reporters_cpu > 0
        # Every reporter's execve was recorded, in each of the two rounds.
        assert len(run.launch_spread) == 2
        assert all(0 <= spread < 5 for spread in run.launch_spread), described
        assert len(run.load_average) == 2
        assert run.others_cores >= 0
        if profiled:
            assert run.profile_failures == 0
            start_up = run.phase(START_UP)[0]
            # The pieces cover the phase, and the reporters' start-up shows in them.
            assert start_up.profiled >= start_up.seconds - 1.5, described
            assert sum(start_up.profile.values()) > 0, described
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
    assert "first → last reporter's execve" in text
    if profiled:
        assert "Which stack frames count as which category" in text
