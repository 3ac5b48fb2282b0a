"""The benchmark code runs end to end (N = 1, 3 runs, short windows); no targets asserted."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.measure import MODES, SMOKE, run_all
from bench.run import write_report

from tests.harness.controlplane import ControlPlane, binaries

pytestmark = pytest.mark.integration


def test_benchmark_smoke_run(plane: ControlPlane, tmp_path: Path) -> None:
    results = run_all(plane, tmp_path / "work", SMOKE, print)
    for mode in MODES:
        for kind in ("result", "crash"):
            samples = [s for s in results.samples if s.mode == mode and s.kind == kind]
            assert len(samples) == SMOKE.latency_runs
            assert all(s.latency > 0 and s.rss_mib > 0 and s.ready > 0 for s in samples)
        assert sum(results.requests[(mode, SMOKE.api_runtimes[0])].values()) >= 5
    assert {(p.mode, p.n) for p in results.scale} == {(m, 1) for m in MODES}
    report = write_report(results, plane, binaries(), tmp_path, smoke=True)
    text = report.read_text()
    assert "Smoke run" in text
    assert "## 5. Scale" in text
