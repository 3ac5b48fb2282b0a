"""Running reporters against the harness and measuring them.

Each measurement starts real ``status-reporter`` processes as in the integration
tests, one namespace per reporter so that the API server's audit log attributes
every request to exactly one reporter.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cluster import (
    REFERENCE_ROLE,
    AdapterJob,
    create_job,
    create_namespace,
    service_account_token,
)
from harness.controlplane import ControlPlane
from harness.observe import (
    AuditTail,
    ConditionWatcher,
    parse_time,
    reporter_user,
    request_key,
)
from harness.reporter import SCRIPT, ReporterRun, start_reporter
from harness.storm import Storm, cpu_seconds
from lightkube import Client

SUCCESS = {"status": "success", "reason": "BenchmarkDone", "message": "measured"}

# The reporter's defaults are the reference's; only the monitor mode differs. `poll`
# is this project's emulation of the reference's timing, not the reference itself.
MODES: dict[str, dict[str, str]] = {
    "auto": {"MONITOR_MODE": "auto"},
    "poll": {"MONITOR_MODE": "poll"},
}
# The Role bound to the reporter's ServiceAccount: deploy/base's, or the reference's
# (no watch on pods, so the Pod is polled).
ROLES: dict[str, Mapping[str, Any] | None] = {
    "project": None,
    "reference": REFERENCE_ROLE,
}
BASE_ENV = {
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "info",
    "POLL_INTERVAL_SECONDS": "2",
    "MAX_WAIT_TIME_SECONDS": "900",
}
RESULT_POLL_SECONDS = 2.0
STAGGER = 0.4  # seconds between the starts of the background reporters

# The mode of runs of the reference binary itself (`make bench REFERENCE_BINARY=...`).
REFERENCE_BINARY = "reference-binary"
# The modes of the result-at-once runs of another status-reporter install, the code a
# change is measured against (`make bench BASELINE_REPORTER=...`), and of the floor:
# the image's interpreter importing only what any asyncio TLS client needs.
BASELINE = "baseline"
FLOOR = "floor"
FLOOR_CODE = "import asyncio, ssl"
LAUNCHER = Path(__file__).with_name("launch.py")

# Scenarios of a Run.
LATENCY_RESULT = "result"
LATENCY_CRASH = "crash"
AT_ONCE = "at-once"
RUNTIME = "runtime"
WORST_CASE = "worst-case"


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    latency_runs: int = 30
    at_once_runs: int = 20
    api_runtimes: tuple[int, ...] = (10, 60, 300)
    api_repeats: int = 2
    scale: tuple[int, ...] = (1, 10, 50, 100)
    window: float = 20.0
    poll_lanes: int = 10
    container_interval: int = 10
    result_bytes: int = 1024 * 1024
    worst_case_runs: int = 3
    watches: tuple[int, ...] = (0, 500, 1000, 2000)
    watch_settle: float = 30.0
    watch_samples: int = 5
    watch_interval: float = 2.0
    # Other processes churning other names in the results directory (harness/storm.py).
    storm_seconds: float = 30.0
    storm_processes: int = 2
    # The reference binary to run side by side; empty: quote external figures only.
    reference_binary: str = ""
    # Another status-reporter console script (the code before a change) whose result-at-
    # once runs take turns with this one's; empty: none.
    baseline_reporter: str = ""
    # The status-reporter console script to measure (make bench: the image's install).
    reporter: Path = SCRIPT


# Everything once, at N = 1 and tiny sizes: proves that the code runs, nothing more.
SMOKE = Settings(
    latency_runs=2,
    at_once_runs=2,
    api_runtimes=(1, 3),
    api_repeats=1,
    scale=(1,),
    window=2.0,
    poll_lanes=2,
    container_interval=2,
    result_bytes=16 * 1024,
    worst_case_runs=1,
    watches=(0, 1),
    watch_settle=0.5,
    watch_samples=2,
    watch_interval=0.2,
    storm_seconds=2.0,
)


@dataclass
class Run:
    """One reporter process and what it cost.

    ``first_request`` and ``requests`` come from the audit log once every run has
    ended (:meth:`Bench.account`); the rest is known when the process exits.
    """

    scenario: str
    mode: str
    role: str
    namespace: str
    spawned: float
    exit_code: int = -1
    rss_mib: float = float("nan")
    cpu_self: float = float("nan")
    cpu_total: float = float("nan")
    latency: float = float("nan")
    ready: float = float("nan")
    runtime: float = 0.0
    shape: str = ""
    first_request: float = float("nan")
    requests: Counter[str] = field(default_factory=Counter)


@dataclass
class ScalePoint:
    """N reporters at once."""

    mode: str
    n: int
    requests_per_second: float
    window: float
    latencies: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class StormPoint:
    """The reporter while other processes churned its results directory: the rate they
    reached, the share of a core the reporter used meanwhile, and how long after the
    result's write (during the storm) its condition was on the Job."""

    rate: float
    seconds: float
    cpu_share: float
    seen_seconds: float
    poll_interval: float
    file_system: str


