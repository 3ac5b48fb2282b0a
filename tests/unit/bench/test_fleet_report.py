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
from bench.fleet_report import (
    BEGIN,
    END,
    NOT_RUN,
    Verdict,
    existing,
    model,
    percentile,
    section,
    splice,
    start_up_per_job,
    verdicts,
)
from bench.measure import BASE_ENV

from status_reporter.api.writer import write_budget

SETTINGS = FleetSettings(sizes=(10, 100, 300), flows=(DEFAULT, THROTTLED))


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
    repeat: int = 0,
    others: float = 0.0,
    reporters_cpu: float = 1.0,
    spread: float = 0.1,
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
        repeat=repeat,
        phases=phases,
        launch_spread=[spread],
        latencies={RESULT_BURST: [latency] * n, CRASH_BURST: [latency] * n},
        lost=lost,
        apiserver_cpu=cpu + 100.0,  # the harness's set-up too: never what is judged
        apiserver_baseline=baseline,
        apiserver_peak_rss_mib=rss,
        reporters_cpu=reporters_cpu,
        others_cores=others,
    )


def verdict(runs: list[FleetRun], target: str) -> Verdict:
    """The one verdict whose target starts with ``target``."""
    (found,) = [v for v in verdicts(runs, SETTINGS) if v.target.startswith(target)]
    return found


CPU_10 = "API server CPU per Job ≤ 0.8× the reference's, N = 10, default"  # noqa: RUF001
START_UP_10 = "start-up phase API server CPU per Job ≤ the reference's, N = 10, default"


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert math.isnan(percentile([], 0.5))


def test_every_target_met() -> None:
    runs = [
        run(name, n, flow=flow, cpu=7.0 if name == "watch" else 10.0)
        for name in ("watch", "poll", "reference")
        for n in (10, 100, 300)
        for flow in (DEFAULT, THROTTLED)
    ]
    checks = verdicts(runs, SETTINGS)
    assert all(v.met for v in checks), [v for v in checks if not v.met]
    assert all(v.claimed for v in checks)


def test_a_lost_condition_fails_only_for_this_project() -> None:
    ours = [run("watch", n, flow=flow) for n in (10, 300) for flow in (DEFAULT, THROTTLED)]
    assert verdicts([*ours, run("reference", 10, lost=3)], SETTINGS)[0].met is True
    ours[1].lost = 1
    first = verdicts(ours, SETTINGS)[0]
    assert first.met is False
    assert "1 lost" in first.measured


def test_every_execve_of_a_round_within_a_second() -> None:
    target = "the harness: first → last reporter's execve"
    assert verdict([run("watch", 10, spread=1.0)], target).met is True
    late = verdict([run("watch", 10), run("poll", 300, spread=1.5)], target)
    assert late.met is False
    assert "1.50 s (poll, default, N = 300)" in late.measured


def test_how_it_was_measured_says_the_reporter_is_execd_before_its_priority_drops() -> None:
    text = section([run("watch", 10)], SETTINGS, minutes=1.0, reference_note="", plotted=False)
    measured = text[text.index("### How it was measured") :]
    assert "the child execs the reporter still real-time" in measured
    assert "`PTRACE_TRACEME`" in measured
    assert "runs untraced at the ordinary priority from its first instruction on" in measured


def test_the_p99_target_at_100_is_a_second() -> None:
    target = "result burst at N = 100"
    assert verdict([run("watch", 100, latency=1.2)], target).met is False
    assert verdict([run("watch", 100, latency=1.0)], target).met is True
    assert verdict([run("watch", 10, latency=5.0)], target).met is None


def test_the_p99_target_at_300_is_the_references_in_the_same_run() -> None:
    target = "result burst at N = 300"
    slower = [run("watch", 300, latency=2.0), run("reference", 300, latency=1.9)]
    faster = [run("watch", 300, latency=1.8), run("reference", 300, latency=1.9)]
    assert verdict(slower, target).met is False
    assert verdict(faster, target).met is True
    assert verdict([run("watch", 300)], target).met is None


def test_throttled_writes_must_fit_the_reporters_write_budget() -> None:
    budget = write_budget(int(BASE_ENV["MAX_WAIT_TIME_SECONDS"]))
    within = run("watch", 10, flow=THROTTLED, latency=budget - 1)
    beyond = run("watch", 10, flow=THROTTLED, latency=budget + 1)
    assert verdict([within], "throttled: every condition").met is True
    assert verdict([beyond], "throttled: every condition").met is False


def test_api_server_cpu_per_job_at_most_four_fifths_of_the_references() -> None:
    reference = run("reference", 10, cpu=10.0)
    assert verdict([run("watch", 10, cpu=8.0), reference], CPU_10).met is True
    assert verdict([run("watch", 10, cpu=8.5), reference], CPU_10).met is False
    assert verdict([run("watch", 10, cpu=3.0)], CPU_10).met is None


def test_start_up_cpu_per_job_leaves_out_the_baseline() -> None:
    # 0.4 of the load in the start-up phase, over N Jobs (one round here).
    assert math.isclose(start_up_per_job(run("watch", 10, cpu=5.0)), 0.4 * 5.0 / 10)
    reference = run("reference", 10, cpu=5.0)
    assert verdict([run("watch", 10, cpu=5.0), reference], START_UP_10).met is True
    assert verdict([run("watch", 10, cpu=5.1), reference], START_UP_10).met is False


def test_a_cell_is_the_median_of_its_runs() -> None:
    # Medians 8 against 10: met, though one run of three is far off.
    ours = [run("watch", 10, cpu=c, repeat=k) for k, c in enumerate((30.0, 8.0, 7.0))]
    theirs = [run("reference", 10, cpu=10.0, repeat=k) for k in range(3)]
    found = verdict([*ours, *theirs], CPU_10)
    assert found.met is True
    assert "median of 3" in found.measured
    assert "holds in 2 of 3 paired runs" in found.measured


def test_a_verdict_from_a_noisy_run_is_not_claimed() -> None:
    runs = [run("watch", 10, cpu=8.0), run("reference", 10, cpu=10.0, others=0.5)]
    found = verdict(runs, CPU_10)
    assert (found.met, found.noisy, found.claimed) == (True, True, None)
    assert found.row().endswith("| noisy (would be met) |")
    quiet = verdict([run("watch", 10, cpu=8.0, others=0.2), run("reference", 10)], CPU_10)
    assert quiet.claimed is True


def test_reporters_cpu_per_job_against_the_reference_at_300() -> None:
    target = "reporters' own CPU per Job ≤ 2.5×"  # noqa: RUF001
    reference = run("reference", 300, reporters_cpu=10.0)
    assert verdict([run("watch", 300, reporters_cpu=25.0), reference], target).met is True
    assert verdict([run("watch", 300, reporters_cpu=26.0), reference], target).met is False


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
