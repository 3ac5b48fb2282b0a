"""The fleet-scale section of BENCHMARKS.md: tables, computed verdicts, plots and the
10,000-Job model, from the runs of ``bench/fleet.py``."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import records

from bench.fleet import (
    CRASH_BURST,
    DEFAULT,
    IDLE,
    IMPLEMENTATIONS,
    REFERENCE,
    RESULT_BURST,
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
# The result burst's p99 target with default flow control, at the largest N.
P99_TARGET_SECONDS = 1.0
TARGET_N = 300
MODEL_JOBS = 10_000
LABELS = {i.name: i.label for i in IMPLEMENTATIONS}


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


def _find(runs: Sequence[FleetRun], name: str, flow: str, n: int) -> FleetRun | None:
    return next(
        (r for r in runs if (r.implementation, r.flow, r.n) == (name, flow, n)),
        None,
    )


def summary_table(runs: Sequence[FleetRun], flow: str) -> list[str]:
    """One row per N and implementation under ``flow``."""
    rows = [
        "| N | implementation | API server CPU (s) | CPU per Job (ms) | API server peak RSS "
        "(MiB) | idle requests/s per Job | result → condition p50 / p99 / max (ms) | "
        "crash → condition p50 / p99 / max (ms) | 429 | 5xx | lost | wrong | reporters' "
        "peak RSS, sum (MiB) | reporters' CPU (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        if run.flow != flow:
            continue
        rows.append(
            f"| {run.n} | {LABELS[run.implementation]} | {run.reporters_load:.1f} | "
            f"{_cpu_per_job(run) * 1000:.0f} | {run.apiserver_peak_rss_mib:.0f} | "
            f"{_idle_rate(run):.3f} | {_latency(run.latencies.get(RESULT_BURST, []))} | "
            f"{_latency(run.latencies.get(CRASH_BURST, []))} | {run.throttled} | "
            f"{run.server_errors} | {run.lost} | {run.wrong} | "
            f"{run.reporters_peak_rss_mib:.0f} | {run.reporters_cpu:.1f} |"
        )
    return rows


def phase_table(runs: Sequence[FleetRun]) -> list[str]:
    """Per run and phase: duration, API server CPU and memory, requests by verb."""
    rows = [
        "| flow | N | implementation | round | phase | s | API server CPU (s) | peak RSS (MiB) "
        "| requests/s | by verb | 429 | 5xx |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for index, phase in enumerate(run.phases):
            verbs = ", ".join(f"{verb} {count}" for verb, count in sorted(phase.verbs.items()))
            rate = phase.requests / phase.seconds if phase.seconds > 0 else math.nan
            rows.append(
                f"| {run.flow} | {run.n} | {run.implementation} | {index // 3 + 1} | "
                f"{phase.name} | {phase.seconds:.1f} | {phase.apiserver_cpu:.2f} | "
                f"{phase.apiserver_peak_rss_mib:.0f} | {rate:.1f} | {verbs or '–'} | "
                f"{phase.throttled} | {phase.server_errors} |"
            )
    return rows


def spread_table(runs: Sequence[FleetRun]) -> list[str]:
    """How close to "at once" the harness got: launch and burst spreads."""
    rows = [
        "| flow | N | implementation | launches spread (s), rounds 1 / 2 | results written "
        "within (s) | crashes reported within (s) | reporters' exit codes | run took (s) | "
        "API server CPU, whole run with the harness's set-up (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        codes = ", ".join(f"{code}: {count}" for code, count in sorted(run.exit_codes.items()))
        rows.append(
            f"| {run.flow} | {run.n} | {run.implementation} | "
            f"{' / '.join(f'{s:.2f}' for s in run.launch_spread)} | "
            f"{run.burst_spread.get(RESULT_BURST, math.nan):.2f} | "
            f"{run.burst_spread.get(CRASH_BURST, math.nan):.2f} | {codes} | {run.seconds:.0f} | "
            f"{run.apiserver_cpu:.1f} |"
        )
    return rows


@dataclass(frozen=True)
class Verdict:
    """One target of the fleet section."""

    target: str
    measured: str
    met: bool | None  # None: could not be measured in this run

    def row(self) -> str:
        """The target as a table row."""
        verdict = "not measured" if self.met is None else ("met" if self.met else "NOT met")
        return f"| {self.target} | {self.measured} | {verdict} |"


def verdicts(runs: Sequence[FleetRun], settings: FleetSettings) -> list[Verdict]:
    """The fleet targets, computed from ``runs``."""
    ours = [r for r in runs if r.implementation != REFERENCE.name]
    bad = [r for r in ours if r.lost or r.wrong]
    result: list[Verdict] = [
        Verdict(
            "0 lost or wrong conditions, status-reporter, every N, default and throttled",
            "none"
            if not bad
            else "; ".join(
                f"{r.implementation} {r.flow} N={r.n}: {r.lost} lost, "
                f"{r.wrong} wrong {r.wrong_examples}"
                for r in bad
            ),
            not bad if ours else None,
        )
    ]
    largest = max(settings.sizes)
    at = TARGET_N if TARGET_N in settings.sizes else largest
    watch = _find(runs, WATCH.name, DEFAULT, at)
    p99 = percentile(watch.latencies.get(RESULT_BURST, []), 0.99) if watch else math.nan
    result.append(
        Verdict(
            f"result burst at N = {at}, default flow control: p99 result → condition "
            f"≤ {P99_TARGET_SECONDS:g} s (project Role)",
            f"{_ms(p99)} ms",
            None if math.isnan(p99) else p99 <= P99_TARGET_SECONDS,
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
            ours_run, reference = (
                _find(runs, WATCH.name, flow, n),
                _find(runs, REFERENCE.name, flow, n),
            )
            if ours_run is None:
                continue
            if reference is None:
                result.append(
                    Verdict(
                        f"API server CPU per Job ≤ the reference's, N = {n}, {flow}",
                        f"{_cpu_per_job(ours_run) * 1000:.0f} ms; reference not run",
                        None,
                    )
                )
                continue
            result.append(
                Verdict(
                    f"API server CPU per Job ≤ the reference's, N = {n}, {flow}",
                    f"{_cpu_per_job(ours_run) * 1000:.0f} ms against "
                    f"{_cpu_per_job(reference) * 1000:.0f} ms",
                    _cpu_per_job(ours_run) <= _cpu_per_job(reference),
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
        chosen = sorted(
            (r for r in runs if r.implementation == implementation.name and r.flow == DEFAULT),
            key=lambda r: r.n,
        )
        if not chosen:
            continue
        ns = [r.n for r in chosen]
        cpu_axis.plot(
            ns, [r.reporters_load for r in chosen], marker="o", label=implementation.label
        )
        memory_axis.plot(
            ns, [r.apiserver_peak_rss_mib for r in chosen], marker="o", label=implementation.label
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
    met = sum(v.met is True for v in checks)
    decided = sum(v.met is not None for v in checks)
    lines = [
        BEGIN,
        "## 9. Fleet scale: N reporters on one API server (`make bench-scale`)",
        "",
        f"**{met} of {decided}** measured fleet targets met"
        + (f"; {len(checks) - decided} not measured" if decided < len(checks) else "")
        + f". Generated by `make bench-scale` from `bench/fleet.py` and `bench/fleet_report.py`"
        f" in {minutes:.0f} minutes.",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        *(v.row() for v in checks),
        "",
        "### How it was measured",
        "",
        f"N = {', '.join(str(n) for n in settings.sizes)} reporters (throttled: "
        f"{', '.join(str(n) for n in settings.throttled_sizes)}), each with its own "
        "namespace, Job, Pod and ServiceAccount token, launched one after the other as fast "
        "as the harness can (the spread is in the last table) on a fresh kube-apiserver "
        "per implementation, flow-control setting and N. A start-up phase ends "
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
        "",
    ]
    if plotted:
        lines += ["![API server CPU and memory against N](docs/bench/fleet-apiserver.png)", ""]
    for flow, title in ((DEFAULT, "default flow control"), (THROTTLED, "throttled")):
        if any(r.flow == flow for r in runs):
            lines += [f"### Per N, {title}", "", *summary_table(runs, flow), ""]
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
