"""Turning measurements into BENCHMARKS.md and plots.

Every verdict in the report is computed here from the measured numbers; neither
the template nor the analysis states one.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from harness.records import RealPodMemory

from bench.measure import (
    AT_ONCE,
    BASELINE,
    FLOOR,
    FLOOR_CODE,
    LATENCY_CRASH,
    LATENCY_RESULT,
    MODES,
    REFERENCE_BINARY,
    ROLES,
    RUNTIME,
    WORST_CASE,
    Results,
    Run,
    StormPoint,
)
from bench.reference import SOURCES, Source, Span, reference_requests
from bench.watches import WatchPoint

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MIB = 1024 * 1024

# The targets. Each limit is compared with one measured number by `targets()`.
RSS_NORMAL_MIB = 28.0
RSS_WORST_MIB = 38.0
RSS_REAL_POD_MIB = 34.0
CPU_AT_ONCE_SECONDS = 0.09
# Against the code before a change, measured in the same run (BASELINE_REPORTER).
CPU_AT_ONCE_BASELINE_RATIO = 0.75
# "≈ 0 CPU per idle second", made a number: one millisecond of CPU per second idle
# is 0.1 % of a core, or 0.3 s over a five-minute adapter.
CPU_IDLE_SECONDS_PER_SECOND = 0.001
FIRST_REQUEST_SECONDS = 0.080
# Five requests whatever the run time (review, Pod, Job, watch, write), plus the one
# Event the project Role allows (README "How the condition is written").
REQUESTS_PROJECT_ROLE = 5 + 1
REQUESTS_OVER_REFERENCE = 1
LATENCY_P99_SECONDS = {LATENCY_RESULT: 0.100, LATENCY_CRASH: 0.500}
# Other processes churning other names in the results directory at this rate or more:
# the reporter's share of one core meanwhile, and the result still seen within the poll
# interval.
STORM_RATE = 100_000
STORM_CPU_SHARE = 0.10

MODE_LABELS = {
    "auto": "`auto`",
    "poll": "`poll` (emulation of the reference's timing)",
}
PLOT_LABELS = {
    "auto": "MONITOR_MODE=auto",
    "poll": "MONITOR_MODE=poll (emulated reference timing)",
}
ROLE_LABELS = {"project": "project Role", "reference": "reference Role"}


# --- numbers --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100), linear interpolation between closest ranks; NaN
    for no values."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return float("nan")
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    """The median (NaN-free values only), NaN for none."""
    return percentile(values, 50)


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope and intercept of y against x; NaN without two distinct x."""
    usable = [(x, y) for x, y in points if not math.isnan(y)]
    if len({x for x, _ in usable}) < 2:
        return float("nan"), float("nan")
    mean_x = statistics.fmean(x for x, _ in usable)
    mean_y = statistics.fmean(y for _, y in usable)
    sxx = sum((x - mean_x) ** 2 for x, _ in usable)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in usable) / sxx
    return slope, mean_y - slope * mean_x


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _mib(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.1f} MiB"


def _cpu(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.3f} s"


def _ratio(ours: float, reference: float) -> str:
    if reference == 0 or math.isnan(ours) or math.isnan(reference):
        return "—"
    ratio = ours / reference
    return f"{ratio:.3f}×" if ratio < 0.1 else f"{ratio:.2f}×"


def _span_ratio(ours: float, reference: Span | None) -> str:
    """Ours divided by a reference figure; a range when the figure is one."""
    if reference is None:
        return "—"
    if reference.low == reference.high:
        return _ratio(ours, reference.low)
    low, high = _ratio(ours, reference.high), _ratio(ours, reference.low)
    return "—" if "—" in (low, high) else f"{low.rstrip('×')}–{high}"


def _range(values: Sequence[int]) -> str:
    """``n`` when all values agree, else ``low–high``."""
    if not values:
        return "—"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}–{high}"


def _header(*names: str) -> list[str]:
    return ["| " + " | ".join(names) + " |", "|---" * len(names) + "|"]


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


# --- what the runs give -----------------------------------------------------------------


def _values(runs: Sequence[Run], pick: Callable[[Run], float]) -> list[float]:
    return [v for v in map(pick, runs) if not math.isnan(v)]


def _totals(runs: Sequence[Run]) -> list[int]:
    return [sum(r.requests.values()) for r in runs]


def _runtime_runs(results: Results, role: str, runtime: int, mode: str = "auto") -> list[Run]:
    """Runs of adapter run time ``runtime`` (0: the result at start-up) under ``role``."""
    if runtime == 0:
        return results.select(AT_ONCE, mode=mode, role=role)
    return [r for r in results.select(RUNTIME, mode=mode, role=role) if r.runtime == runtime]


