"""The storm verdicts of BENCHMARKS.md, computed from what was measured."""

from __future__ import annotations

import math

from bench.measure import StormPoint
from bench.report import STORM_CPU_SHARE, STORM_RATE, storm_verdicts


def point(rate: float = 150_000, share: float = 0.02, seen: float = 0.05) -> StormPoint:
    return StormPoint(rate, 30.0, share, seen, 2.0, "tmpfs")


def test_no_storm_measured_gives_no_verdicts() -> None:
    assert storm_verdicts(None) == []


def test_the_verdicts_follow_the_numbers() -> None:
    cpu, seen = storm_verdicts(point())
    assert (cpu.met, seen.met) == (True, True)
    assert cpu.measured == "2.0%"
    cpu, seen = storm_verdicts(point(share=STORM_CPU_SHARE + 0.001, seen=2.0))
    assert (cpu.met, seen.met) == (False, False)
    _, seen = storm_verdicts(point(seen=math.nan))  # never seen
    assert seen.met is False


def test_a_storm_below_the_rate_judges_nothing() -> None:
    verdicts = storm_verdicts(point(rate=STORM_RATE - 1, share=0.5))
    assert [v.met for v in verdicts] == [None, None]
    assert "99,999 create/append/delete operations a second" in verdicts[0].source
