"""The real-Pod memory verdict of BENCHMARKS.md, computed from the cluster tests' record."""

from __future__ import annotations

from bench.report import RSS_REAL_POD_MIB, real_pod_verdict
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