def _runtimes(results: Results) -> list[int]:
    return [0, *results.settings.api_runtimes]


def _runtime_label(runtime: int) -> str:
    return "result at once" if runtime == 0 else f"{runtime} s Job"


def start_runs(results: Results) -> list[Run]:
    """The runs started one at a time (no other reporter starting meanwhile): result at
    once under both Roles, and the `auto` latency runs."""
    return [
        *(r for role in ROLES for r in results.select(AT_ONCE, role=role)),
        *results.select(LATENCY_RESULT),
        *results.select(LATENCY_CRASH),
    ]


def normal_rss(results: Results) -> tuple[float, float]:
    """Median peak RSS of a normal Job: result at once, and result after monitoring began."""
    at_once = median(_values(results.select(AT_ONCE), lambda r: r.rss_mib))
    monitored = median(_values(results.select(LATENCY_RESULT), lambda r: r.rss_mib))
    return at_once, monitored


def worst_case_rss(results: Results) -> dict[tuple[str, bool], list[float]]:
    """Peak RSS per result shape and whether it was read while monitoring."""
    found: dict[tuple[str, bool], list[float]] = {}
    for run in results.select(WORST_CASE):
        found.setdefault((run.shape, not math.isnan(run.ready)), []).append(run.rss_mib)
    return found


def idle_cpu(results: Results, role: str, mode: str = "auto") -> tuple[float, float]:
    """Slope (CPU seconds per second of adapter run time) and intercept of the whole
    process's CPU against the adapter's run time."""
    points = [(r.runtime, r.cpu_total) for r in results.select(RUNTIME, mode=mode, role=role)]
    return fit_line(points)


def _programs(results: Results) -> list[tuple[str, str, str]]:
    """(label, mode, Role) of each program measured against the adapter's run time."""
    programs = [(f"status-reporter, {ROLE_LABELS[role]}", "auto", role) for role in ROLES]
    if results.select(RUNTIME, mode=REFERENCE_BINARY, role="reference"):
        programs.append(("reference binary, reference Role", REFERENCE_BINARY, "reference"))
    return programs


def latency_p99(results: Results, mode: str, kind: str) -> float:
    """The p99 reaction latency of ``mode`` for ``kind``."""
    return percentile([r.latency for r in results.select(kind, mode=mode)], 99)


def _home(path: str) -> str:
    """``path`` with the home directory written as ``~``, as it was likely given."""
    home = str(Path.home())
    return "~" + path[len(home) :] if path.startswith(home + "/") else path


def measured_reference(results: Results) -> Source | None:
    """The reference binary's figures from this run, when it was run."""
    runs = [r for r in results.runs if r.mode == REFERENCE_BINARY]
    if not runs:
        return None
    by_runtime = {
        t: _runtime_runs(results, "reference", t, REFERENCE_BINARY) for t in _runtimes(results)
    }
    by_runtime = {t: rs for t, rs in by_runtime.items() if rs}
    rss = max(median(_values(rs, lambda r: r.rss_mib)) for rs in by_runtime.values())
    first = median(_values(by_runtime.get(0, []), lambda r: r.first_request))
    counts = {t: _totals(rs) for t, rs in by_runtime.items()}
    sizes = ", ".join(f"{len(rs)} × {_runtime_label(t)}" for t, rs in by_runtime.items())
    return Source(
        label="measured in this run",
        short="this run",
        method=(
            f"the binary given as `REFERENCE_BINARY` ({_home(results.settings.reference_binary)}), "
            "started by `bench/launch.py` with in-cluster credentials (a private mount "
            "namespace with a tmpfs over `/run` holding its token and `ca.crt`) against "
            "this run's kube-apiserver under the reference Role, next to status-reporter's "
            f"runs of the same kinds ({sizes}); peak RSS and CPU from `wait4()` in the "
            "launcher; start → first request from the launcher's clock before `fork`"
        ),
        rss_mib=Span.of(rss),
        cpu_seconds={
            t: Span.of(median(_values(rs, lambda r: r.cpu_total))) for t, rs in by_runtime.items()
        },
        first_request_ms=None if math.isnan(first) else Span.of(first * 1000),
        requests={t: Span.of(min(c), max(c)) for t, c in counts.items()},
    )


def all_sources(results: Results) -> list[Source]:
    """The external figures, and this run's own measurement of the reference if any."""
    measured = measured_reference(results)
    return [*SOURCES, *([measured] if measured else [])]


# --- verdicts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One target, the number measured for it and whether it holds."""

    target: str
    limit: str
    measured: str
    met: bool | None
    source: str

    @property
    def text(self) -> str:
        """``met``, ``not met``, or why there is no verdict."""
        if self.met is None:
            return "no verdict (not measured here)"
        return "met" if self.met else "**not met**"


