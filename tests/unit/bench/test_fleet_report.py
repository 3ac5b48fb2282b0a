"""The fleet section's verdicts, percentiles, model and splicing, computed from made-up
runs (the measuring itself is run by tests/integration/test_bench_scale_smoke.py)."""

from __future__ import annotations

import math
from collections import Counter

from bench.fleet import (
    CRASH_BURST,
    DEFAULT,
    IDLE,
    RESULT_BURST,
    START_UP,
    THROTTLED,
    FleetRun,
    FleetSettings,
    Phase,
)
from bench.fleet_report import BEGIN, END, NOT_RUN, existing, model, percentile, splice, verdicts
from bench.measure import BASE_ENV

from status_reporter.api.writer import write_budget

SETTINGS = FleetSettings(sizes=(10, 300), flows=(DEFAULT, THROTTLED))


def run(
    name: str,
    n: int,
    *,
    flow: str = DEFAULT,
    cpu: float = 10.0,
    latency: float = 0.1,
    lost: int = 0,
    idle_requests: int = 0,
    rss: float = 300.0,
) -> FleetRun:
    # The API server's load for the reporters is spread over the phases, above a
    # baseline of 0.01 CPU-s/s over the phases' 66 s.
    baseline = 0.01
    phases = [
        Phase(START_UP, 0, 5, 0.4 * cpu + 5 * baseline, rss),
        Phase(IDLE, 5, 65, 0.2 * cpu + 60 * baseline, rss, verbs=Counter(get=idle_requests)),
        Phase(RESULT_BURST, 65, 66, 0.4 * cpu + baseline, rss),
    ]
    return FleetRun(
        name,
        flow,
        n,
        phases=phases,
        latencies={RESULT_BURST: [latency] * n, CRASH_BURST: [latency] * n},
        lost=lost,
        apiserver_cpu=cpu + 100.0,  # the harness's set-up too: never what is judged
        apiserver_baseline=baseline,
        apiserver_peak_rss_mib=rss,
    )


def by_target(runs: list[FleetRun]) -> dict[str, bool | None]:
    return {v.target.split(",")[0].split(":")[0]: v.met for v in verdicts(runs, SETTINGS)}


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert math.isnan(percentile([], 0.5))


def test_every_target_met() -> None:
    runs = [
        run(name, n, flow=flow)
        for name in ("watch", "poll", "reference")
        for n in (10, 300)
        for flow in (DEFAULT, THROTTLED)
    ]
    assert all(v.met for v in verdicts(runs, SETTINGS))


def test_a_lost_condition_fails_only_for_this_project() -> None:
    ours = [run("watch", n, flow=flow) for n in (10, 300) for flow in (DEFAULT, THROTTLED)]
    assert verdicts([*ours, run("reference", 10, lost=3)], SETTINGS)[0].met is True
    ours[1].lost = 1
    first = verdicts(ours, SETTINGS)[0]
    assert first.met is False
    assert "1 lost" in first.measured


def test_the_p99_target_is_judged_at_300_with_default_flow_control() -> None:
    slow = run("watch", 300, latency=1.2)
    assert verdicts([slow], SETTINGS)[1].met is False
    assert verdicts([run("watch", 300, latency=1.0)], SETTINGS)[1].met is True
    assert verdicts([run("watch", 10, latency=5.0)], SETTINGS)[1].met is None


def test_throttled_writes_must_fit_the_reporters_write_budget() -> None:
    budget = write_budget(int(BASE_ENV["MAX_WAIT_TIME_SECONDS"]))
    within = run("watch", 10, flow=THROTTLED, latency=budget - 1)
    beyond = run("watch", 10, flow=THROTTLED, latency=budget + 1)
    assert verdicts([within], SETTINGS)[2].met is True
    assert verdicts([beyond], SETTINGS)[2].met is False


def test_api_server_cpu_per_job_against_the_reference() -> None:
    cheaper = verdicts([run("watch", 10, cpu=1.0), run("reference", 10, cpu=2.0)], SETTINGS)
    dearer = verdicts([run("watch", 10, cpu=3.0), run("reference", 10, cpu=2.0)], SETTINGS)
    alone = verdicts([run("watch", 10, cpu=3.0)], SETTINGS)
    row = "API server CPU per Job ≤ the reference's, N = 10, default"
    assert next(v.met for v in cheaper if v.target == row) is True
    assert next(v.met for v in dearer if v.target == row) is False
    assert next(v.met for v in alone if v.target == row) is None


def test_idle_requests_of_the_project_role_must_be_about_zero() -> None:
    quiet = verdicts([run("watch", 10, idle_requests=0)], SETTINGS)[-1]
    busy = verdicts([run("watch", 10, idle_requests=60)], SETTINGS)[-1]  # 0.1 per Job-s
    assert (quiet.met, busy.met) == (True, False)


def test_the_reporters_load_leaves_out_the_baseline_and_the_harness() -> None:
    assert math.isclose(run("watch", 10, cpu=3.0).reporters_load, 3.0)
    assert math.isclose(run("watch", 10, cpu=3.0).idle_cpu_rate(), 0.6 / 60)


def test_the_model_extrapolates_the_measured_slope() -> None:
    # 1 MiB per Job over 100 MiB: 10,000 Jobs → 10,100 MiB.
    runs = [run("watch", 10, rss=110.0), run("watch", 300, rss=400.0)]
    row = model(runs, SETTINGS)[2]
    assert "| 1.000 |" in row
    assert f"| {10_100 / 1024:.1f} |" in row


def test_splice_replaces_only_the_fleet_section() -> None:
    document = f"# B\n\nhead\n\n{BEGIN}\nold\n{END}\n\ntail\n"
    spliced = splice(document, f"{BEGIN}\nnew\n{END}")
    assert spliced == f"# B\n\nhead\n\n{BEGIN}\nnew\n{END}\n\ntail\n"
    assert existing(spliced) == f"{BEGIN}\nnew\n{END}"
    assert NOT_RUN in existing("# B\n")
    assert splice("# B\n\n## Analysis\nx\n", "S").startswith("# B\n\nS\n\n## Analysis\n")
