"""make bench: measure status-reporter against the harness's kube-apiserver and write
BENCHMARKS.md with plots.

    python -m bench.run                     # the full run (about 10 minutes on 2 cores)
    python -m bench.run --smoke --out DIR   # everything once, N = 1, tiny sizes

With ``REFERENCE_BINARY`` (or ``--reference-binary``) set to the reference Go binary,
it is also run side by side, with in-cluster credentials (``bench/launch.py``, root).
With ``BASELINE_REPORTER`` (or ``--baseline-reporter``) set to another install's
console script (the code before a change, e.g. built by ``hack/runtime-venv.sh`` from
an older checkout), its result-at-once runs take turns with this one's, next to the
floor (the interpreter importing ``asyncio`` and ``ssl`` only).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.controlplane import ROOT, ControlPlane, binaries
from harness.records import checkout_commit, real_pod_memory
from harness.reporter import SCRIPT

from bench.fleet_report import existing as fleet_section
from bench.measure import SMOKE, STAGGER, Results, Settings, run_all
from bench.reference import REQUEST_PATTERN
from bench.report import (
    cpu_runtime_table,
    external_table,
    extrapolation,
    footprint_table,
    headline,
    latency_table,
    machine,
    plots,
    real_pod_verdict,
    requests_table,
    scale_table,
    sources_text,
    targets,
    targets_table,
    watch_table,
    worst_case_table,
)
from bench.watches import WatchPoint, watch_memory

HERE = Path(__file__).parent


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _loadavg() -> float:
    """The 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class LoadSampler:
    """The machine's 1-minute load average at the start, the end and its highest in
    between (the machine may be shared, and CPU figures depend on it)."""

    interval: float = 10.0
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> LoadSampler:
        """Take the first sample and keep sampling in the background."""
        self.samples.append(_loadavg())
        self._thread = threading.Thread(target=self._run, daemon=True, name="loadavg")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(_loadavg())

    def stop(self) -> None:
        """Take the last sample."""
        self._stop.set()
        self.samples.append(_loadavg())

    def line(self) -> str:
        """The load averages as one line of the machine section."""
        return (
            f"- Load average (1 min, {os.cpu_count()} cores): {self.samples[0]:.2f} at the "
            f"start, {self.samples[-1]:.2f} at the end, at most {max(self.samples):.2f} "
            f"(sampled every {self.interval:.0f} s; this includes the benchmark's own "
            "reporters and control plane)"
        )


@dataclass
class Measured:
    """Everything ``make bench`` measured, and where."""

    results: Results
    watches: list[WatchPoint]
    apiserver_version: str
    # The checkout measured, taken before the run writes its plots into docs/bench/.
    commit: str
    seconds: float = 0.0


def collect(
    assets: Path,
    workdir: Path,
    settings: Settings,
    log: Callable[[str], None],
    plane: ControlPlane | None = None,
) -> Measured:
    """Run every measurement: the reporters on ``plane`` (or on a control plane of
    their own, stopped afterwards), then kube-apiserver's memory per idle watch on a
    fresh control plane."""
    started = time.monotonic()
    commit = checkout_commit()
    own = plane is None
    if plane is None:
        plane = ControlPlane.start(assets, workdir / "controlplane")
    try:
        log(f"kube-apiserver {plane.version} at {plane.url}")
        results = run_all(plane, workdir, settings, log)
        version = plane.version
    finally:
        if own:
            plane.stop()
    log(f"kube-apiserver memory per idle watch, N = {settings.watches}, on a fresh control plane")
    watches = watch_memory(assets, workdir, settings, log)
    return Measured(results, watches, version, commit, time.monotonic() - started)


def credentials_text(results: Results) -> str:
    """How the reporters of this run authenticated."""
    if results.in_cluster_note:
        return (
            "Credentials come from a kubeconfig holding a bound token (in-cluster "
            f"credentials were not possible here: {results.in_cluster_note})."
        )
    return (
        'The "result at once" runs use in-cluster credentials, as in a Pod and as the '
        "reference binary: `bench/launch.py` puts the ServiceAccount's bound token and the CA "
        "under `/var/run/secrets/kubernetes.io/serviceaccount` in a private mount namespace. "
        "The other runs use a kubeconfig holding a bound token."
    )