def _at_most(value: float, limit: float) -> bool | None:
    return None if math.isnan(value) else value <= limit


def real_pod_verdict(record: RealPodMemory | None, commit: str) -> Verdict:
    """The real-Pod memory target, judged from the cluster tests' last measurement on
    this checkout; no verdict when there is none."""
    target = "peak RSS in a real Pod"
    limit = f"≤ {RSS_REAL_POD_MIB:g} MiB"
    test = "`tests/cluster/test_jobs.py::test_reporter_peak_memory_in_a_real_pod`"
    if record is None:
        return Verdict(
            target,
            limit,
            "not measured here: run `make test-cluster` before `make bench`",
            None,
            f"{test} (cgroup peak of the reporter container on a real node)",
        )
    same = "this commit" if record.commit == commit else f"commit {record.commit}"
    process = f"; the process's own `VmHWM`: {record.vmhwm_mib:g} MiB" if record.vmhwm_mib else ""
    return Verdict(
        target,
        limit,
        f"{record.cgroup_peak_mib:g} MiB (container cgroup's maximum usage{process})",
        _at_most(record.cgroup_peak_mib, RSS_REAL_POD_MIB),
        f"{test}: native sidecar on a real node, recorded {record.measured_at} on {same}",
    )


def baseline_verdict(results: Results) -> Verdict:
    """The measured install's CPU per Job, result at once, against the baseline install's in the
    same run (runs taking turns), with the floor beside it."""
    target = "CPU per Job, result at once, against the code before (median)"
    limit = f"≤ {CPU_AT_ONCE_BASELINE_RATIO:g}× the baseline's"
    how = "both from `wait4()`, in-cluster credentials, project Role, the runs taking turns"
    baseline = median(_values(results.select(AT_ONCE, mode=BASELINE), lambda r: r.cpu_total))
    if math.isnan(baseline):
        return Verdict(target, limit, "not measured: `BASELINE_REPORTER` not given", None, how)
    ours = median(_values(results.select(AT_ONCE), lambda r: r.cpu_total))
    floor = median(_values(results.select(AT_ONCE, mode=FLOOR), lambda r: r.cpu_total))
    return Verdict(
        target,
        limit,
        f"{_cpu(ours)} against {_cpu(baseline)} ({ours / baseline:.2f}×); "
        f"the floor (`{FLOOR_CODE}`) {_cpu(floor)}",
        _at_most(ours, CPU_AT_ONCE_BASELINE_RATIO * baseline),
        how,
    )


