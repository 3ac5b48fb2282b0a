"""The fleet-scale section of BENCHMARKS.md: tables, computed verdicts, plots and the
10,000-Job model, from the runs of ``bench/fleet.py``."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import records

from bench.apiprofile import BACKGROUND, CATEGORIES, RULES
from bench.fleet import (
    CRASH_BURST,
    DEFAULT,
    IDLE,
    IMPLEMENTATIONS,
    REFERENCE,
    RESULT_BURST,
    START_UP,
    THROTTLE_FLAGS,
    THROTTLED,
    WATCH,
    FleetRun,
    FleetSettings,
)
from bench.measure import BASE_ENV
from status_reporter.api.writer import write_budget

BEGIN = "<!-- fleet-scale: begin (written by make bench-scale) -->"
END = "<!-- fleet-scale: end -->"
NOT_RUN = "Not measured yet: run `make bench-scale`."
ANALYSIS = "## Analysis\n"
# The result burst's p99 targets with default flow control: at most a second at
# P99_N, at most the reference's at TARGET_N.
P99_TARGET_SECONDS = 1.0
P99_N = 100
TARGET_N = 300
# API server CPU per Job at most this fraction of the reference's.
CPU_RATIO = 0.8
# The reporters' own CPU per Job at most this multiple of the reference's, at TARGET_N.
REPORTER_CPU_RATIO = 2.5
# Every reporter's execve within this many seconds of the first.
LAUNCH_SPREAD_SECONDS = 1.0
MODEL_JOBS = 10_000
LABELS = {i.name: i.label for i in IMPLEMENTATIONS}
# The phases of a round, grouped as the profile table shows them.
PHASE_GROUPS = (
    ("start-up", (START_UP,)),
    ("idle", (IDLE,)),
    ("bursts", (RESULT_BURST, CRASH_BURST)),
    ("all", (START_UP, IDLE, RESULT_BURST, CRASH_BURST)),
)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value * 1000:.0f}"


def _latency(values: Sequence[float]) -> str:
    return " / ".join(_ms(percentile(values, f)) for f in (0.5, 0.99, 1.0))


def _idle_rate(run: FleetRun) -> float:
    """The reporters' requests per second per Job in the idle phase of round one."""
    idle = run.phase(IDLE)[0]
    return idle.requests / idle.seconds / run.n if idle.seconds > 0 else math.nan


def _cpu_per_job(run: FleetRun) -> float:
    """API server CPU seconds per Job over both rounds (2 N Jobs)."""
    return run.reporters_load / (2 * run.n)


def start_up_per_job(run: FleetRun) -> float:
    """API server CPU seconds per Job in the start-up phases, less its own baseline."""
    phases = run.phase(START_UP)
    cpu = sum(p.apiserver_cpu - run.apiserver_baseline * p.seconds for p in phases)
    return cpu / (run.n * len(phases)) if phases else math.nan


def _reporter_cpu_per_job(run: FleetRun) -> float:
    """The reporters' own CPU seconds per Job (2 N reporters)."""
    return run.reporters_cpu / (2 * run.n)


def _p99(run: FleetRun, kind: str = RESULT_BURST) -> float:
    return percentile(run.latencies.get(kind, []), 0.99)


def _find(runs: Sequence[FleetRun], name: str, flow: str, n: int) -> list[FleetRun]:
    """Every run of one cell, in the order measured."""
    return [r for r in runs if (r.implementation, r.flow, r.n) == (name, flow, n)]


