"""Turning measurements into BENCHMARKS.md and plots."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from tests.harness.controlplane import ControlPlane

from bench.measure import MODES, Results, Sample

TARGETS = {
    "result": 0.100,
    "crash": 0.500,
}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100), linear interpolation between closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _ratio(ours: float, reference: float) -> str:
    if reference == 0:
        return "—"
    return f"{ours / reference:.3f}×" if ours / reference < 0.1 else f"{ours / reference:.2f}×"


def _header(*names: str) -> str:
    return "| " + " | ".join(names) + " |\n" + "|---" * len(names) + "|"


def _samples(results: Results, mode: str, kind: str) -> list[Sample]:
    return [s for s in results.samples if s.mode == mode and s.kind == kind]


def machine(plane: ControlPlane, assets: Path) -> list[str]:
    """Lines describing where the numbers come from."""
    cpu = "unknown CPU"
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
        mem_kib = 0
    etcd = subprocess.run(
        [str(assets / "etcd"), "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores, {mem_kib / 1024 / 1024:.0f} GiB RAM, "
        f"Linux {platform.release()}",
        f"- Python {platform.python_version()}, lightkube {version('lightkube')}, "
        f"status-reporter {version('status-reporter')}",
        f"- kube-apiserver {plane.version}, {etcd[0] if etcd else 'etcd'} (local, loopback, "
        "`--unsafe-no-fsync`), built by `hack/controlplane/build.sh`",
    ]


def latency_table(results: Results, kind: str) -> list[str]:
    """p50/p95/p99 per mode and the ratio to the reference behaviour (poll)."""
    rows = [_header("mode", "runs", "p50", "p95", "p99", "max", "p99 target")]
    stats: dict[str, list[float]] = {}
    for mode in MODES:
        values = [s.latency for s in _samples(results, mode, kind)]
        stats[mode] = [percentile(values, q) for q in (50, 95, 99)] + [max(values)]
        p50, p95, p99, top = stats[mode]
        target = TARGETS[kind]
        verdict = (
            f"≤ {_ms(target)}: {'met' if p99 <= target else 'missed'}" if mode == "auto" else "—"
        )
        cells = [f"`{mode}`", str(len(values)), *map(_ms, (p50, p95, p99, top)), verdict]
        rows.append("| " + " | ".join(cells) + " |")
    auto, poll = stats["auto"], stats["poll"]
    rows.append(
        f"| auto ÷ poll | | {_ratio(auto[0], poll[0])} | {_ratio(auto[1], poll[1])} | "
        f"{_ratio(auto[2], poll[2])} | {_ratio(auto[3], poll[3])} | |"
    )
    return rows


def requests_table(results: Results) -> list[str]:
    """Requests per Job by verb and resource, per adapter run time."""
    runtimes = sorted({runtime for _, runtime in results.requests})
    keys = sorted({k for counts in results.requests.values() for k in counts})
    header = "| request | " + " | ".join(f"{m} {r} s" for m in MODES for r in runtimes) + " |"
    rows = [header, "|---|" + "---|" * (len(MODES) * len(runtimes))]
    for key in keys:
        cells = [str(results.requests[(m, r)].get(key, 0)) for m in MODES for r in runtimes]
        rows.append(f"| `{key}` | " + " | ".join(cells) + " |")
    totals = [sum(results.requests[(m, r)].values()) for m in MODES for r in runtimes]
    rows.append("| **total** | " + " | ".join(f"**{t}**" for t in totals) + " |")
    ratios = [
        _ratio(
            sum(results.requests[("auto", r)].values()), sum(results.requests[("poll", r)].values())
        )
        for r in runtimes
    ]
    rows.append(
        "| auto ÷ poll | " + " | ".join(ratios) + " | " + " | ".join("" for _ in runtimes) + " |"
    )
    return rows


def footprint_table(results: Results) -> list[str]:
    """Start-up to ready, peak RSS, CPU per Job."""
    rows = [
        _header(
            "mode",
            "start-up to ready p50 / p95",
            "peak RSS p50 / max",
            "peak RSS, 1 MiB result of 100k objects",
            "CPU seconds per Job p50 / p95",
        )
    ]
    figures = {}
    for mode in MODES:
        samples = _samples(results, mode, "footprint")
        ready = [s.ready for s in samples]
        rss = [s.rss_mib for s in samples]
        cpu = [s.cpu_seconds for s in samples]
        figures[mode] = (percentile(ready, 50), max(rss), percentile(cpu, 50))
        worst = results.worst_case_rss.get(mode)
        rows.append(
            f"| `{mode}` | {_ms(percentile(ready, 50))} / {_ms(percentile(ready, 95))} | "
            f"{statistics.median(rss):.1f} / {max(rss):.1f} MiB | "
            f"{f'{worst:.1f} MiB' if worst else '—'} | "
            f"{percentile(cpu, 50):.3f} / {percentile(cpu, 95):.3f} |"
        )
    a, p = figures["auto"], figures["poll"]
    rows.append(
        f"| auto ÷ poll | {_ratio(a[0], p[0])} | {_ratio(a[1], p[1])} | | {_ratio(a[2], p[2])} |"
    )
    return rows


def scale_table(results: Results) -> list[str]:
    """Steady-state request rate and reaction latency with N reporters at once."""
    rows = [
        _header(
            "N",
            "mode",
            "steady-state requests/s (reporters)",
            "result → condition p50 / p99",
            "start-up to ready p99",
        )
    ]
    for point in sorted(results.scale, key=lambda p: (p.n, p.mode)):
        lat = point.latencies or [float("nan")]
        cells = [
            str(point.n),
            f"`{point.mode}`",
            f"{point.requests_per_second:.2f}",
            f"{_ms(percentile(lat, 50))} / {_ms(percentile(lat, 99))}",
            _ms(percentile(point.ready, 99)),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def plots(results: Results, directory: Path) -> list[Path]:
    """Latency CDFs per mode, and request rate against N."""
    # Only make bench installs matplotlib (the bench extra); the smoke run in make
    # test writes no plots.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, kind, title in (
        (axes[0], "result", "result file → condition"),
        (axes[1], "crash", "crash → condition"),
    ):
        for mode in MODES:
            values = sorted(s.latency * 1000 for s in _samples(results, mode, kind))
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            axis.step(values, fractions, where="post", label=f"MONITOR_MODE={mode}")
        axis.set_xscale("log")
        axis.set_xlabel("latency (ms, log scale)")
        axis.set_ylabel("fraction of runs")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    path = directory / "latency-cdf.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    written.append(path)
    figure, axis = plt.subplots(figsize=(6, 4))
    for mode in MODES:
        points = sorted((p for p in results.scale if p.mode == mode), key=lambda p: p.n)
        axis.plot(
            [p.n for p in points],
            [p.requests_per_second for p in points],
            marker="o",
            label=f"MONITOR_MODE={mode}",
        )
    axis.set_xlabel("reporters running at once (N)")
    axis.set_ylabel("steady-state API requests/s")
    axis.set_title("API load from idle reporters")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path = directory / "requests-per-second.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    written.append(path)
    return written