def targets(results: Results, real_pod: Verdict) -> list[Verdict]:
    """Every target with its computed verdict; ``real_pod`` comes from the cluster tests."""
    settings = results.settings
    at_once, monitored = normal_rss(results)
    worst = {key: median(v) for key, v in worst_case_rss(results).items()}
    worst_key = max(worst, key=lambda k: worst[k]) if worst else None
    worst_value = worst[worst_key] if worst_key else float("nan")
    cpu_at_once = median(_values(results.select(AT_ONCE), lambda r: r.cpu_total))
    slope, _ = idle_cpu(results, "project")
    first = median(_values(start_runs(results), lambda r: r.first_request))
    project = {
        t: max(_totals(_runtime_runs(results, "project", t)), default=-1)
        for t in _runtimes(results)
    }
    measured_project = {t: n for t, n in project.items() if n >= 0}
    over = []
    for runtime in _runtimes(results):
        ours = _totals(_runtime_runs(results, "reference", runtime))
        reference = reference_requests(runtime, all_sources(results))
        if ours and reference is not None:
            over.append((runtime, max(ours), reference))
    size = settings.result_bytes
    size_text = f"{size / MIB:g} MiB" if size >= MIB else f"{size / 1024:g} KiB"
    verdicts = [
        Verdict(
            "peak RSS, normal Job (median)",
            f"≤ {RSS_NORMAL_MIB:g} MiB",
            f"{_mib(max(at_once, monitored))} (result at once {_mib(at_once)}; "
            f"result while monitoring {_mib(monitored)})",
            _at_most(max(at_once, monitored), RSS_NORMAL_MIB),
            "the higher of the two medians; `VmHWM` logged at exit",
        ),
        Verdict(
            f"peak RSS, any result file ≤ {size_text} (median of the worst shape)",
            f"≤ {RSS_WORST_MIB:g} MiB",
            _mib(worst_value)
            + (
                f" ({worst_key[0]}, {'while monitoring' if worst_key[1] else 'at start-up'})"
                if worst_key
                else ""
            ),
            _at_most(worst_value, RSS_WORST_MIB),
            f"{len(worst)} cases of {size_text} files of small JSON values (section 5)",
        ),
        real_pod,
        Verdict(
            "CPU per Job, result at once (median)",
            f"≤ {CPU_AT_ONCE_SECONDS:g} s",
            _cpu(cpu_at_once),
            _at_most(cpu_at_once, CPU_AT_ONCE_SECONDS),
            "user + system of the whole process from `wait4()`, project Role",
        ),
        baseline_verdict(results),
        Verdict(
            "CPU per idle second (≈ 0)",
            f"≤ {CPU_IDLE_SECONDS_PER_SECOND:g} s/s",
            "—" if math.isnan(slope) else f"{slope:.5f} s/s",
            _at_most(slope, CPU_IDLE_SECONDS_PER_SECOND),
            "least-squares slope of CPU per Job against the adapter's run time "
            f"({', '.join(f'{t} s' for t in settings.api_runtimes)}), project Role (section 6)",
        ),
        Verdict(
            "process start → first API request (p50)",
            f"≤ {FIRST_REQUEST_SECONDS * 1000:.0f} ms",
            _ms(first),
            _at_most(first, FIRST_REQUEST_SECONDS),
            "spawn (wall clock before the process is created) → the first audit event's "
            "`requestReceivedTimestamp`",
        ),
        Verdict(
            "API requests per Job, project Role, flat",
            f"≤ {REQUESTS_PROJECT_ROLE} (5 + the Event)",
            " / ".join(f"{n} ({_runtime_label(t)})" for t, n in measured_project.items()) or "—",
            (
                all(n <= REQUESTS_PROJECT_ROLE for n in measured_project.values())
                if measured_project
                else None
            ),
            "the most any run made, from the audit log",
        ),
        Verdict(
            "API requests per Job, reference Role",
            f"≤ reference + {REQUESTS_OVER_REFERENCE}",
            " / ".join(
                f"{ours} (reference {reference.format(0)}; {_runtime_label(t)})"
                for t, ours, reference in over
            )
            or "—",
            (
                all(ours <= reference.low + REQUESTS_OVER_REFERENCE for _, ours, reference in over)
                if over
                else None
            ),
            "the most any run made, against the lowest external count for the same run time "
            "(section 3)",
        ),
    ]
    verdicts += storm_verdicts(results.storm)
    for kind, what in ((LATENCY_RESULT, "result"), (LATENCY_CRASH, "crash")):
        p99 = latency_p99(results, "auto", kind)
        limit = LATENCY_P99_SECONDS[kind]
        verdicts.append(
            Verdict(
                f"{what} → condition (p99)",
                f"≤ {limit * 1000:.0f} ms",
                _ms(p99),
                _at_most(p99, limit),
                f"`auto`, project Role, {len(results.select(kind))} runs",
            )
        )
    return verdicts


def storm_verdicts(storm: StormPoint | None) -> list[Verdict]:
    """The reporter's CPU while other files are churned at ``STORM_RATE`` or more, and
    the result seen during it; no verdict for a storm slower than that."""
    if storm is None:
        return []
    fast_enough = storm.rate >= STORM_RATE
    source = (
        f"{storm.rate:,.0f} create/append/delete operations a second on other names for "
        f"{storm.seconds:.0f} s ({storm.file_system}, `harness/storm.py`); the reporter's "
        "user + system time from `/proc/PID/stat` before and after"
    )
    return [
        Verdict(
            f"CPU while other files are churned (≥ {STORM_RATE:,} operations/s)",
            f"≤ {STORM_CPU_SHARE:.0%} of one core",
            f"{storm.cpu_share:.1%}",
            _at_most(storm.cpu_share, STORM_CPU_SHARE) if fast_enough else None,
            source,
        ),
        Verdict(
            "result → condition during that storm",
            f"< POLL_INTERVAL_SECONDS ({storm.poll_interval:g} s)",
            _ms(storm.seen_seconds),
            (storm.seen_seconds < storm.poll_interval) if fast_enough else None,
            "the result written (renamed into place) while the storm went on; until the "
            "condition is on the Job",
        ),
    ]


def targets_table(verdicts: Sequence[Verdict]) -> list[str]:
    """The targets with the measured numbers and verdicts."""
    rows = _header("target", "limit", "measured", "verdict", "measured as")
    rows += [_row(v.target, v.limit, v.measured, v.text, v.source) for v in verdicts]
    return rows


def headline(verdicts: Sequence[Verdict]) -> list[str]:
    """How many targets this run met, and which it did not."""
    judged = [v for v in verdicts if v.met is not None]
    missed = [v for v in judged if not v.met]
    lines = [f"- **{len(judged) - len(missed)} of {len(judged)}** targets met by this run."]
    if missed:
        lines.append("- Not met: " + "; ".join(f"{v.target} ({v.measured})" for v in missed) + ".")
    unjudged = [v.target for v in verdicts if v.met is None]
    if unjudged:
        lines.append("- Not judged here: " + "; ".join(unjudged) + ".")
    return lines