def _median(runs: Sequence[FleetRun], metric: Callable[[FleetRun], float]) -> float:
    """The median of ``metric`` over ``runs`` (NaN for none)."""
    values = [v for v in (metric(r) for r in runs) if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def _spread(runs: Sequence[FleetRun], metric: Callable[[FleetRun], float], scale: float) -> str:
    """The median of ``metric`` times ``scale``, with the range when there are several
    runs: ``19 (17–21)``."""
    values = sorted(metric(r) * scale for r in runs)
    text = f"{statistics.median(values):.0f}" if values else "–"
    if len(values) > 1:
        text += f" ({values[0]:.0f}–{values[-1]:.0f})"
    return text


def cells(runs: Sequence[FleetRun]) -> dict[tuple[str, str, int], list[FleetRun]]:
    """The runs by cell (implementation, flow, N), in the order first measured."""
    grouped: dict[tuple[str, str, int], list[FleetRun]] = {}
    for run in runs:
        grouped.setdefault((run.implementation, run.flow, run.n), []).append(run)
    return grouped


def is_noisy(runs: Sequence[FleetRun], settings: FleetSettings) -> bool:
    """Whether other processes used more than ``settings.noisy_cores`` during any of
    ``runs``."""
    return any(r.others_cores > settings.noisy_cores for r in runs)


def _median_latency(runs: Sequence[FleetRun], kind: str) -> str:
    def at(fraction: float) -> float:
        return _median(runs, lambda r: percentile(r.latencies.get(kind, []), fraction))

    return " / ".join(_ms(at(f)) for f in (0.5, 0.99, 1.0))


def summary_table(runs: Sequence[FleetRun], flow: str) -> list[str]:
    """One row per N and implementation under ``flow``: the median of the cell's runs
    (the range in brackets where it matters), lost and wrong over all of them."""
    rows = [
        "| N | implementation | runs | API server CPU (s) | CPU per Job (ms) | start-up CPU "
        "per Job (ms) | API server peak RSS (MiB) | idle requests/s per Job | result → "
        "condition p50 / p99 / max (ms) | crash → condition p50 / p99 / max (ms) | 429 | "
        "5xx | lost | wrong | reporters' peak RSS, sum (MiB) | reporters' CPU (s) | "
        "reporters' CPU per Job (ms) | other processes (cores) | load average |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, cell_flow, n), cell in cells(runs).items():
        if cell_flow != flow:
            continue
        loads = [value for r in cell for value in r.load_average]
        rows.append(
            f"| {n} | {LABELS[name]} | {len(cell)} | "
            f"{_median(cell, lambda r: r.reporters_load):.1f} | "
            f"{_spread(cell, _cpu_per_job, 1000)} | {_spread(cell, start_up_per_job, 1000)} | "
            f"{_median(cell, lambda r: r.apiserver_peak_rss_mib):.0f} | "
            f"{_median(cell, _idle_rate):.3f} | {_median_latency(cell, RESULT_BURST)} | "
            f"{_median_latency(cell, CRASH_BURST)} | "
            f"{_median(cell, lambda r: r.throttled):.0f} | "
            f"{_median(cell, lambda r: r.server_errors):.0f} | "
            f"{sum(r.lost for r in cell)} | {sum(r.wrong for r in cell)} | "
            f"{_median(cell, lambda r: r.reporters_peak_rss_mib):.0f} | "
            f"{_median(cell, lambda r: r.reporters_cpu):.1f} | "
            f"{_spread(cell, _reporter_cpu_per_job, 1000)} | "
            f"{max(r.others_cores for r in cell):.2f} | "
            f"{min(loads, default=math.nan):.1f}–{max(loads, default=math.nan):.1f} |"
        )
    return rows


def profile_per_job(run: FleetRun, names: Sequence[str]) -> dict[str, float]:
    """API server CPU seconds per Job by profile category over the phases ``names``,
    less the server's own per-category rate alone; empty when not profiled."""
    phases = [(i // 3, p) for i, p in enumerate(run.phases) if p.name in names]
    if not phases or not any(p.profiled for _, p in phases):
        return {}
    jobs = run.n * len({round_ for round_, _ in phases})
    result = {}
    for name in CATEGORIES:
        cpu = sum(p.profile.get(name, 0.0) for _, p in phases)
        alone = run.profile_baseline.get(name, 0.0) * sum(p.profiled for _, p in phases)
        result[name] = (cpu - alone) / jobs
    return result


def profile_table(runs: Sequence[FleetRun], flow: str, n: int) -> list[str]:
    """API server CPU per Job (ms) by category and phase group, one column per
    implementation: the median of the cell's runs."""
    columns = [
        (name, cell)
        for (name, f, size), cell in cells(runs).items()
        if (f, size) == (flow, n) and any(p.profiled for r in cell for p in r.phases)
    ]
    if not columns:
        return []
    groups = " / ".join(label for label, _ in PHASE_GROUPS)
    rows = [
        "| category | " + " | ".join(f"{LABELS[name]}: {groups}" for name, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]

    def cell_text(cell: list[FleetRun], category: str) -> str:
        values = []
        for _, names in PHASE_GROUPS:

            def one(run: FleetRun, names: tuple[str, ...] = names) -> float:
                return profile_per_job(run, names).get(category, math.nan)

            values.append(_median(cell, one))
        return " / ".join(f"{v * 1000:.1f}" for v in values)

    for category in CATEGORIES:
        rows.append(
            f"| {category} | " + " | ".join(cell_text(c, category) for _, c in columns) + " |"
        )

    def totals(cell: list[FleetRun]) -> str:
        values = []
        for _, names in PHASE_GROUPS:

            def one(run: FleetRun, names: tuple[str, ...] = names) -> float:
                return sum(profile_per_job(run, names).values())

            values.append(_median(cell, one))
        return " / ".join(f"{v * 1000:.1f}" for v in values)

    rows.append(
        "| **all categories (the profile)** | " + " | ".join(totals(c) for _, c in columns) + " |"
    )

    def measured(cell: list[FleetRun]) -> str:
        values = []
        for _, names in PHASE_GROUPS:

            def per_job(r: FleetRun, names: tuple[str, ...] = names) -> float:
                phases = [(i // 3, p) for i, p in enumerate(r.phases) if p.name in names]
                cpu = sum(p.apiserver_cpu - r.apiserver_baseline * p.seconds for _, p in phases)
                return cpu / (r.n * len({k for k, _ in phases}))

            values.append(_median(cell, per_job))
        return " / ".join(f"{v * 1000:.1f}" for v in values)

    rows.append(
        "| **`/proc`, for comparison** | " + " | ".join(measured(c) for _, c in columns) + " |"
    )
    return rows


def frames_table() -> list[str]:
    """Which stack frames count as which category."""
    rows = ["| category | a sample counts here if a frame of its stack matches |", "|---|---|"]
    for name, pattern in RULES:
        rows.append(f"| {name} | `{pattern.pattern.replace('|', chr(92) + '|')}` |")
    rows.append(f"| {BACKGROUND} | no frame matches any of the above |")
    return rows


def phase_table(runs: Sequence[FleetRun]) -> list[str]:
    """Per run and phase: duration, API server CPU and memory, requests by verb."""
    rows = [
        "| flow | N | implementation | run | round | phase | s | API server CPU (s) | peak RSS "
        "(MiB) | requests/s | by verb | 429 | 5xx |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for index, phase in enumerate(run.phases):
            verbs = ", ".join(f"{verb} {count}" for verb, count in sorted(phase.verbs.items()))
            rate = phase.requests / phase.seconds if phase.seconds > 0 else math.nan
            rows.append(
                f"| {run.flow} | {run.n} | {run.implementation} | {run.repeat + 1} | "
                f"{index // 3 + 1} | {phase.name} | {phase.seconds:.1f} | "
                f"{phase.apiserver_cpu:.2f} | "
                f"{phase.apiserver_peak_rss_mib:.0f} | {rate:.1f} | {verbs or '–'} | "
                f"{phase.throttled} | {phase.server_errors} |"
            )
    return rows


def spread_table(runs: Sequence[FleetRun]) -> list[str]:
    """How close to "at once" the harness got: launch and burst spreads."""
    rows = [
        "| flow | N | implementation | run | started (UTC) | first → last reporter's execve "
        "(s), rounds 1 / 2 | results written within (s) | crashes reported within (s) | "
        "reporters' exit codes | run took (s) | API server CPU, whole run with the harness's "
        "set-up (s) | load average, start / end | other processes (cores) | profile pieces "
        "lost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        codes = ", ".join(f"{code}: {count}" for code, count in sorted(run.exit_codes.items()))
        started = time.strftime("%H:%M", time.gmtime(run.started)) if run.started else "–"
        rows.append(
            f"| {run.flow} | {run.n} | {run.implementation} | {run.repeat + 1} | {started} | "
            f"{' / '.join(f'{s:.2f}' for s in run.launch_spread)} | "
            f"{run.burst_spread.get(RESULT_BURST, math.nan):.2f} | "
            f"{run.burst_spread.get(CRASH_BURST, math.nan):.2f} | {codes} | {run.seconds:.0f} | "
            f"{run.apiserver_cpu:.1f} | {' / '.join(f'{v:.1f}' for v in run.load_average)} | "
            f"{run.others_cores:.2f} | {run.profile_failures} |"
        )
    return rows


@dataclass(frozen=True)
class Verdict:
    """One target of the fleet section."""

    target: str
    measured: str
    met: bool | None  # None: could not be measured in this run
    # Measured while other processes were busy: the verdict is not claimed.
    noisy: bool = False

    @property
    def claimed(self) -> bool | None:
        """The verdict as counted: None when not measured or noisy."""
        return None if self.noisy else self.met

    def row(self) -> str:
        """The target as a table row."""
        if self.met is None:
            verdict = "not measured"
        elif self.noisy:
            verdict = f"noisy (would be {'met' if self.met else 'NOT met'})"
        else:
            verdict = "met" if self.met else "NOT met"
        return f"| {self.target} | {self.measured} | {verdict} |"


def _agreeing(
    ours: Sequence[FleetRun],
    theirs: Sequence[FleetRun],
    holds: Callable[[FleetRun, FleetRun], bool],
) -> str:
    """In how many of the paired runs (run k of each) the comparison holds."""
    pairs = list(zip(ours, theirs, strict=False))
    if len(pairs) < 2:
        return ""
    return f"; holds in {sum(holds(a, b) for a, b in pairs)} of {len(pairs)} paired runs"


def _ratio_verdict(  # noqa: PLR0917 - one call per target
    target: str,
    ours: Sequence[FleetRun],
    theirs: Sequence[FleetRun],
    metric: Callable[[FleetRun], float],
    ratio: float,
    settings: FleetSettings,
) -> Verdict:
    """``metric`` of ours (median) ≤ ``ratio`` × that of the reference (median)."""
    mine = _median(ours, metric)
    if not theirs:
        return Verdict(target, f"{mine * 1000:.0f} ms; reference not run", None)
    reference = _median(theirs, metric)
    runs = f"median of {len(ours)}" if len(ours) > 1 else "one run"
    measured = (
        f"{mine * 1000:.0f} ms against {reference * 1000:.0f} ms "
        f"({mine / reference:.2f}×; {runs})"
        + _agreeing(ours, theirs, lambda a, b: metric(a) <= ratio * metric(b))
    )
    return Verdict(
        target, measured, mine <= ratio * reference, is_noisy([*ours, *theirs], settings)
    )


def verdicts(runs: Sequence[FleetRun], settings: FleetSettings) -> list[Verdict]:
    """The fleet targets, computed from ``runs`` (the median of each cell's runs)."""
    ours = [r for r in runs if r.implementation != REFERENCE.name]
    bad = [r for r in ours if r.lost or r.wrong]
    result: list[Verdict] = [
        Verdict(
            "0 lost or wrong conditions, status-reporter, every N and run, default and throttled",
            "none"
            if not bad
            else "; ".join(
                f"{r.implementation} {r.flow} N={r.n} run {r.repeat + 1}: {r.lost} lost, "
                f"{r.wrong} wrong {r.wrong_examples}"
                for r in bad
            ),
            not bad if ours else None,
        )
    ]
    spreads = [s for r in runs for s in r.launch_spread]
    widest = max(runs, key=lambda r: max(r.launch_spread, default=0.0), default=None)
    result.append(
        Verdict(
            f"the harness: first → last reporter's execve ≤ {LAUNCH_SPREAD_SECONDS:g} s, "
            "every round of every run",
            "–"
            if widest is None or not spreads
            else f"widest {max(spreads):.2f} s ({widest.implementation}, {widest.flow}, "
            f"N = {widest.n})",
            None if not spreads else max(spreads) <= LAUNCH_SPREAD_SECONDS,
        )
    )
    watch_100 = _find(runs, WATCH.name, DEFAULT, P99_N)
    p99 = _median(watch_100, _p99)
    result.append(
        Verdict(
            f"result burst at N = {P99_N}, default flow control: p99 result → condition "
            f"≤ {P99_TARGET_SECONDS:g} s (project Role)",
            f"{_ms(p99)} ms" + (f" (median of {len(watch_100)})" if len(watch_100) > 1 else ""),
            None if math.isnan(p99) else p99 <= P99_TARGET_SECONDS,
            is_noisy(watch_100, settings),
        )
    )
    watch_300 = _find(runs, WATCH.name, DEFAULT, TARGET_N)
    reference_300 = _find(runs, REFERENCE.name, DEFAULT, TARGET_N)
    p99, reference_p99 = _median(watch_300, _p99), _median(reference_300, _p99)
    result.append(
        Verdict(
            f"result burst at N = {TARGET_N}, default flow control: p99 result → condition "
            "≤ the reference's in the same run",
            f"{_ms(p99)} ms against {_ms(reference_p99)} ms",
            None if math.isnan(p99) or math.isnan(reference_p99) else p99 <= reference_p99,
            is_noisy([*watch_300, *reference_300], settings),
        )
    )
    throttled = [r for r in ours if r.flow == THROTTLED]
    worst = max(
        (max(v, default=math.nan) for r in throttled for v in r.latencies.values()),
        default=math.nan,
    )
    missing = sum(r.lost for r in throttled)
    budget = write_budget(int(BASE_ENV["MAX_WAIT_TIME_SECONDS"]))
    result.append(
        Verdict(
            f"throttled: every condition written within the write budget ({budget:.0f} s)",
            f"slowest {worst:.1f} s after its action, {missing} not written, "
            f"{sum(r.throttled for r in throttled)} answers 429",
            None if not throttled else (missing == 0 and worst <= budget),
        )
    )
    for flow in settings.flows:
        for n in settings.sizes_for(flow):
            mine, reference = _find(runs, WATCH.name, flow, n), _find(runs, REFERENCE.name, flow, n)
            if not mine:
                continue
            result.append(
                _ratio_verdict(
                    f"API server CPU per Job ≤ {CPU_RATIO:g}× the reference's, N = {n}, {flow}",
                    mine,
                    reference,
                    _cpu_per_job,
                    CPU_RATIO,
                    settings,
                )
            )
            result.append(
                _ratio_verdict(
                    f"start-up phase API server CPU per Job ≤ the reference's, N = {n}, {flow}",
                    mine,
                    reference,
                    start_up_per_job,
                    1.0,
                    settings,
                )
            )
    at = TARGET_N if TARGET_N in settings.sizes else max(settings.sizes)
    mine, reference = _find(runs, WATCH.name, DEFAULT, at), _find(runs, REFERENCE.name, DEFAULT, at)
    if mine:
        result.append(
            _ratio_verdict(
                f"reporters' own CPU per Job ≤ {REPORTER_CPU_RATIO:g}× the reference's, "
                f"N = {at}, default",
                mine,
                reference,
                _reporter_cpu_per_job,
                REPORTER_CPU_RATIO,
                settings,
            )
        )
    rates = []
    for implementation in IMPLEMENTATIONS:
        measured = [
            _idle_rate(r)
            for r in runs
            if r.implementation == implementation.name and r.flow == DEFAULT
        ]
        if measured:
            rates.append(f"{implementation.name} {statistics.median(measured):.3f}")
    result.append(
        Verdict(
            "idle requests/s per Job, project Role ≈ 0 (≤ 0.01)",
            "; ".join(rates) or "–",
            None
            if not [r for r in runs if r.implementation == WATCH.name and r.flow == DEFAULT]
            else all(
                _idle_rate(r) <= 0.01
                for r in runs
                if r.implementation == WATCH.name and r.flow == DEFAULT
            ),
        )
    )
    return result


def _slope(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope and intercept of y against x."""
    if len({p[0] for p in points}) < 2:
        return math.nan, math.nan
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / denominator
    return slope, mean_y - slope * mean_x


def model(runs: Sequence[FleetRun], settings: FleetSettings) -> list[str]:
    """10,000 concurrent Jobs on paper, from the slopes measured with default flow
    control."""
    rows = [
        f"| per implementation | API server memory per running Job (MiB) | idle API "
        f"server CPU per running Job (ms/s) | idle requests/s per Job | start-up + "
        f"burst API server CPU per Job (ms) | at {MODEL_JOBS:,} running Jobs: memory "
        "(GiB) | idle CPU (cores) | idle requests/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for implementation in IMPLEMENTATIONS:
        chosen = [r for r in runs if r.implementation == implementation.name and r.flow == DEFAULT]
        if not chosen:
            continue
        memory, base = _slope([(r.n, r.phase(IDLE)[0].apiserver_peak_rss_mib) for r in chosen])
        idle_cpu, _ = _slope([(r.n, r.idle_cpu_rate()) for r in chosen])
        rate = statistics.median(_idle_rate(r) for r in chosen)
        burst_cpu, _ = _slope(
            [
                (
                    2 * r.n,
                    sum(p.apiserver_cpu for p in r.phases if p.name != IDLE)
                    - r.apiserver_baseline * sum(p.seconds for p in r.phases if p.name != IDLE),
                )
                for r in chosen
            ]
        )
        rows.append(
            f"| {implementation.label} | {memory:.3f} | {idle_cpu * 1000:.3f} | {rate:.3f} | "
            f"{burst_cpu * 1000:.0f} | {(base + memory * MODEL_JOBS) / 1024:.1f} | "
            f"{idle_cpu * MODEL_JOBS:.2f} | {rate * MODEL_JOBS:.0f} |"
        )
    return rows


def plot(runs: Sequence[FleetRun], directory: Path) -> Path:
    """API server CPU (whole run, per Job) and peak memory against N: one line per
    implementation, default flow control."""
    import matplotlib  # noqa: PLC0415 - only the bench extra installs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    figure, (cpu_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for implementation in IMPLEMENTATIONS:
        ns = sorted(
            {r.n for r in runs if r.implementation == implementation.name and r.flow == DEFAULT}
        )
        if not ns:
            continue
        chosen = [_find(runs, implementation.name, DEFAULT, n) for n in ns]
        cpu_axis.plot(
            ns,
            [_median(cell, lambda r: r.reporters_load) for cell in chosen],
            marker="o",
            label=implementation.label,
        )
        memory_axis.plot(
            ns,
            [_median(cell, lambda r: r.apiserver_peak_rss_mib) for cell in chosen],
            marker="o",
            label=implementation.label,
        )
    cpu_axis.set_title("kube-apiserver CPU for the reporters, both rounds")
    cpu_axis.set_ylabel("CPU seconds")
    memory_axis.set_title("kube-apiserver peak resident memory")
    memory_axis.set_ylabel("MiB")
    for axis in (cpu_axis, memory_axis):
        axis.set_xlabel("N concurrent reporters")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path = directory / "fleet-apiserver.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def section(
    runs: Sequence[FleetRun],
    settings: FleetSettings,
    *,
    minutes: float,
    reference_note: str,
    plotted: bool,
) -> str:
    """The whole fleet section, between its markers."""
    checks = verdicts(runs, settings)
    met = sum(v.claimed is True for v in checks)
    decided = sum(v.claimed is not None for v in checks)
    noisy = sum(v.noisy and v.met is not None for v in checks)
    unmeasured = sum(v.met is None for v in checks)
    lines = [
        BEGIN,
        "## 9. Fleet scale: N reporters on one API server (`make bench-scale`)",
        "",
        f"**{met} of {decided}** measured fleet targets met"
        + (f"; {noisy} not judged, measured on a busy machine (noisy)" if noisy else "")
        + (f"; {unmeasured} not measured" if unmeasured else "")
        + f". Generated by `make bench-scale` from `bench/fleet.py` and `bench/fleet_report.py`"
        f" in {minutes:.0f} minutes.",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        *(v.row() for v in checks),
        "",
        "### How it was measured",
        "",
        f"N = {', '.join(str(n) for n in settings.sizes) or 'none'} reporters (throttled: "
        f"{', '.join(str(n) for n in settings.throttled_sizes) or 'none'}), each with its own "
        "namespace, Job, Pod and ServiceAccount token, on a fresh kube-apiserver per run. "
        "The N launchers (`bench/launch.py`) are started beforehand; each prepares its "
        "reporter's credentials, says it is ready and waits on a pipe the harness closes "
        "to release them all; from then on it runs real-time (`SCHED_FIFO` priority 1, "
        "ahead of every ordinary process), forks, and the child execs the reporter still "
        "real-time (had it gone back to the ordinary scheduling before the exec, it would "
        "queue behind the reporters already running). The child traces itself "
        "(`PTRACE_TRACEME`), so the kernel stops it once `execve` has loaded the "
        "reporter, before the reporter's first instruction; there the launcher gives the "
        "reporter the ordinary scheduling (`SCHED_OTHER`, nice 0: the launcher's own "
        "before it was released) and detaches. Every reporter, of every implementation, "
        "thus runs untraced at the ordinary priority from its first instruction on. A "
        "reporter's execve time is when its launcher saw that stop (their spread is in "
        "the last table). "
        f"`make bench-scale` measures each cell with N ≤ {settings.repeat_up_to} "
        f"{settings.repeats} times (`REPEATS=`), larger N once (the runs column says how many "
        "this report rests on); the implementations take turns (run 1 of each, then run "
        "2, ...), and the tables give the median (the range in brackets). A start-up phase "
        "ends "
        f"{settings.settle:.0f} s after every reporter has read (or started watching) its "
        "Pod. Round one: start-up burst, idle "
        f"({settings.idle:.0f} s with default flow control, {settings.throttled_idle:.0f} s "
        "throttled), all N results written (renamed into place) at once. Round two: "
        f"start-up burst, {settings.crash_idle:.0f} s idle, all N adapters reported "
        "exited with code 1 at once (one Pod-status patch each, from 8 threads). The "
        "harness plays the kubelet; every reporter runs with in-cluster credentials "
        "through `bench/launch.py`, which gives its peak RSS and CPU from `wait4()`. "
        f"Environment: {', '.join(f'`{k}={v}`' for k, v in BASE_ENV.items())}, "
        f"`CONTAINER_STATUS_INTERVAL_SECONDS={settings.container_interval}`.",
        "",
        "- API server CPU and memory: `/proc` of kube-apiserver, memory sampled every "
        "0.25 s (the peak of the samples). CPU is the sum over the six phases (the "
        "harness's set-up of namespaces, Jobs and tokens and its final checks fall "
        "between phases and are left out), less what the API server used alone "
        f"({settings.baseline:.0f} s measured before the first reporter, as a rate, times "
        "the phases' duration); CPU per Job is that over the 2 N Jobs of both rounds. "
        "Per phase, CPU is as measured, baseline included.",
        "- Requests, verbs, 429 and 5xx: the audit log (each request once; a watch counts "
        "when it starts).",
        "- Result → condition and crash → condition: from the harness's action (file "
        "renamed, or Pod status patch sent) to the `stageTimestamp` of the reporter's "
        "first successful write of `jobs/status` in the audit log.",
        "- Lost: no `Available` condition on the Job at the end; wrong: not the expected "
        "status and reason.",
        f"- Throttled: kube-apiserver with `{' '.join(THROTTLE_FLAGS)}` and, for every "
        "ServiceAccount (a `FlowSchema` on `system:serviceaccounts`), a priority level of "
        f"one seat and one queue of {settings.throttle_queue}: what fits in neither is "
        "answered 429 with `Retry-After: 1`.",
        f"- {reference_note}",
        "- Noise: the machine is shared. With each run the harness records the 1-minute "
        "load average at its start and end, and the cores that processes other than "
        "itself, its servers, launchers and reporters used on average (`/proc/stat` less "
        "their own CPU). A verdict that rests on a run where others used more than "
        f"{settings.noisy_cores:g} cores is not judged: it says noisy.",
        "",
    ]
    if plotted:
        lines += ["![API server CPU and memory against N](docs/bench/fleet-apiserver.png)", ""]
    for flow, title in ((DEFAULT, "default flow control"), (THROTTLED, "throttled")):
        if any(r.flow == flow for r in runs):
            lines += [f"### Per N, {title}", "", *summary_table(runs, flow), ""]
    lines += profile_section(runs, settings)
    lines += [
        f"### On paper: {MODEL_JOBS:,} concurrent Jobs",
        "",
        "Least-squares slopes over the N measured with default flow control, "
        "extrapolated linearly. Assumptions: one kube-apiserver; the Jobs' reporters all "
        "running at once (the idle phase), as a platform with long adapters would have "
        "them; each start-up and burst cost paid once per Job; the API server's memory "
        "per Job is what one Pod watch (or none) plus its Job, Pod, namespace and RBAC "
        "objects add; nothing else on the cluster. Polling's load grows with the number "
        "of running Jobs whatever they do; a watch's is memory, and CPU only when "
        "something changes.",
        "",
        *model(runs, settings),
        "",
        "### Per phase",
        "",
        *phase_table(runs),
        "",
        '### How close to "at once"',
        "",
        *spread_table(runs),
        "",
        END,
    ]
    return "\n".join(lines)


def profile_section(runs: Sequence[FleetRun], settings: FleetSettings) -> list[str]:
    """Where the API server's CPU went, per Job, by category: one table per N measured
    with default flow control, and which stack frames count as which category."""
    sizes = sorted({r.n for r in runs if r.flow == DEFAULT})
    tables = [(n, profile_table(runs, DEFAULT, n)) for n in sizes]
    tables = [(n, table) for n, table in tables if table]
    lines = ["### Where the API server's CPU goes (its CPU profile)", ""]
    if not tables:
        return [*lines, "Not profiled in this run (`go` was not found, or profiling was off).", ""]
    lines += [
        "kube-apiserver's CPU profile (`/debug/pprof/profile`, a sample every 10 ms of CPU), "
        "taken in back-to-back pieces of one second over the whole run; every phase starts "
        "at the start of a piece, and a piece belongs to the phase its middle falls in. "
        "`go tool pprof -traces` gives each sample's stack, and the first category below "
        "whose frames it holds is where it counts. Per Job: the category's CPU in those "
        "phases less its rate with the server alone (measured in the baseline, as for the "
        "`/proc` figures) times their duration, over the Jobs of those phases (N per "
        "round). Each cell gives start-up / idle / bursts / all phases in ms, the median "
        "of the cell's runs. Writes in the crash bursts include the harness's own patch "
        "of each Pod's status (the kubelet's part), the same for every implementation. "
        "A request's kind is only on its stack inside the handler: in the start-up phases "
        "the creates are the rules reviews (the review's own evaluation, its category, is "
        "a small part of what a create costs: decoding, admission, the response), in the "
        "bursts they are Events. Garbage collection is everybody's allocations, not "
        "attributable. The bottom row is the same quantity from `/proc`, as a check on "
        "the sampling (both less the baseline); the profile comes out below it, by what "
        "its samples do not see.",
        "",
    ]
    for n, table in tables:
        lines += [f"N = {n}, default flow control (ms per Job):", "", *table, ""]
    lines += [
        "Which stack frames count as which category (first match wins):",
        "",
        *frames_table(),
        "",
    ]
    return lines


def splice(document: str, fleet: str) -> str:
    """``document`` with its fleet section replaced by ``fleet`` (or added before the
    analysis, or at the end)."""
    return records.splice(document, BEGIN, END, fleet, before=ANALYSIS)


def existing(document: str) -> str:
    """The fleet section of ``document``, or a placeholder between the markers."""
    if BEGIN in document and END in document:
        return BEGIN + document.split(BEGIN, 1)[1].split(END, 1)[0] + END
    return "\n".join(
        [
            BEGIN,
            "## 9. Fleet scale: N reporters on one API server (`make bench-scale`)",
            "",
            NOT_RUN,
            END,
        ]
    )
