"""Running reporters against the harness and measuring them.

Each measurement starts real ``status-reporter`` processes as in the integration
tests, one namespace per reporter so that the API server's audit log attributes
every request to exactly one reporter.
"""

from __future__ import annotations

import concurrent.futures
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import Client
from tests.harness.cluster import AdapterJob, create_job, create_namespace, service_account_token
from tests.harness.controlplane import ControlPlane
from tests.harness.observe import (
    AuditTail,
    ConditionWatcher,
    parse_time,
    reporter_user,
    request_key,
)
from tests.harness.reporter import ReporterRun, start_reporter

SUCCESS = {"status": "success", "reason": "BenchmarkDone", "message": "measured"}

# The reporter's defaults are the reference's; only the monitor mode differs.
MODES: dict[str, dict[str, str]] = {
    "auto": {"MONITOR_MODE": "auto"},
    "poll": {"MONITOR_MODE": "poll"},
}
BASE_ENV = {
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "info",
    "POLL_INTERVAL_SECONDS": "2",
    "CONTAINER_STATUS_INTERVAL_SECONDS": "10",
    "MAX_WAIT_TIME_SECONDS": "900",
}
# Poll phases: an action lands at a random point of the polling cycle.
PHASE = {
    ("poll", "result"): 2.0,
    ("poll", "crash"): 10.0,
    ("auto", "footprint"): 0.0,
    ("poll", "footprint"): 0.0,
}


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    latency_runs: int = 30
    api_runtimes: tuple[int, ...] = (10, 60, 300)
    scale: tuple[int, ...] = (1, 10, 50, 100)
    window: float = 30.0
    poll_lanes: int = 10


SMOKE = Settings(latency_runs=3, api_runtimes=(3,), scale=(1,), window=3.0, poll_lanes=3)


@dataclass(frozen=True)
class Sample:
    """One reporter run with one measured reaction."""

    mode: str
    kind: str
    latency: float
    ready: float
    rss_mib: float
    cpu_seconds: float
    exit_code: int


@dataclass
class ScalePoint:
    """N reporters at once."""

    mode: str
    n: int
    requests_per_second: float
    window: float
    latencies: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)


@dataclass
class Results:
    """Everything a benchmark run measured."""

    settings: Settings
    samples: list[Sample] = field(default_factory=list)
    requests: dict[tuple[str, int], Counter[str]] = field(default_factory=dict)
    scale: list[ScalePoint] = field(default_factory=list)
    worst_case_rss: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


class Bench:
    """Shared state of one benchmark run: the control plane, watchers, a work dir."""

    def __init__(self, plane: ControlPlane, workdir: Path, log: Callable[[str], None]) -> None:
        self.plane = plane
        self.workdir = workdir
        self.log = log
        self._local = threading.local()
        # lightkube's models decode through msgspec, whose first conversion of each type
        # crashed (SIGSEGV) when two threads did it at once: do every kind once, here.
        job = self.new_job()
        service_account_token(self.admin, job.namespace)
        job.terminated(0, "Completed")
        job.conditions()
        self.watcher = ConditionWatcher(plane)
        self.audit = AuditTail(plane.audit_log)
        self._audit_lock = threading.Lock()

    @property
    def admin(self) -> Client:
        """An admin client per thread."""
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.plane.admin_client()
        return client

    def events(self, namespace: str, stage: str = "ResponseComplete") -> list[dict[str, Any]]:
        """The audit events of the reporter in ``namespace``."""
        with self._audit_lock:
            return list(self.audit.events(reporter_user(namespace), stage))

    def new_job(self) -> AdapterJob:
        """A namespace with the deploy/base RBAC and one Job whose adapter is running."""
        namespace = create_namespace(self.admin)
        job = create_job(self.admin, namespace, self.workdir / namespace / "results")
        job.running()
        return job

    def start(self, job: AdapterJob, mode: str, **env: str) -> tuple[ReporterRun, float]:
        """Start a reporter; returns it and its spawn time (wall clock)."""
        spawned = time.time()
        run = start_reporter(
            self.plane, job, self.workdir / job.namespace, {**BASE_ENV, **MODES[mode], **env}
        )
        return run, spawned

    def wait_ready(self, run: ReporterRun, job: AdapterJob, mode: str, spawned: float) -> float:
        """Seconds from spawn until monitoring: the Pod watch established (auto) or
        the monitors started (poll)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if mode == "auto":
                watches = [
                    e for e in self.events(job.namespace, "ResponseStarted") if e["verb"] == "watch"
                ]
                if watches:
                    return parse_time(watches[0]["stageTimestamp"]) - spawned
            else:
                for entry in log_entries(run):
                    if entry["message"] == "monitoring adapter":
                        return parse_time(entry["timestamp"]) - spawned
            if not run.running:
                raise RuntimeError(f"reporter exited before it was ready:\n{run.output}")
            time.sleep(0.01)
        raise RuntimeError(f"reporter not ready after 60 s:\n{run.output}")


def log_entries(run: ReporterRun) -> list[dict[str, Any]]:
    """The reporter's JSON log entries so far."""
    entries = []
    for line in run.output.splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def exit_entry(run: ReporterRun) -> Mapping[str, Any]:
    """The reporter's last log entry, with its peak memory and CPU time."""
    return next(e for e in reversed(log_entries(run)) if e["message"] == "exiting")