# --- sections ---------------------------------------------------------------------------


def installation(script: Path) -> str:
    """What runs when ``script`` runs: its interpreter and the packages beside it, as
    that interpreter reports them."""
    probe = (
        "import importlib.metadata as m, os, sys; "
        "print(sys.version.split()[0], f'(`{os.path.realpath(sys._base_executable)}`)'); "
        "print(', '.join(sorted(f'{d.name} {d.version}' for d in m.distributions())))"
    )
    interpreter = script.read_text().splitlines()[0].removeprefix("#!").strip()
    output = subprocess.run(
        [interpreter, "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return (
        f"- status-reporter measured from `{script}`: Python {output[0]}; the packages in its "
        f"environment: {output[1]}"
    )


def machine(version_line: str, assets: Path, reporter: Path) -> list[str]:
    """Lines describing where the numbers come from."""
    cpu = "unknown CPU"
    mem_kib = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        pass
    etcd = subprocess.run(
        [str(assets / "etcd"), "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores, {mem_kib / 1024 / 1024:.0f} GiB RAM, "
        f"Linux {platform.release()}",
        f"- The harness: Python {platform.python_version()}, status-reporter "
        f"{version('status-reporter')} (this checkout)",
        installation(reporter),
        f"- kube-apiserver {version_line}, {etcd[0] if etcd else 'etcd'} (local, loopback, "
        "`--unsafe-no-fsync`), built by `hack/controlplane/build.sh`",
    ]


def external_table(results: Results) -> list[str]:
    """The reference's figures next to this run's, with ratios."""
    sources = all_sources(results)
    at_once_rss, monitored_rss = normal_rss(results)

    def cpu(runtime: int) -> float:
        return median(_values(_runtime_runs(results, "project", runtime), lambda r: r.cpu_total))

    def requests(role: str, runtime: int) -> float:
        totals = _totals(_runtime_runs(results, role, runtime))
        return float(median([float(t) for t in totals])) if totals else float("nan")

    first = median(_values(start_runs(results), lambda r: r.first_request))
    rows = _header(
        "per Job",
        *(f"reference: {s.label}" for s in sources),
        "status-reporter, this run (median)",
        "ours ÷ reference (" + " / ".join(s.short for s in sources) + ")",
    )

    def add(
        name: str,
        ours: float,
        ours_text: str,
        spans: Sequence[Span | None],
        *,
        digits: int,
        unit: str = "",
        notes: Sequence[str | None] | None = None,
    ) -> None:
        cells = [
            note or (span.format(digits, unit) if span else "—")
            for span, note in zip(spans, notes or [None] * len(spans), strict=True)
        ]
        ratios = " / ".join(_span_ratio(ours, span) for span in spans)
        rows.append(_row(name, *cells, ours_text, ratios))

    ours_rss = max(at_once_rss, monitored_rss)
    add("peak RSS", ours_rss, _mib(ours_rss), [s.rss_mib for s in sources], digits=1, unit="MiB")
    for runtime in _runtimes(results):
        if not any(runtime in s.cpu_seconds for s in sources):
            continue
        value = cpu(runtime)
        add(
            f"CPU seconds, {_runtime_label(runtime)}",
            value,
            _cpu(value) + (" (project Role)" if runtime else ""),
            [s.cpu_seconds.get(runtime) for s in sources],
            digits=3,
            unit="s",
        )
    add(
        "process start → first request at the API server, p50",
        first * 1000,
        _ms(first),
        [s.first_request_ms for s in sources],
        digits=0,
        unit="ms",
    )
    for runtime in _runtimes(results):
        if reference_requests(runtime, sources) is None:
            continue
        for role in ROLES:
            value = requests(role, runtime)
            add(
                f"API requests, {_runtime_label(runtime)}, ours under the {ROLE_LABELS[role]}",
                value,
                "—" if math.isnan(value) else f"{value:g}",
                [s.requests.get(runtime) for s in sources],
                digits=0,
                notes=[s.requests_note.get(runtime) for s in sources],
            )
    return rows


def latency_table(results: Results, kind: str) -> list[str]:
    """p50/p95/p99 per mode and the ratio of `auto` to the emulated reference timing."""
    rows = _header("mode", "runs", "p50", "p95", "p99", "max")
    stats: dict[str, list[float]] = {}
    for mode in MODES:
        values = [r.latency for r in results.select(kind, mode=mode)]
        stats[mode] = [percentile(values, q) for q in (50, 95, 99, 100)]
        rows.append(_row(MODE_LABELS[mode], str(len(values)), *map(_ms, stats[mode])))
    ratios = [_ratio(a, p) for a, p in zip(stats["auto"], stats["poll"], strict=True)]
    rows.append(_row("auto ÷ poll", "", *ratios))
    return rows


def requests_table(results: Results) -> list[str]:
    """Requests per Job by verb and resource, per Role and adapter run time; a range
    where the repeats differed."""
    columns = [(role, t) for role in ROLES for t in _runtimes(results)]
    runs = {c: _runtime_runs(results, *c) for c in columns}
    keys = sorted({k for rs in runs.values() for r in rs for k in r.requests})
    rows = _header("request", *(f"{ROLE_LABELS[r]}, {_runtime_label(t)}" for r, t in columns))
    for key in keys:
        rows.append(
            _row(f"`{key}`", *(_range([r.requests.get(key, 0) for r in runs[c]]) for c in columns))
        )
    rows.append(_row("**total**", *(f"**{_range(_totals(runs[c]))}**" for c in columns)))
    rows.append(_row("runs", *(str(len(runs[c])) for c in columns)))
    for source in all_sources(results):
        cells = []
        for role, runtime in columns:
            span = source.requests.get(runtime) if role == "reference" else None
            cells.append(span.format(0) if span else "")
        rows.append(_row(f"reference binary: {source.label}", *cells))
    return rows


def footprint_table(results: Results) -> list[str]:
    """Start-up, peak RSS and CPU per scenario."""
    rows = _header(
        "scenario",
        "runs",
        "start → first request p50 / p95",
        "peak RSS p50 / max",
        "CPU, whole process, p50 / p95",
        "CPU, self-reported, p50",
        "requests",
    )
    scenarios = [
        (f"result at once, {ROLE_LABELS[role]}", results.select(AT_ONCE, role=role))
        for role in ROLES
    ]
    scenarios += [
        ("result while monitoring (`auto` latency runs)", results.select(LATENCY_RESULT)),
        ("crash while monitoring (`auto` latency runs)", results.select(LATENCY_CRASH)),
    ]
    reference = results.select(AT_ONCE, mode=REFERENCE_BINARY, role="reference")
    if reference:
        scenarios.append(("reference binary, result at once, reference Role", reference))
    baseline = results.select(AT_ONCE, mode=BASELINE)
    if baseline:
        scenarios.append(("the baseline install (`BASELINE_REPORTER`), result at once", baseline))
    floor = results.select(AT_ONCE, mode=FLOOR)
    if floor:
        scenarios.append((f"the floor: the interpreter running `{FLOOR_CODE}`", floor))
    for name, runs in scenarios:
        first = _values(runs, lambda r: r.first_request)
        rss = _values(runs, lambda r: r.rss_mib)
        cpu = _values(runs, lambda r: r.cpu_total)
        rows.append(
            _row(
                name,
                str(len(runs)),
                f"{_ms(percentile(first, 50))} / {_ms(percentile(first, 95))}",
                f"{_mib(median(rss))} / {_mib(max(rss, default=float('nan')))}",
                f"{_cpu(median(cpu))} / {_cpu(percentile(cpu, 95))}",
                _cpu(median(_values(runs, lambda r: r.cpu_self))),
                _range(_totals(runs)),
            )
        )
    return rows


def worst_case_table(results: Results) -> list[str]:
    """Peak RSS per result shape, read at start-up and while monitoring."""
    found = worst_case_rss(results)
    rows = _header("result file", "read at start-up: p50 / max", "read while monitoring: p50 / max")
    for shape in dict.fromkeys(shape for shape, _ in found):
        cells = []
        for monitoring in (False, True):
            values = found.get((shape, monitoring), [])
            cells.append(f"{_mib(median(values))} / {_mib(max(values, default=float('nan')))}")
        rows.append(_row(shape, *cells))
    return rows


def cpu_runtime_table(results: Results) -> list[str]:
    """CPU per Job against the adapter's run time, and the fitted CPU per idle second."""
    rows = _header("program", "adapter run time", "runs", "CPU per Job, whole process", "requests")
    for label, mode, role in _programs(results):
        for runtime in results.settings.api_runtimes:
            runs = _runtime_runs(results, role, runtime, mode)
            cpu = ", ".join(_cpu(r.cpu_total) for r in runs)
            rows.append(_row(label, f"{runtime} s", str(len(runs)), cpu, _range(_totals(runs))))
    rows.append("")
    rows += _header(
        "program", "CPU per idle second (slope)", "CPU of the rest of a Job (intercept)"
    )
    for label, mode, role in _programs(results):
        slope, intercept = idle_cpu(results, role, mode)
        slope_text = "—" if math.isnan(slope) else f"{slope:.5f} s/s ({slope * 1000:.2f} ms/s)"
        rows.append(_row(label, slope_text, _cpu(intercept)))
    return rows


def scale_table(results: Results) -> list[str]:
    """Steady-state request rate and reaction latency with N reporters at once."""
    rows = _header(
        "N",
        "mode",
        "steady-state requests/s (reporters)",
        "result → condition p50 / p99",
        "start-up to ready p99",
    )
    for point in sorted(results.scale, key=lambda p: (p.n, p.mode)):
        lat = point.latencies
        rows.append(
            _row(
                str(point.n),
                MODE_LABELS[point.mode],
                f"{point.requests_per_second:.2f}",
                f"{_ms(percentile(lat, 50))} / {_ms(percentile(lat, 99))}",
                _ms(percentile(point.ready, 99)),
            )
        )
    return rows


def kib_per_watch(watches: Sequence[WatchPoint]) -> list[tuple[WatchPoint, float]]:
    """Each point with N > 0 and its kube-apiserver RSS above N = 0, in KiB per watch."""
    base = next((p for p in watches if p.n == 0), None)
    if base is None:
        return []
    return [(p, (p.rss_mib - base.rss_mib) * 1024 / p.n) for p in watches if p.n > 0]


def watch_table(watches: Sequence[WatchPoint]) -> list[str]:
    """kube-apiserver RSS and CPU against the number of idle watches."""
    rows = _header(
        "idle watches",
        "kube-apiserver VmRSS (median)",
        "samples",
        "above 0 watches",
        "KiB per watch",
        "kube-apiserver CPU",
        "watches still open",
    )
    per_watch = {p.n: kib for p, kib in kib_per_watch(watches)}
    base = next((p.rss_mib for p in watches if p.n == 0), float("nan"))
    for point in watches:
        low, high = min(point.rss_samples), max(point.rss_samples)
        rows.append(
            _row(
                f"{point.n:,}",
                _mib(point.rss_mib),
                f"{len(point.rss_samples)} ({low:.1f}–{high:.1f})",
                "—" if point.n == 0 else f"+{point.rss_mib - base:.1f} MiB",
                f"{per_watch[point.n]:.1f}" if point.n in per_watch else "—",
                f"{point.cpu_per_second * 1000:.1f} ms/s",
                f"{point.still_open:,}",
            )
        )
    return rows


def extrapolation(results: Results, watches: Sequence[WatchPoint]) -> list[str]:
    """The 10,000-Job estimate from the measured figures."""
    jobs, duration = 10_000, 300
    interval = results.settings.container_interval
    per_watch = kib_per_watch(watches)
    biggest_watch, kib = max(per_watch, key=lambda pk: pk[0].n) if per_watch else (None, math.nan)
    watch_gib = kib * jobs / MIB
    biggest = max((p.n for p in results.scale), default=0)
    rate = {p.mode: p.requests_per_second / p.n for p in results.scale if p.n == biggest}
    longest = results.settings.api_runtimes[-1]
    per_job = {
        role: max(_totals(_runtime_runs(results, role, longest)), default=0) for role in ROLES
    }
    rss = max(normal_rss(results))
    reference_rss = Span(
        min(s.rss_mib.low for s in all_sources(results) if s.rss_mib),
        max(s.rss_mib.high for s in all_sources(results) if s.rss_mib),
    )
    starts = jobs / duration
    watch_note = (
        f"{watch_gib:.2f} GiB ({kib:.0f} KiB × {jobs:,}, linear from {biggest_watch.n:,} "
        "watches, section 8)"
        if biggest_watch
        else "not measured"
    )
    return [
        f"Assume {jobs:,} adapter Jobs running at any moment, each for {duration} s, so "
        f"{starts:.0f} Jobs start and finish every second. The two ways of following the "
        f"adapter: a watch per Pod (`auto` under the project Role), or a read of the Pod "
        f"every {interval} s (the reference's timing, and status-reporter under the "
        "reference Role or with `MONITOR_MODE=poll`).",
        "",
        *_header("", "watch per Pod", f"poll every {interval} s"),
        _row(
            f"idle requests/s per reporter (measured, N = {biggest})",
            f"{rate.get('auto', math.nan):.4f}",
            f"{rate.get('poll', math.nan):.4f}",
        ),
        _row(
            f"steady-state requests/s, {jobs:,} idle reporters",
            f"{rate.get('auto', math.nan) * jobs:,.0f}",
            f"{jobs / interval:,.0f} ({jobs:,} / {interval} s)",
        ),
        _row("kube-apiserver memory held for the watches", watch_note, "0"),
        _row(
            f"requests per Job over its life (measured at {longest} s, status-reporter)",
            str(per_job["project"]),
            f"{per_job['reference']} (reference Role)",
        ),
        _row(
            f"all reporter requests/s ({starts:.0f} Jobs/s × requests per Job)",
            f"{starts * per_job['project']:,.0f}",
            f"{starts * per_job['reference']:,.0f}",
        ),
        _row(
            f"reporter memory, normal-Job peak RSS × {jobs:,}",
            f"{rss * jobs / 1024:,.0f} GiB (status-reporter)",
            f"{reference_rss.low * jobs / 1024:,.0f}–{reference_rss.high * jobs / 1024:,.0f} GiB "
            "(reference binary)",
        ),
    ]


def sources_text(results: Results) -> list[str]:
    """How each figure of the reference was measured."""
    lines = []
    for source in all_sources(results):
        lines.append(f"- **{source.label[0].upper()}{source.label[1:]}**: {source.method}.")
    if results.reference_note:
        lines.append(
            f"- Not measured in this run ({results.reference_note}); "
            "`make bench REFERENCE_BINARY=path/to/status-reporter` adds a measurement of the "
            "binary itself, side by side with status-reporter."
        )
    return lines


# --- plots ------------------------------------------------------------------------------


def plots(results: Results, watches: Sequence[WatchPoint], directory: Path) -> list[Path]:
    """Latency CDFs per mode, request rate against N, CPU against run time, and
    kube-apiserver memory against idle watches."""
    # Only make bench installs matplotlib (the bench extra); the smoke run in make
    # test writes no plots.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw, size in (
        ("latency-cdf.png", _plot_latency, (11, 4)),
        ("requests-per-second.png", _plot_scale, (6, 4)),
        ("cpu-per-runtime.png", _plot_cpu, (6, 4)),
    ):
        figure = plt.figure(figsize=size)
        draw(figure, results)
        figure.tight_layout()
        figure.savefig(directory / name, dpi=110)
        plt.close(figure)
        written.append(directory / name)
    figure = plt.figure(figsize=(6, 4))
    axis = figure.add_subplot()
    axis.plot([p.n for p in watches], [p.rss_mib for p in watches], marker="o")
    axis.set_xlabel("idle Pod watches open")
    axis.set_ylabel("kube-apiserver VmRSS (MiB)")
    axis.set_title("API server memory against idle watches")
    axis.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(directory / "apiserver-rss-per-watch.png", dpi=110)
    plt.close(figure)
    written.append(directory / "apiserver-rss-per-watch.png")
    return written


def _plot_latency(figure: Figure, results: Results) -> None:
    axes = figure.subplots(1, 2)
    for axis, kind, title in (
        (axes[0], LATENCY_RESULT, "result file → condition"),
        (axes[1], LATENCY_CRASH, "crash → condition"),
    ):
        for mode in MODES:
            values = sorted(r.latency * 1000 for r in results.select(kind, mode=mode))
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            axis.step(values, fractions, where="post", label=PLOT_LABELS[mode])
        axis.axvline(LATENCY_P99_SECONDS[kind] * 1000, color="grey", linestyle=":", label="target")
        axis.set_xscale("log")
        axis.set_xlabel("latency (ms, log scale)")
        axis.set_ylabel("fraction of runs")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small", loc="center")


def _plot_scale(figure: Figure, results: Results) -> None:
    axis = figure.add_subplot()
    for mode in MODES:
        points = sorted((p for p in results.scale if p.mode == mode), key=lambda p: p.n)
        axis.plot(
            [p.n for p in points],
            [p.requests_per_second for p in points],
            marker="o",
            label=PLOT_LABELS[mode],
        )
    axis.set_xlabel("reporters running at once (N)")
    axis.set_ylabel("steady-state API requests/s")
    axis.set_title("API load from idle reporters")
    axis.grid(True, alpha=0.3)
    axis.legend()


def _plot_cpu(figure: Figure, results: Results) -> None:
    axis = figure.add_subplot()
    for label, mode, role in _programs(results):
        runs = [
            *results.select(AT_ONCE, mode=mode, role=role),
            *results.select(RUNTIME, mode=mode, role=role),
        ]
        axis.scatter([r.runtime for r in runs], [r.cpu_total for r in runs], label=label, s=14)
        slope, intercept = idle_cpu(results, role, mode)
        if not math.isnan(slope):
            xs = [0, max(results.settings.api_runtimes)]
            axis.plot(xs, [intercept + slope * x for x in xs], linestyle="--", linewidth=1)
    axis.set_xlabel("adapter run time (s; 0 = result at once)")
    axis.set_ylabel("CPU seconds per Job (whole process)")
    axis.set_title("reporter CPU against adapter run time")
    axis.grid(True, alpha=0.3)
    axis.legend()