def write_report(
    measured: Measured, assets: Path, load: LoadSampler, out: Path, smoke: bool
) -> Path:
    """Write BENCHMARKS.md and, unless ``smoke``, its plots (under docs/bench/) into ``out``."""
    results, watches, settings = measured.results, measured.watches, measured.results.settings
    previous = out / "BENCHMARKS.md"
    if not smoke:
        plots(results, watches, out / "docs" / "bench")
    smoke_note = (
        "\n> **Smoke run**: every measurement once, at N = 1 and tiny sizes; the numbers "
        "and verdicts only prove that the code runs.\n"
        if smoke
        else ""
    )
    verdicts = targets(results, real_pod_verdict(real_pod_memory(), measured.commit))
    fields = {
        "smoke_note": smoke_note,
        "headline": "\n".join(headline(verdicts)),
        "targets": "\n".join(targets_table(verdicts)),
        "machine": "\n".join(
            [
                *machine(measured.apiserver_version, assets, settings.reporter),
                load.line(),
                f"- This run took {measured.seconds / 60:.1f} minutes.",
            ]
        ),
        "sources": "\n".join(sources_text(results)),
        "reference_run": (
            "" if results.reference_note else ", next to one of the binary taken in this run"
        ),
        "reference_pattern": REQUEST_PATTERN,
        "external": "\n".join(external_table(results)),
        "latency_runs": settings.latency_runs,
        "at_once_runs": settings.at_once_runs,
        "credentials": credentials_text(results),
        "poll_lanes": settings.poll_lanes,
        "interval": settings.container_interval,
        "runtimes": ", ".join(f"{r} s" for r in settings.api_runtimes),
        "repeats": settings.api_repeats,
        "stagger": f"{STAGGER:g}",
        "worst_runs": settings.worst_case_runs,
        "window": f"{settings.window:.0f}",
        "watch_counts": ", ".join(f"{n:,}" for n in settings.watches),
        "watch_settle": f"{settings.watch_settle:.0f}",
        "watch_samples": settings.watch_samples,
        "watch_interval": f"{settings.watch_interval:g}",
        "latency_result": "\n".join(latency_table(results, "result")),
        "latency_crash": "\n".join(latency_table(results, "crash")),
        "requests": "\n".join(requests_table(results)),
        "footprint": "\n".join(footprint_table(results)),
        "worst_case": "\n".join(worst_case_table(results)),
        "cpu_runtime": "\n".join(cpu_runtime_table(results)),
        "scale": "\n".join(scale_table(results)),
        "watches": "\n".join(watch_table(watches)),
        "extrapolation": "\n".join(extrapolation(results, watches)),
        "analysis": (HERE / "analysis.md").read_text().strip(),
        # make bench-scale writes section 9; make bench keeps what it last wrote.
        "fleet": fleet_section(previous.read_text() if previous.exists() else ""),
    }
    text = (HERE / "template.md").read_text().format(**fields)
    previous.write_text(text)
    return previous


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="everything once, N = 1")
    parser.add_argument("--out", type=Path, default=ROOT, help="where the report goes")
    parser.add_argument(
        "--reporter",
        type=Path,
        default=SCRIPT,
        help="the status-reporter console script to measure (default: this environment's; "
        "make bench builds the image's install with hack/runtime-venv.sh)",
    )
    parser.add_argument(
        "--reference-binary",
        default=os.environ.get("REFERENCE_BINARY", ""),
        help="the reference binary, to measure side by side (default: $REFERENCE_BINARY)",
    )
    parser.add_argument(
        "--baseline-reporter",
        default=os.environ.get("BASELINE_REPORTER", ""),
        help="another status-reporter console script (the code before a change), whose "
        "result-at-once runs take turns with this one's (default: $BASELINE_REPORTER)",
    )
    args = parser.parse_args(argv)
    settings: Settings = SMOKE if args.smoke else Settings()
    settings = dataclasses.replace(
        settings,
        reference_binary=args.reference_binary,
        baseline_reporter=args.baseline_reporter,
        reporter=args.reporter.absolute(),
    )
    assets = binaries()
    load = LoadSampler().start()
    with tempfile.TemporaryDirectory(prefix="status-reporter-bench-") as tmp:
        measured = collect(assets, Path(tmp), settings, _log)
    load.stop()
    path = write_report(measured, assets, load, args.out, args.smoke)
    _log(f"wrote {path} ({measured.seconds / 60:.1f} minutes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