def latency_sample(bench: Bench, mode: str, kind: str, rng: random.Random) -> Sample:
    """One reporter; a result (or a crash) at a random moment; time until the condition."""
    job = bench.new_job()
    run, spawned = bench.start(job, mode)
    try:
        ready = bench.wait_ready(run, job, mode, spawned)
        time.sleep(rng.uniform(0, PHASE.get((mode, kind), 0.3)))
        if kind in ("result", "footprint"):
            job.write_result(SUCCESS)
            acted = time.time()
        else:
            acted = time.time()
            job.terminated(1, "Error")
        seen = bench.watcher.wait(job.namespace, job.name, timeout=60)
        code = run.wait(timeout=60)
        if seen is None:
            raise RuntimeError(f"no condition on {job.namespace}/{job.name}:\n{run.output}")
        final = exit_entry(run)
        return Sample(
            mode, kind, seen - acted, ready, final["max_rss_mib"], final["cpu_seconds"], code
        )
    finally:
        run.stop()


def latencies(bench: Bench, settings: Settings, results: Results) -> None:
    """Result → condition and crash → condition, ``latency_runs`` times per mode."""
    rng = random.Random(1)  # noqa: S311 - reproducible phases, not cryptography
    for kind in ("result", "crash"):
        for mode in MODES:
            bench.log(f"latency: {kind} → condition, {mode}, {settings.latency_runs} runs")
            if mode == "auto":
                # One at a time: an idle machine measures the reporter, not the contention.
                for _ in range(settings.latency_runs):
                    results.samples.append(latency_sample(bench, mode, kind, rng))
            else:
                # Polling dominates the latency; lanes only save wall-clock time.
                seeds = [rng.random() for _ in range(settings.latency_runs)]
                with concurrent.futures.ThreadPoolExecutor(settings.poll_lanes) as pool:
                    futures = [
                        pool.submit(latency_sample, bench, mode, kind, random.Random(seed))  # noqa: S311
                        for seed in seeds
                    ]
                    results.samples.extend(f.result() for f in futures)


def footprints(bench: Bench, settings: Settings, results: Results) -> None:
    """Start-up, memory and CPU: one reporter at a time in both modes, so that neither
    shares the machine with other reporters, each reacting to a result at once."""
    rng = random.Random(2)  # noqa: S311 - unused: footprint runs have no phase delay
    for mode in MODES:
        bench.log(f"footprint: {mode}, {settings.latency_runs} runs")
        for _ in range(settings.latency_runs):
            results.samples.append(latency_sample(bench, mode, "footprint", rng))


def requests_for_runtime(bench: Bench, mode: str, runtime: int) -> Counter[str]:
    """Requests of one reporter whose adapter writes its result after ``runtime`` s, then exits."""
    job = bench.new_job()
    run, spawned = bench.start(job, mode, MAX_WAIT_TIME_SECONDS=str(runtime + 120))
    try:
        bench.wait_ready(run, job, mode, spawned)
        time.sleep(max(0.0, spawned + runtime - time.time()))
        job.write_result_atomically(SUCCESS)
        time.sleep(0.5)
        job.terminated(0, "Completed")
        run.wait(timeout=60)
    finally:
        run.stop()
    time.sleep(0.5)  # the watch's ResponseComplete is logged when the connection closes
    return Counter(request_key(e) for e in bench.events(job.namespace))