@dataclass
class Results:
    """Everything a benchmark run measured."""

    settings: Settings
    runs: list[Run] = field(default_factory=list)
    scale: list[ScalePoint] = field(default_factory=list)
    seconds: float = 0.0
    reference_note: str = ""
    # Why status-reporter's result-at-once runs could not use in-cluster credentials.
    in_cluster_note: str = ""
    storm: StormPoint | None = None

    def select(self, scenario: str, mode: str = "auto", role: str = "project") -> list[Run]:
        """The runs of one scenario, monitor mode and Role."""
        return [r for r in self.runs if (r.scenario, r.mode, r.role) == (scenario, mode, role)]


def worst_case_shapes(size: int) -> dict[str, str]:
    """Valid result files of exactly ``size`` bytes that cost a parser the most memory
    per byte: ``details`` holding as many small JSON values as fit, one long string,
    or strings made of escapes."""
    head = json.dumps(SUCCESS, separators=(",", ":"))[:-1] + ',"details":['
    fillers = {
        "empty objects `[{},{},…]`": "{}",
        "empty arrays `[[],[],…]`": "[]",
        'one-character strings `["a","a",…]`': '"a"',
        "small integers `[0,0,…]`": "0",
        'small objects `[{"k":0},…]`': '{"k":0}',
    }
    shapes = {}
    for name, item in fillers.items():
        count = max(1, (size - len(head) - 2 + 1) // (len(item) + 1))
        text = head + ",".join([item] * count) + "]}"
        # Pad to the exact size with spaces, which JSON allows between tokens.
        shapes[name] = text[:-1] + " " * max(0, size - len(text)) + "}"
    # A message far over its 1024-byte limit, which the reporter cuts.
    padding = size - len(json.dumps({**SUCCESS, "message": ""}))
    shapes["one long message string"] = json.dumps({**SUCCESS, "message": "m" * padding})
    # Strings of \u escapes: a surrogate pair is what json.dump writes for any emoji; a
    # lone surrogate is replaced by U+FFFD, which needs a rewritten copy of the file.
    escapes = {
        'emoji escapes `"\\ud83d\\ude00…"` in message': ("message", "\\ud83d\\ude00"),
        'lone surrogate escapes `"\\ud800…"` in details': ("details", "\\ud800"),
    }
    for name, (key, escape) in escapes.items():
        empty = json.dumps({**SUCCESS, key: ""}, separators=(",", ":"))
        count = max(1, (size - len(empty)) // len(escape))
        text = empty[:-2] + escape * count + '"}'
        # Pad to the exact size with spaces, which JSON allows between tokens.
        shapes[name] = text[:-1] + " " * max(0, size - len(text)) + "}"
    return shapes


class Bench:
    """Shared state of one benchmark run: the control plane, watchers, a work dir."""

    def __init__(
        self,
        plane: ControlPlane,
        workdir: Path,
        settings: Settings,
        log: Callable[[str], None],
    ) -> None:
        self.plane = plane
        self.workdir = workdir
        self.settings = settings
        self.log = log
        # lightkube's models decode through msgspec, whose first conversion of each type
        # crashed (SIGSEGV) when two threads did it at once: do every kind once, here.
        jobs = [self.new_job(role) for role in ROLES]
        job = jobs[-1]
        service_account_token(self.admin, job.namespace)
        job.terminated(0, "Completed")
        job.conditions()
        self.watcher = ConditionWatcher(plane)
        self.audit = AuditTail(plane.audit_log)
        self._audit_lock = threading.Lock()

    @property
    def admin(self) -> Client:
        """An admin client per thread."""
        return self.plane.thread_admin()

    def events(self, namespace: str, stage: str = "ResponseComplete") -> list[dict[str, Any]]:
        """The audit events of the reporter in ``namespace``."""
        with self._audit_lock:
            return list(self.audit.events(reporter_user(namespace), stage))

    def requests(self, namespace: str) -> list[dict[str, Any]]:
        """Every request of the reporter in ``namespace`` once, whatever stages it logged
        (a watch logs ResponseStarted and, when it ends, ResponseComplete)."""
        unique: dict[str, dict[str, Any]] = {}
        for stage in ("ResponseStarted", "ResponseComplete", "Panic"):
            for event in self.events(namespace, stage):
                unique.setdefault(event["auditID"], event)
        return list(unique.values())

    def account(self, run: Run) -> None:
        """Fill in what the API server saw of ``run``: its requests and when the first
        one arrived."""
        events = self.requests(run.namespace)
        run.requests = Counter(request_key(e) for e in events)
        if events:
            first = min(parse_time(e["requestReceivedTimestamp"]) for e in events)
            run.first_request = first - run.spawned

    def new_job(self, role: str = "project") -> AdapterJob:
        """A namespace with the reporter's RBAC under ``role`` and one Job whose adapter
        is running."""
        namespace = create_namespace(self.admin, role=ROLES[role])
        job = create_job(self.admin, namespace, self.workdir / namespace / "results")
        job.running()
        return job

    @property
    def reference_program(self) -> str:
        """The reference binary's path."""
        return str(Path(self.settings.reference_binary).expanduser())

    def env(self, mode: str, **extra: str) -> dict[str, str]:
        """The reporter's environment for ``mode``."""
        interval = str(self.settings.container_interval)
        return {**BASE_ENV, "CONTAINER_STATUS_INTERVAL_SECONDS": interval, **MODES[mode], **extra}

    def start(self, job: AdapterJob, mode: str, **env: str) -> tuple[ReporterRun, float]:
        """Start a reporter as its Job's ServiceAccount; returns it and the wall-clock
        time just before the process was created."""
        run = start_reporter(
            self.plane,
            job,
            self.workdir / job.namespace,
            self.env(mode, **env),
            script=self.settings.reporter,
        )
        return run, run.spawned

    def wait_ready(
        self, run: ReporterRun, job: AdapterJob, mode: str, role: str, spawned: float
    ) -> float:
        """Seconds from spawn until monitoring: the Pod watch established (auto under
        the project Role) or the monitors started (otherwise: the Pod is polled)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if mode == "auto" and role == "project":
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


def reap(run: ReporterRun, timeout: float) -> tuple[int, float]:
    """Wait for the reporter to exit; its exit code and the CPU time (user + system)
    the kernel accounted to the whole process, interpreter start-up and exit
    included, as ``wait4`` reports it."""
    process = run.process
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        except ChildProcessError:  # already reaped by a poll(): no usage to report
            return process.wait(), float("nan")
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            run.stop()
            raise RuntimeError(f"reporter still running after {timeout} s:\n{run.output}")
        time.sleep(0.005)


def log_entries(run: ReporterRun) -> list[dict[str, Any]]:
    """The reporter's JSON log entries so far."""
    return _entries(run.output)


def _entries(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _record_exit_entry(output: str, record: Run) -> None:
    """Record the peak memory and CPU time of the reporter's last log entry."""
    final = next(e for e in reversed(_entries(output)) if e["message"] == "exiting")
    rss, cpu = final.get("max_rss_mib"), final.get("cpu_seconds")
    record.rss_mib = float(rss) if rss is not None else float("nan")
    record.cpu_self = float(cpu) if cpu is not None else float("nan")


def finish(run: ReporterRun, record: Run, timeout: float = 60) -> Run:
    """Wait for the reporter's exit and record its exit code, memory and CPU."""
    record.exit_code, record.cpu_total = reap(run, timeout)
    _record_exit_entry(run.output, record)
    return record


def write_atomically(job: AdapterJob, text: str) -> None:
    """Write the result file whole under a temporary name and rename it into place, so
    that the reporter never sees half of a large file."""
    temporary = job.results_dir / ".adapter-result.json.tmp"
    temporary.write_text(text)
    os.replace(temporary, job.results_path)


def reference_unavailable(binary: str) -> str | None:
    """Why the reference binary cannot be run here, or None when it can."""
    if not binary:
        return "`REFERENCE_BINARY` was not given"
    path = Path(binary).expanduser()
    if not (path.is_file() and os.access(path, os.X_OK)):
        return f"`{binary}` is not an executable file"
    return in_cluster_unavailable()


def in_cluster_unavailable() -> str | None:
    """Why ``bench/launch.py`` cannot give a program in-cluster credentials here, or
    None when it can."""
    if os.geteuid() != 0:
        return "giving it in-cluster credentials needs a mount namespace, which needs root"
    check = subprocess.run(
        [sys.executable, "-S", "-I", str(LAUNCHER), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if check.returncode != 0:
        reason = (check.stderr.strip().splitlines() or ["unknown error"])[-1]
        return f"no private mount namespace for its in-cluster credentials: {reason}"
    return None


def in_cluster_credentials(plane: ControlPlane, job: AdapterJob, workdir: Path) -> Path:
    """A fresh directory under ``workdir`` holding what a Pod of ``job`` would find under
    ``/var/run/secrets/kubernetes.io/serviceaccount`` (a bound token of its
    ServiceAccount, the CA, the namespace), and an empty termination-message file."""
    credentials = workdir / job.namespace / f"credentials-{time.monotonic_ns()}"
    credentials.mkdir(parents=True)
    (credentials / "token").write_text(service_account_token(job.client, job.namespace))
    (credentials / "ca.crt").write_bytes(plane.ca_file.read_bytes())
    (credentials / "namespace").write_text(job.namespace)
    (credentials / "termination-log").write_text("")
    return credentials


def launch_in_cluster(
    plane: ControlPlane,
    job: AdapterJob,
    credentials: Path,
    program: str,
    env: Mapping[str, str],
    *,
    release: tuple[int, int] | None = None,
    arguments: Sequence[str] = (),
) -> tuple[subprocess.Popen[bytes], Path, float]:
    """Start ``program`` for ``job`` through ``bench/launch.py`` with the in-cluster
    ``credentials`` of :func:`in_cluster_credentials` and ``env`` added to its
    environment. Returns the launcher, the path of
    its report, and the wall clock before the launcher was started. With ``release``
    (file descriptors: the write end of a "ready" pipe, the read end of a "go" pipe)
    the launcher signals that it is ready and starts ``program`` only once "go" is
    closed."""
    host, port = plane.url.removeprefix("https://").rsplit(":", 1)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(credentials.parent),
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "JOB_NAME": job.name,
        "JOB_NAMESPACE": job.namespace,
        "POD_NAME": job.pod,
        "RESULTS_PATH": str(job.results_path),
        "TERMINATION_MESSAGE_PATH": str(credentials / "termination-log"),
        **BASE_ENV,
        **env,
    }
    report = credentials / "launch.json"
    command = [sys.executable, "-S", "-I", str(LAUNCHER)]
    if release is not None:
        command += ["--release", ",".join(map(str, release))]
    command += [str(report), str(credentials), str(credentials / "reporter.log"), "--", program]
    command += arguments
    started = time.time()
    process = subprocess.Popen(command, env=environment, pass_fds=release or ())
    return process, report, started


def spawn_in_cluster(
    bench: Bench, job: AdapterJob, program: str, arguments: Sequence[str] = (), **env: str
) -> tuple[subprocess.Popen[bytes], Path, float]:
    """Start ``program`` (the reference binary or status-reporter) for ``job`` with its
    ServiceAccount's token where in-cluster clients look for it (see
    :func:`launch_in_cluster`)."""
    credentials = in_cluster_credentials(bench.plane, job, bench.workdir)
    return launch_in_cluster(bench.plane, job, credentials, program, env, arguments=arguments)


def finish_in_cluster(
    process: subprocess.Popen[bytes], report: Path, record: Run, timeout: float = 60
) -> Run:
    """Wait for the launcher and record what it measured of its program. For
    status-reporter, memory and its own CPU figure come from its last log line, as for
    the runs the harness starts itself."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise RuntimeError(f"reference binary still running after {timeout} s") from None
    if process.returncode != 0 or not report.exists():
        log = report.with_name("reporter.log")
        output = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(f"launcher failed with {process.returncode}:\n{output}")
    data = json.loads(report.read_text())
    record.spawned = float(data["spawned"])
    record.exit_code = int(data["exit_code"])
    record.rss_mib = int(data["max_rss_kib"]) / 1024
    record.cpu_total = float(data["cpu_seconds"])
    if record.mode not in {REFERENCE_BINARY, FLOOR}:
        _record_exit_entry(report.with_name("reporter.log").read_text(), record)
    return record


def in_cluster_at_once(bench: Bench, role: str, mode: str) -> Run:
    """The reference binary (``mode`` REFERENCE_BINARY), the baseline install
    (BASELINE), the floor (FLOOR) or status-reporter under ``role``, with in-cluster
    credentials, its result already there when it starts."""
    job = bench.new_job(role)
    write_atomically(job, json.dumps(SUCCESS))
    arguments: list[str] = []
    if mode == REFERENCE_BINARY:
        program, env = bench.reference_program, {}
    elif mode == BASELINE:
        program, env = str(Path(bench.settings.baseline_reporter).expanduser()), bench.env("auto")
    elif mode == FLOOR:
        # The interpreter of the measured install, beside its console script.
        program, env = str(bench.settings.reporter.parent / "python"), {}
        arguments = ["-c", FLOOR_CODE]
    else:
        program, env = str(bench.settings.reporter), bench.env(mode)
    process, report, started = spawn_in_cluster(bench, job, program, arguments, **env)
    record = Run(AT_ONCE, mode, role, job.namespace, started)
    try:
        return finish_in_cluster(process, report, record)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def latency_sample(bench: Bench, mode: str, kind: str, rng: random.Random) -> Run:
    """One reporter; a result (or a crash) at a random moment; time until the condition."""
    job = bench.new_job()
    run, spawned = bench.start(job, mode)
    record = Run(kind, mode, "project", job.namespace, spawned)
    try:
        record.ready = bench.wait_ready(run, job, mode, "project", spawned)
        # Poll mode: the action lands at a random point of the polling cycle.
        cycle = RESULT_POLL_SECONDS if kind == LATENCY_RESULT else bench.settings.container_interval
        time.sleep(rng.uniform(0, cycle if mode == "poll" else 0.3))
        if kind == LATENCY_RESULT:
            job.write_result(SUCCESS)
            acted = time.time()
        else:
            acted = time.time()
            job.terminated(1, "Error")
        seen = bench.watcher.wait(job.namespace, job.name, timeout=60)
        if seen is None:
            raise RuntimeError(f"no condition on {job.namespace}/{job.name}:\n{run.output}")
        record.latency = seen - acted
        return finish(run, record)
    finally:
        run.stop()


def latencies(bench: Bench, settings: Settings, results: Results) -> None:
    """Result → condition and crash → condition, ``latency_runs`` times per mode."""
    rng = random.Random(1)  # noqa: S311 - reproducible phases, not cryptography
    for kind in (LATENCY_RESULT, LATENCY_CRASH):
        for mode in MODES:
            bench.log(f"latency: {kind} → condition, {mode}, {settings.latency_runs} runs")
            if mode == "auto":
                # One at a time: an idle machine measures the reporter, not the contention.
                # These runs also give the footprint of a normal, monitored Job.
                for _ in range(settings.latency_runs):
                    results.runs.append(latency_sample(bench, mode, kind, rng))
            else:
                # Polling dominates the latency; lanes only save wall-clock time.
                seeds = [rng.random() for _ in range(settings.latency_runs)]
                with concurrent.futures.ThreadPoolExecutor(settings.poll_lanes) as pool:
                    futures = [
                        pool.submit(latency_sample, bench, mode, kind, random.Random(seed))  # noqa: S311
                        for seed in seeds
                    ]
                    results.runs.extend(f.result() for f in futures)


def result_at_once(bench: Bench, role: str, text: str, scenario: str, shape: str = "") -> Run:
    """One reporter whose result is already there when it starts."""
    job = bench.new_job(role)
    write_atomically(job, text)
    run, spawned = bench.start(job, "auto")
    try:
        return finish(run, Run(scenario, "auto", role, job.namespace, spawned, shape=shape))
    finally:
        run.stop()


def result_while_monitoring(bench: Bench, text: str, shape: str) -> Run:
    """One reporter under the project Role that gets its result once its watch is up."""
    job = bench.new_job()
    run, spawned = bench.start(job, "auto")
    record = Run(WORST_CASE, "auto", "project", job.namespace, spawned, shape=shape)
    try:
        record.ready = bench.wait_ready(run, job, "auto", "project", spawned)
        write_atomically(job, text)
        return finish(run, record)
    finally:
        run.stop()


def at_once(bench: Bench, settings: Settings, results: Results) -> None:
    """Start-up cost: the result is there at start-up, so the reporter writes it at
    once. One reporter at a time, the two Roles interleaved. status-reporter gets
    in-cluster credentials, as in a Pod and as the reference binary, where the machine
    allows it (else its kubeconfig, and the report says so)."""
    reference = not results.reference_note
    in_cluster = not results.in_cluster_note
    bench.log(
        f"result at once: {settings.at_once_runs} runs per Role"
        + (", and of the reference binary" if reference else "")
        + (", in-cluster credentials" if in_cluster else ", kubeconfig credentials")
    )
    text = json.dumps(SUCCESS)
    baseline = in_cluster and bool(settings.baseline_reporter)
    for _ in range(settings.at_once_runs):
        for role in ROLES:
            if in_cluster:
                results.runs.append(in_cluster_at_once(bench, role, "auto"))
            else:
                results.runs.append(result_at_once(bench, role, text, AT_ONCE))
        if reference:
            results.runs.append(in_cluster_at_once(bench, "reference", REFERENCE_BINARY))
        if baseline:
            results.runs.append(in_cluster_at_once(bench, "project", BASELINE))
        if in_cluster:
            results.runs.append(in_cluster_at_once(bench, "project", FLOOR))


def worst_case_memory(bench: Bench, settings: Settings, results: Results) -> None:
    """Peak memory for result files of ``result_bytes`` made of many small JSON values,
    read at start-up and while monitoring."""
    shapes = worst_case_shapes(settings.result_bytes)
    bench.log(f"worst-case memory: {len(shapes)} shapes × 2 × {settings.worst_case_runs} runs")
    for _ in range(settings.worst_case_runs):
        for shape, text in shapes.items():
            results.runs.append(result_at_once(bench, "project", text, WORST_CASE, shape))
            results.runs.append(result_while_monitoring(bench, text, shape))


def runtime_run(
    bench: Bench, role: str, runtime: int, ready: threading.Barrier, delay: float
) -> Run:
    """One reporter, started after ``delay`` s, whose adapter writes its result
    ``runtime`` s after the reporter started, then exits 0.5 s later, as a real adapter
    does."""
    time.sleep(delay)
    job = bench.new_job(role)
    run, spawned = bench.start(job, "auto", MAX_WAIT_TIME_SECONDS=str(runtime + 120))
    record = Run(RUNTIME, "auto", role, job.namespace, spawned, runtime=runtime)
    try:
        record.ready = bench.wait_ready(run, job, "auto", role, spawned)
        # A broken barrier (another run failed to start) only means less waiting.
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(timeout=120)
        play_adapter(job, spawned + runtime)
        return finish(run, record)
    finally:
        run.stop()


def play_adapter(job: AdapterJob, result_at: float) -> None:
    """The adapter of a run-time run: its result written at ``result_at`` (wall clock),
    its exit 0.5 s later."""
    time.sleep(max(0.0, result_at - time.time()))
    write_atomically(job, json.dumps(SUCCESS))
    time.sleep(0.5)
    job.terminated(0, "Completed")


def reference_runtime_run(
    bench: Bench, runtime: int, ready: threading.Barrier, delay: float
) -> Run:
    """The reference binary, started after ``delay`` s, its adapter writing the result
    ``runtime`` s after the start and exiting 0.5 s later."""
    time.sleep(delay)
    job = bench.new_job("reference")
    process, report, started = spawn_in_cluster(
        bench, job, bench.reference_program, MAX_WAIT_TIME_SECONDS=str(runtime + 120)
    )
    record = Run(RUNTIME, REFERENCE_BINARY, "reference", job.namespace, started, runtime=runtime)
    try:
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(timeout=120)
        play_adapter(job, started + runtime)
        return finish_in_cluster(process, report, record)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def start_runtimes(
    bench: Bench, settings: Settings, reference: bool
) -> tuple[concurrent.futures.ThreadPoolExecutor, list[concurrent.futures.Future[Run]]]:
    """Start the runs of every adapter run time, under both Roles (and of the
    ``reference`` binary), in the background (they take the longest and are idle
    meanwhile); return once all of ours are monitoring, so that their start-ups do not
    overlap the measurements that follow."""
    programs = [*ROLES, *([REFERENCE_BINARY] if reference else [])]
    jobs = [
        (program, runtime)
        for _ in range(settings.api_repeats)
        for program in programs
        for runtime in settings.api_runtimes
    ]
    bench.log(f"adapter run times {settings.api_runtimes} s: {len(jobs)} reporters started")
    ready = threading.Barrier(len(jobs) + 1)
    pool = concurrent.futures.ThreadPoolExecutor(len(jobs))
    # Staggered starts: CPU time measured while many processes start at once on two
    # cores comes out inflated.
    futures = [
        pool.submit(reference_runtime_run, bench, runtime, ready, index * STAGGER)
        if program == REFERENCE_BINARY
        else pool.submit(runtime_run, bench, program, runtime, ready, index * STAGGER)
        for index, (program, runtime) in enumerate(jobs)
    ]
    try:
        ready.wait(timeout=120)
    except threading.BrokenBarrierError:
        bench.log("not every background reporter became ready; see the errors at the end")
    return pool, futures


def _requests_between(bench: Bench, namespace: str, start: float, end: float) -> int:
    """Requests the reporter in ``namespace`` made between two wall-clock times; a watch
    still open at the end counts too."""
    return sum(
        1
        for e in bench.requests(namespace)
        if start <= parse_time(e["requestReceivedTimestamp"]) < end
    )


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
                    bench.wait_ready(r, j, mode, "project", s)
                    for (r, s), j in zip(runs, jobs, strict=True)
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


def run_all(
    plane: ControlPlane, workdir: Path, settings: Settings, log: Callable[[str], None]
) -> Results:
    """Every reporter measurement, one control plane."""
    started = time.monotonic()
    bench = Bench(plane, workdir, settings, log)
    results = Results(settings)
    results.reference_note = reference_unavailable(settings.reference_binary) or ""
    results.in_cluster_note = in_cluster_unavailable() or ""
    if results.reference_note and settings.reference_binary:
        log(f"the reference binary is not measured: {results.reference_note}")
    pool, background = start_runtimes(bench, settings, reference=not results.reference_note)
    at_once(bench, settings, results)
    latencies(bench, settings, results)
    worst_case_memory(bench, settings, results)
    scale(bench, settings, results)
    log("waiting for the longest adapter run times")
    pool.shutdown(wait=True)
    # Alone on the machine: the storm takes every core it can.
    results.storm = storm(bench, settings)
    bench.watcher.stop()
    results.runs.extend(future.result() for future in background)  # re-raises failures
    time.sleep(0.5)  # a watch's ResponseComplete is logged once its connection has closed
    for run in results.runs:
        bench.account(run)
    results.seconds = time.monotonic() - started
    return results


def _file_system(path: Path) -> str:
    """The type of the file system that holds ``path`` (``tmpfs``, ``ext4``...)."""
    best, kind = "", "?"
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mount, fs_type, *_ = line.split()
        if str(path).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
            best, kind = mount, fs_type
    return kind


def storm(bench: Bench, settings: Settings) -> StormPoint:
    """One reporter under the project Role, monitoring, while ``storm_processes``
    processes create, append to and delete other files in its results directory for
    ``storm_seconds``; then the result is written, the storm still on. The directory is
    a tmpfs where there is one (an ``emptyDir`` with ``medium: Memory``): an ext4
    journal caps a storm far below 100,000 operations a second."""
    shm = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private directory in it
    results_dir = Path(tempfile.mkdtemp(prefix="storm-", dir=shm if shm.is_dir() else None))
    bench.log(
        f"storm: {settings.storm_processes} processes on other files for "
        f"{settings.storm_seconds:g} s ({_file_system(results_dir)})"
    )
    namespace = create_namespace(bench.admin)
    job = create_job(bench.admin, namespace, results_dir)
    job.running()
    run, spawned = bench.start(job, "auto")
    poll_interval = float(bench.env("auto")["POLL_INTERVAL_SECONDS"])
    try:
        bench.wait_ready(run, job, "auto", "project", spawned)
        pid = run.process.pid
        with Storm(results_dir, settings.storm_seconds + 1.0, settings.storm_processes) as churn:
            time.sleep(0.5)  # every process at full speed
            cpu, started = cpu_seconds(pid), time.monotonic()
            time.sleep(settings.storm_seconds)
            share = (cpu_seconds(pid) - cpu) / (time.monotonic() - started)
            written = time.monotonic()
            write_atomically(job, json.dumps(SUCCESS))
            deadline = written + 60
            while job.condition() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            seen = time.monotonic() - written if job.condition() is not None else math.nan
        run.wait(timeout=60)
    finally:
        run.stop()
        shutil.rmtree(results_dir, ignore_errors=True)
    return StormPoint(
        churn.rate, churn.elapsed, share, seen, poll_interval, _file_system(results_dir)
    )


def median(values: list[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")
