"""Verdicts of BENCHMARKS.md: real-Pod memory, computed from the cluster tests' record, and
CPU against the baseline install."""

from __future__ import annotations

from bench.measure import AT_ONCE, BASELINE, FLOOR, Results, Run, Settings
from bench.report import RSS_REAL_POD_MIB, baseline_verdict, real_pod_verdict
from harness.records import RealPodMemory


def record(mib: float, commit: str = "abc1234") -> RealPodMemory:
    return RealPodMemory(mib, 26.5, "2026-11-27T18:00:00Z", commit)


def test_no_record_gives_no_verdict() -> None:
    verdict = real_pod_verdict(None, "abc1234")
    assert verdict.met is None
    assert "make test-cluster" in verdict.measured


def test_the_verdict_follows_the_recorded_peak() -> None:
    assert real_pod_verdict(record(RSS_REAL_POD_MIB), "abc1234").met is True
    assert real_pod_verdict(record(RSS_REAL_POD_MIB + 0.1), "abc1234").met is False
    assert real_pod_verdict(record(20.3), "abc1234").measured.startswith("20.3 MiB")


def test_the_source_says_whether_the_record_is_of_this_commit() -> None:
    assert "on this commit" in real_pod_verdict(record(20.3), "abc1234").source
    assert "on commit 0ld0000" in real_pod_verdict(record(20.3, "0ld0000"), "abc1234").source


def at_once(mode: str, cpu: float) -> Run:
    run = Run(AT_ONCE, mode, "project", "ns", 0.0)
    run.cpu_total = cpu
    return run


def test_cpu_against_the_baseline_install_in_the_same_run() -> None:
    results = Results(Settings())
    results.runs = [at_once("auto", 0.060), at_once(BASELINE, 0.080), at_once(FLOOR, 0.048)]
    met = baseline_verdict(results)
    assert met.met is True
    assert "0.060 s against 0.080 s (0.75×)" in met.measured  # noqa: RUF001
    assert "the floor (`import asyncio, ssl`) 0.048 s" in met.measured
    results.runs[0].cpu_total = 0.061
    assert baseline_verdict(results).met is False


def test_no_baseline_install_gives_no_verdict() -> None:
    results = Results(Settings())
    results.runs = [at_once("auto", 0.060), at_once(FLOOR, 0.048)]
    verdict = baseline_verdict(results)
    assert verdict.met is None
    assert "BASELINE_REPORTER" in verdict.measured