def start_requests_per_job(
    bench: Bench, settings: Settings, results: Results
) -> tuple[concurrent.futures.ThreadPoolExecutor, list[concurrent.futures.Future[None]]]:
    """Start the per-Job request counts in the background (they take the longest)."""
    pool = concurrent.futures.ThreadPoolExecutor(len(settings.api_runtimes) * len(MODES))

    def count(mode: str, runtime: int) -> None:
        counted = requests_for_runtime(bench, mode, runtime)
        results.requests[(mode, runtime)] = counted
        bench.log(f"requests per Job: {mode}, adapter {runtime} s: {sum(counted.values())}")

    futures = [
        pool.submit(count, mode, runtime) for mode in MODES for runtime in settings.api_runtimes
    ]
    return pool, futures


def _requests_between(bench: Bench, namespace: str, start: float, end: float) -> int:
    """Requests the reporter in ``namespace`` made between two wall-clock times; a watch
    still open at the end counts too."""
    events = [*bench.events(namespace), *bench.events(namespace, "ResponseStarted")]
    received = {(e["auditID"], e["requestReceivedTimestamp"]) for e in events}
    return sum(1 for _, when in received if start <= parse_time(when) < end)


def scale(bench: Bench, settings: Settings, results: Results) -> None:
    """N reporters at once: steady-state request rate, then all results at once."""
    for mode in MODES:
        for n in settings.scale:
            bench.log(f"scale: {n} reporters, {mode}")
            with concurrent.futures.ThreadPoolExecutor(min(n, 10)) as pool:
                jobs = list(pool.map(lambda _: bench.new_job(), range(n)))
            runs = [bench.start(job, mode) for job in jobs]
            point = ScalePoint(mode, n, 0.0, settings.window)
            try:
                point.ready = [
                    bench.wait_ready(r, j, mode, s) for (r, s), j in zip(runs, jobs, strict=True)
                ]
                time.sleep(3.0)  # start-up requests are not the steady state
                start = time.time()
                time.sleep(settings.window)
                end = time.time()
                count = sum(_requests_between(bench, job.namespace, start, end) for job in jobs)
                point.requests_per_second = count / (end - start)
                acted = {}
                for job in jobs:
                    job.write_result(SUCCESS)
                    acted[job.namespace] = time.time()
                for job in jobs:
                    seen = bench.watcher.wait(job.namespace, job.name, timeout=120)
                    if seen is not None:
                        point.latencies.append(seen - acted[job.namespace])
                for run, _ in runs:
                    run.wait(timeout=120)
            finally:
                for run, _ in runs:
                    run.stop()
            results.scale.append(point)


def worst_case_memory(bench: Bench, results: Results) -> None:
    """Peak memory when the result file is 1 MiB of small JSON objects."""
    details = [{"k": i} for i in range(100_000)]
    document = {**SUCCESS, "details": details}
    text = json.dumps(document, separators=(",", ":"))
    pad = 1024 * 1024 - len(text.encode()) - len(',"pad":""')
    big = text[:-1] + ',"pad":"' + "x" * max(0, pad) + '"}'
    for mode in MODES:
        job = bench.new_job()
        job.write_result(big)
        run, _ = bench.start(job, mode)
        try:
            run.wait(timeout=60)
            results.worst_case_rss[mode] = float(exit_entry(run)["max_rss_mib"])
        finally:
            run.stop()


def run_all(
    plane: ControlPlane, workdir: Path, settings: Settings, log: Callable[[str], None]
) -> Results:
    """Every measurement, both modes, one control plane."""
    started = time.monotonic()
    bench = Bench(plane, workdir, log)
    results = Results(settings)
    pool, background = start_requests_per_job(bench, settings, results)
    latencies(bench, settings, results)
    footprints(bench, settings, results)
    worst_case_memory(bench, results)
    scale(bench, settings, results)
    log("waiting for the per-Job request counts")
    pool.shutdown(wait=True)
    bench.watcher.stop()
    for future in background:
        future.result()  # re-raises a failure of a background measurement
    results.seconds = time.monotonic() - started
    return results
