"""Fleet scale: N reporters on one kube-apiserver, each its own Job, Pod and
ServiceAccount token, side by side with the reference.

For each implementation, flow-control setting and N, a fresh control plane runs two
rounds of N reporters. Round one: the start-up burst (N launchers started beforehand
and released together, so that every reporter's ``execve`` falls within about a
second), the idle phase (adapters running), the result burst (all N results written
within a second). Round two: a start-up, a short idle, the crash burst (all N adapters
exit 1 within a second, as the harness playing the kubelet reports it). Every reporter
gets in-cluster credentials through ``bench/launch.py``, which also measures its peak
RSS and CPU from ``wait4()``. Each cell (implementation, flow, N) is measured several
times, the implementations taking turns (``FleetSettings.repeats``).

What the API server did comes from its own records: CPU and resident memory from
``/proc`` (sampled every quarter second), requests, verbs and status codes from its
audit log, and the time each condition was written from the audit event of the
reporter's successful write of ``jobs/status``. A Job whose condition is missing or
not the expected one at the end counts as lost or wrong. Where the server's CPU went
comes from its CPU profile (``bench/apiprofile.py``), by phase. What the rest of the
machine did meanwhile (other processes' CPU, the load average) is recorded with each
run: a run on a busy machine is marked noisy.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import resource
import select
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cluster import REFERENCE_ROLE, AdapterJob, create_job, create_namespace
from harness.controlplane import ControlPlane
from harness.observe import AuditTail, parse_time, reporter_user
from harness.reporter import SCRIPT
from lightkube import Client
from lightkube.models.flowcontrol_v1 import (
    FlowDistinguisherMethod,
    FlowSchemaSpec,
    GroupSubject,
    LimitedPriorityLevelConfiguration,
    LimitResponse,
    NonResourcePolicyRule,
    PolicyRulesWithSubjects,
    PriorityLevelConfigurationReference,
    PriorityLevelConfigurationSpec,
    QueuingConfiguration,
    ResourcePolicyRule,
    Subject,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from lightkube.resources.flowcontrol_apiserver_v1 import FlowSchema, PriorityLevelConfiguration
from lightkube.types import PatchType

from bench.apiprofile import Profiler, categorise, go_tool, per_second
from bench.measure import SUCCESS, in_cluster_credentials, launch_in_cluster
from bench.watches import cpu_seconds, vm_rss_mib

DEFAULT = "default"
THROTTLED = "throttled"
# The flags the issue of record names; with API Priority and Fairness they set the
# server's total concurrency (30 seats), shared by every priority level.
THROTTLE_FLAGS = ("--max-mutating-requests-inflight=10", "--max-requests-inflight=20")
# And a priority level of one seat and one short queue for every ServiceAccount: the
# reporters, never the harness (system:masters is exempt). What does not fit is
# answered 429 with Retry-After; the queue keeps the seat busy while they back off.
THROTTLE_LEVEL = "bench-reporters"

START_UP, IDLE, RESULT_BURST, CRASH_BURST = "start-up", "idle", "result burst", "crash burst"
EXPECTED = {
    RESULT_BURST: ("True", SUCCESS["reason"]),
    CRASH_BURST: ("False", "AdapterExitedWithError"),
}
WRITE_VERBS = ("patch", "update")


@dataclass(frozen=True)
class Implementation:
    """A reporter program under a Role."""

    name: str
    label: str
    role: Mapping[str, Any] | None
    reference: bool = False


WATCH = Implementation("watch", "status-reporter, project Role (Pod watch)", None)
POLL = Implementation("poll", "status-reporter, reference Role (Pod polled)", REFERENCE_ROLE)
REFERENCE = Implementation("reference", "reference Go binary", REFERENCE_ROLE, reference=True)
IMPLEMENTATIONS = (WATCH, POLL, REFERENCE)


@dataclass(frozen=True)
class FleetSettings:
    """What ``make bench-scale`` runs."""

    sizes: tuple[int, ...] = (10, 100, 300)
    # Throttled, the API server's Retry-After grows to tens of seconds: at N = 300 one
    # implementation's run takes over ten minutes on two cores.
    throttled_sizes: tuple[int, ...] = (10, 100)
    flows: tuple[str, ...] = (DEFAULT, THROTTLED)
    idle: float = 60.0
    # The idle phase's request rate does not depend on flow control: shorter there.
    throttled_idle: float = 10.0
    crash_idle: float = 5.0
    # The API server alone, before any reporter: its own background CPU, subtracted.
    baseline: float = 10.0
    # After every reporter has read its Pod, the rest of its start-up requests.
    settle: float = 2.0
    # Each reporter has this long, after the last burst action, to write its condition
    # (throttled, the server's Retry-After reaches 32 s).
    write_timeout: float = 300.0
    setup_threads: int = 8
    container_interval: int = 10
    # Requests the throttled priority level queues beside its one seat (0: rejects all
    # that do not get the seat at once).
    throttle_queue: int = 4
    reporter: Path = SCRIPT
    reference_binary: str = ""
    # Each cell with N up to ``repeat_up_to`` is measured ``repeats`` times (the report
    # gives the median), larger N once; the implementations take turns.
    repeats: int = 3
    repeat_up_to: int = 100
    # Take kube-apiserver's CPU profile (needs the Go toolchain to read it).
    profile: bool = True
    # A run during which other processes used more than this many cores on average
    # is noisy: its verdicts are not claimed.
    noisy_cores: float = 0.25
    # How long the harness waits for N launchers to be ready before it releases them.
    ready_timeout: float = 300.0

    def repeats_for(self, n: int) -> int:
        """How many times each cell with ``n`` reporters is measured."""
        return self.repeats if n <= self.repeat_up_to else 1

    def sizes_for(self, flow: str) -> tuple[int, ...]:
        """The N measured under ``flow``."""
        return self.sizes if flow == DEFAULT else self.throttled_sizes

    def idle_for(self, flow: str) -> float:
        """The idle phase of round one under ``flow``."""
        return self.idle if flow == DEFAULT else self.throttled_idle


SMOKE = FleetSettings(
    sizes=(5,),
    throttled_sizes=(5,),
    idle=2.0,
    throttled_idle=1.0,
    crash_idle=1.0,
    baseline=2.0,
    repeats=2,
)


@dataclass
class Phase:
    """What the API server did during one phase of one round."""

    name: str
    start: float
    end: float
    apiserver_cpu: float = 0.0
    apiserver_peak_rss_mib: float = 0.0
    verbs: Counter[str] = field(default_factory=Counter)
    codes: Counter[int] = field(default_factory=Counter)
    # CPU seconds by category (bench/apiprofile.py), from the profile's pieces whose
    # middle falls in the phase; empty when not profiled.
    profile: dict[str, float] = field(default_factory=dict)
    # The seconds those pieces cover.
    profiled: float = 0.0

    @property
    def seconds(self) -> float:
        """How long the phase lasted."""
        return self.end - self.start

    @property
    def requests(self) -> int:
        """The reporters' requests in the phase."""
        return sum(self.verbs.values())

    @property
    def throttled(self) -> int:
        """429 answers to the reporters in the phase."""
        return self.codes[429]

    @property
    def server_errors(self) -> int:
        """5xx answers to the reporters in the phase."""
        return sum(count for code, count in self.codes.items() if code >= 500)


@dataclass
class FleetRun:
    """One implementation, flow-control setting and N: both rounds."""

    implementation: str
    flow: str
    n: int
    # Which measurement of this cell (0, 1, ...).
    repeat: int = 0
    phases: list[Phase] = field(default_factory=list)
    # Seconds between the first and the last reporter's execve, per round.
    launch_spread: list[float] = field(default_factory=list)
    # Seconds between the first and the last burst action, per burst.
    burst_spread: dict[str, float] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    lost: int = 0
    wrong: int = 0
    wrong_examples: list[str] = field(default_factory=list)
    exit_codes: Counter[int] = field(default_factory=Counter)
    reporters_peak_rss_mib: float = 0.0
    reporters_cpu: float = 0.0
    # CPU seconds from the first round's set-up to the second's end (the harness's own
    # requests included), less what the API server used alone in that time.
    apiserver_cpu: float = 0.0
    # CPU seconds per second the API server used alone, before the first reporter.
    apiserver_baseline: float = 0.0
    apiserver_peak_rss_mib: float = 0.0
    seconds: float = 0.0
    # When the run started (wall clock), and the 1-minute load average at its start
    # and end.
    started: float = 0.0
    load_average: list[float] = field(default_factory=list)
    # Cores that processes other than the harness, its servers and its reporters used
    # on average during the run (from /proc/stat).
    others_cores: float = 0.0
    # The API server's CPU seconds per second alone, by profile category.
    profile_baseline: dict[str, float] = field(default_factory=dict)
    profile_failures: int = 0

    def phase(self, name: str) -> list[Phase]:
        """The phases of that name (the start-up and idle phases happen twice)."""
        return [p for p in self.phases if p.name == name]

    @property
    def reporters_load(self) -> float:
        """API server CPU seconds in the phases (the reporters at work; no harness set-up
        or checks), less what it used alone in that time."""
        seconds = sum(p.seconds for p in self.phases)
        return sum(p.apiserver_cpu for p in self.phases) - self.apiserver_baseline * seconds

    def idle_cpu_rate(self) -> float:
        """API server CPU seconds per second in round one's idle phase, less its own
        baseline: what N idle reporters cost it."""
        idle = self.phase(IDLE)[0]
        return idle.apiserver_cpu / idle.seconds - self.apiserver_baseline

    @property
    def throttled(self) -> int:
        """429 answers to the reporters over the whole run."""
        return sum(p.throttled for p in self.phases)

    @property
    def server_errors(self) -> int:
        """5xx answers to the reporters over the whole run."""
        return sum(p.server_errors for p in self.phases)


class ApiServerSampler:
    """kube-apiserver's resident memory, sampled in the background, and its CPU time."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self._pid = pid
        self._interval = interval
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="apiserver-sampler")
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._samples.append((time.time(), vm_rss_mib(self._pid)))
            if self._stop.wait(self._interval):
                return

    def cpu(self) -> float:
        """CPU seconds the API server has used so far."""
        return cpu_seconds(self._pid)

    def peak(self, start: float, end: float) -> float:
        """The highest resident memory sampled between two wall-clock times, in MiB."""
        inside = [rss for at, rss in list(self._samples) if start <= at <= end]
        return max(inside, default=vm_rss_mib(self._pid))

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


def throttle(admin: Client, queue_length: int) -> None:
    """A one-seat priority level with one queue of ``queue_length`` (0: none) that
    answers 429 when both are full, for every ServiceAccount."""
    limit = (
        LimitResponse(
            type="Queue",
            queuing=QueuingConfiguration(queues=1, handSize=1, queueLengthLimit=queue_length),
        )
        if queue_length
        else LimitResponse(type="Reject")
    )
    admin.create(
        PriorityLevelConfiguration(
            metadata=ObjectMeta(name=THROTTLE_LEVEL),
            spec=PriorityLevelConfigurationSpec(
                type="Limited",
                limited=LimitedPriorityLevelConfiguration(
                    nominalConcurrencyShares=1,
                    lendablePercent=0,
                    borrowingLimitPercent=0,
                    limitResponse=limit,
                ),
            ),
        )
    )
    everything = PolicyRulesWithSubjects(
        subjects=[Subject(kind="Group", group=GroupSubject(name="system:serviceaccounts"))],
        resourceRules=[
            ResourcePolicyRule(
                verbs=["*"], apiGroups=["*"], resources=["*"], namespaces=["*"], clusterScope=True
            )
        ],
        nonResourceRules=[NonResourcePolicyRule(verbs=["*"], nonResourceURLs=["*"])],
    )
    admin.create(
        FlowSchema(
            metadata=ObjectMeta(name=THROTTLE_LEVEL),
            spec=FlowSchemaSpec(
                priorityLevelConfiguration=PriorityLevelConfigurationReference(name=THROTTLE_LEVEL),
                matchingPrecedence=500,
                distinguisherMethod=FlowDistinguisherMethod(type="ByUser"),
                rules=[everything],
            ),
        )
    )


@dataclass
class _Member:
    """One Job of a round, its reporter and what became of it."""

    job: AdapterJob
    credentials: Path
    process: subprocess.Popen[bytes] | None = None
    report: Path | None = None
    acted: float = float("nan")
    executed: float = float("nan")


class Fleet:
    """One control plane, one implementation, one flow-control setting, one N."""

    def __init__(
        self,
        plane: ControlPlane,
        implementation: Implementation,
        settings: FleetSettings,
        workdir: Path,
        log: Callable[[str], None],
    ) -> None:
        self.plane = plane
        self.implementation = implementation
        self.settings = settings
        self.workdir = workdir
        self.log = log
        self.audit = AuditTail(plane.audit_log)
        self.sampler = ApiServerSampler(plane.processes["kube-apiserver"].pid)
        self.profiler = (
            Profiler(plane.url, plane.admin_token, plane.ca_file, workdir / "profile", log)
            if settings.profile
            else None
        )

    @property
    def admin(self) -> Client:
        """An admin client per thread."""
        return self.plane.thread_admin()

    def _member(self, index: int) -> _Member:
        namespace = create_namespace(self.admin, role=self.implementation.role)
        job = create_job(self.admin, namespace, self.workdir / namespace / "results")
        job.running()
        return _Member(job, in_cluster_credentials(self.plane, job, self.workdir))

    def members(self, n: int) -> list[_Member]:
        """``n`` Jobs whose adapters run, each in a namespace of its own with the
        implementation's Role, and their credentials (not measured)."""
        # lightkube's models decode through msgspec, whose first conversion of a type
        # crashed (SIGSEGV) when two threads did it at once: one member alone first.
        first = self._member(0)
        first.job.conditions()
        with concurrent.futures.ThreadPoolExecutor(self.settings.setup_threads) as pool:
            return [first, *pool.map(self._member, range(1, n))]

    def program(self) -> tuple[str, dict[str, str]]:
        """The program to launch and its environment."""
        interval = {"CONTAINER_STATUS_INTERVAL_SECONDS": str(self.settings.container_interval)}
        if self.implementation.reference:
            return str(Path(self.settings.reference_binary).expanduser()), interval
        return str(self.settings.reporter), {**interval, "MONITOR_MODE": "auto"}

    def mark(self) -> tuple[float, float]:
        """The wall clock and the API server's CPU time at a phase boundary. When
        profiling, a boundary is the start of a profile piece (up to a second's wait)."""
        at = self.profiler.boundary() if self.profiler else time.time()
        return at, self.sampler.cpu()

    def end_phase(
        self, name: str, opened: tuple[float, float]
    ) -> tuple[Phase, tuple[float, float]]:
        """Close the phase ``name`` opened at the mark ``opened``; the phase and the mark
        that closed it (where the next phase opens)."""
        closed = self.mark()
        start, end = opened[0], closed[0]
        phase = Phase(
            name,
            start,
            end,
            apiserver_cpu=closed[1] - opened[1],
            apiserver_peak_rss_mib=self.sampler.peak(start, end),
        )
        return phase, closed

    def events(self, members: Sequence[_Member]) -> list[dict[str, Any]]:
        """Every request of the members' reporters once (a watch logs ResponseStarted,
        and ResponseComplete only when it ends)."""
        unique: dict[str, dict[str, Any]] = {}
        for member in members:
            user = reporter_user(member.job.namespace)
            for stage in ("ResponseStarted", "ResponseComplete", "Panic"):
                for event in self.audit.events(user, stage):
                    known = unique.get(event["auditID"])
                    # The completed stage carries the final status code.
                    if known is None or event["stage"] != "ResponseStarted":
                        unique[event["auditID"]] = event
        return list(unique.values())

    def _reads_pod(self, member: _Member) -> bool:
        user = reporter_user(member.job.namespace)
        return any(
            e.get("objectRef", {}).get("resource") == "pods"
            for stage in ("ResponseStarted", "ResponseComplete")
            for e in self.audit.events(user, stage)
        )

    def written(self, member: _Member) -> float | None:
        """When the member's reporter first wrote the Job's status successfully."""
        times = [
            parse_time(e["stageTimestamp"])
            for e in self.audit.events(reporter_user(member.job.namespace))
            if e["verb"] in WRITE_VERBS
            and e.get("objectRef", {}).get("subresource") == "status"
            and 200 <= e.get("responseStatus", {}).get("code", 0) < 300
        ]
        return min(times, default=None)

    def prepare(self, members: Sequence[_Member]) -> int:
        """Start every member's launcher and wait until each is ready to start its
        reporter; the file descriptor whose closing releases them all."""
        program, env = self.program()
        ready, ready_in = os.pipe()
        go_out, go = os.pipe()
        try:
            for member in members:
                member.process, member.report, _ = launch_in_cluster(
                    self.plane,
                    member.job,
                    member.credentials,
                    program,
                    env,
                    release=(ready_in, go_out),
                )
        finally:
            os.close(ready_in)
            os.close(go_out)
        count, deadline = 0, time.monotonic() + self.settings.ready_timeout
        try:
            while count < len(members):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([ready], [], [], left)[0]:
                    break
                got = os.read(ready, len(members) - count)
                # End of file: every launcher has signalled or died (a dead one shows
                # up later as a lost condition).
                if not got:
                    break
                count += len(got)
        finally:
            os.close(ready)
        if count < len(members):
            self.log(f"only {count} of {len(members)} launchers got ready")
        return go

    @staticmethod
    def release(go: int) -> None:
        """Let every prepared launcher start its reporter."""
        os.close(go)

    def wait_started(self, members: Sequence[_Member], timeout: float = 300.0) -> None:
        """Until every reporter has read (or started watching) its Pod, or has exited
        (a reporter that gives up at start-up shows as a lost condition later)."""
        deadline = time.monotonic() + timeout
        waiting = list(members)
        while waiting and time.monotonic() < deadline:
            waiting = [
                m
                for m in waiting
                if not self._reads_pod(m) and m.process and m.process.poll() is None
            ]
            time.sleep(0.2)
        if waiting:
            self.log(f"{len(waiting)} reporters did not read their Pod in {timeout:.0f} s")

    def output(self, member: _Member) -> str:
        """What the member's reporter logged."""
        path = member.credentials / "reporter.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def burst(self, members: Sequence[_Member], kind: str) -> float:
        """Every adapter writes its result, or exits 1, as fast as the harness can; the
        spread in seconds."""
        if kind == RESULT_BURST:
            text = json.dumps(SUCCESS)
            for member in members:
                temporary = member.job.results_dir / ".adapter-result.json.tmp"
                temporary.write_text(text)
                temporary.replace(member.job.results_path)
                member.acted = time.time()
        else:
            with concurrent.futures.ThreadPoolExecutor(self.settings.setup_threads) as pool:
                list(pool.map(self._crash, members))
        acts = [m.acted for m in members]
        return max(acts) - min(acts)

    def _crash(self, member: _Member) -> None:
        # One patch with both containers' states (no read first): as fast as a kubelet.
        job = member.job
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        statuses = [
            {
                "name": job.adapter,
                "image": "example.com/adapter:1",
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": stamp,
                        "finishedAt": stamp,
                    }
                },
                "lastState": {},
            },
            {
                "name": "status-reporter",
                "image": "example.com/status-reporter:1",
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": stamp}},
                "lastState": {},
            },
        ]
        patch = {"status": {"phase": "Running", "containerStatuses": statuses}}
        member.acted = time.time()
        self.admin.patch(
            Pod.Status, job.pod, patch, namespace=job.namespace, patch_type=PatchType.MERGE
        )

    def wait_written(self, members: Sequence[_Member]) -> None:
        """Until every reporter has written its condition, or the write timeout."""
        deadline = time.monotonic() + self.settings.write_timeout
        waiting = list(members)
        while waiting and time.monotonic() < deadline:
            waiting = [m for m in waiting if self.written(m) is None]
            time.sleep(0.2)

    def reap(self, members: Sequence[_Member], run: FleetRun) -> None:
        """Wait for every launcher; add its program's exit code, peak RSS and CPU."""
        deadline = time.monotonic() + 60
        for member in members:
            assert member.process is not None
            assert member.report is not None
            try:
                member.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # Still running after its condition was due: killed, counted as exit -9.
                member.process.kill()
                member.process.wait()
            if member.report.exists():
                data = json.loads(member.report.read_text())
                # None: the exec failed (exit code 127), no execve to count.
                executed = data["executed"]
                member.executed = float("nan") if executed is None else float(executed)
                run.exit_codes[int(data["exit_code"])] += 1
                run.reporters_peak_rss_mib += int(data["max_rss_kib"]) / 1024
                run.reporters_cpu += float(data["cpu_seconds"])
            else:
                run.exit_codes[-9] += 1

    def check(self, members: Sequence[_Member], kind: str, run: FleetRun) -> None:
        """Count the Jobs whose condition is missing (lost) or not the expected one."""
        expected = EXPECTED[kind]
        for member in members:
            job = self.admin.get(Job, member.job.name, namespace=member.job.namespace)
            conditions = job.status.conditions if job.status else None
            found = next((c for c in conditions or [] if c.type == "Available"), None)
            if found is None:
                run.lost += 1
            elif (found.status, found.reason) != expected:
                run.wrong += 1
                if len(run.wrong_examples) < 3:
                    run.wrong_examples.append(f"{found.status} {found.reason}: {found.message}")

    def round(self, n: int, idle: float, kind: str, run: FleetRun) -> None:
        """One round: start-up burst, idle, then the ``kind`` burst; adds to ``run``."""
        members = self.members(n)
        self.audit.update()
        go = self.prepare(members)
        opened = self.mark()
        self.release(go)
        self.wait_started(members)
        time.sleep(self.settings.settle)
        start_up, opened = self.end_phase(START_UP, opened)
        time.sleep(idle)
        idling, opened = self.end_phase(IDLE, opened)
        run.burst_spread[kind] = self.burst(members, kind)
        self.wait_written(members)
        burst, _ = self.end_phase(kind, opened)
        phases = [start_up, idling, burst]
        self.reap(members, run)
        executed = [m.executed for m in members if m.executed == m.executed]
        run.launch_spread.append(max(executed) - min(executed) if executed else float("nan"))
        time.sleep(0.5)  # a watch's ResponseComplete is logged once its connection closed
        latencies = []
        for member in members:
            written = self.written(member)
            if written is not None:
                latencies.append(written - member.acted)
        run.latencies[kind] = latencies
        self.check(members, kind, run)
        events = self.events(members)
        for phase in phases:
            for event in events:
                if phase.start <= parse_time(event["requestReceivedTimestamp"]) < phase.end:
                    phase.verbs[event["verb"]] += 1
                    phase.codes[int(event.get("responseStatus", {}).get("code", 0))] += 1
        run.phases.extend(phases)

    def profile(self, run: FleetRun, baseline: tuple[float, float]) -> None:
        """Put the profile's samples in categories: the baseline's (as rates) and each
        phase's. Stops profiling."""
        if self.profiler is None:
            return
        self.profiler.stop()
        run.profile_failures = self.profiler.failures
        go = go_tool()
        if go is None:
            self.log("no `go` command: the API server's profile is not read")
            return
        start, end = baseline
        pieces = self.profiler.between(start, end)
        run.profile_baseline = per_second(
            categorise([p.path for p in pieces], go), sum(p.end - p.start for p in pieces)
        )
        for phase in run.phases:
            pieces = self.profiler.between(phase.start, phase.end)
            phase.profile = dict(categorise([p.path for p in pieces], go))
            phase.profiled = sum(p.end - p.start for p in pieces)
        for piece in self.profiler.pieces:
            piece.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop sampling and profiling."""
        self.sampler.stop()
        if self.profiler is not None:
            self.profiler.stop()


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine's processes have used since boot (``/proc/stat``:
    user, nice and system time; interrupts and time stolen by the hypervisor are no
    process's)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system = (int(f) for f in fields[:3])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(plane: ControlPlane) -> float:
    """CPU seconds of this harness, its waited-for children (launchers, reporters) and
    its running servers."""
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime
    return total + sum(
        cpu_seconds(process.pid) for process in plane.processes.values() if process.poll() is None
    )


def load_average() -> float:
    """The machine's 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def measure(  # noqa: PLR0917 - one call site, each argument a different thing
    assets: Path,
    workdir: Path,
    implementation: Implementation,
    flow: str,
    n: int,
    settings: FleetSettings,
    log: Callable[[str], None],
    repeat: int = 0,
) -> FleetRun:
    """Both rounds of one implementation, flow-control setting and N, on a fresh
    control plane."""
    started = time.monotonic()
    run = FleetRun(implementation.name, flow, n, repeat=repeat, started=time.time())
    run.load_average.append(load_average())
    directory = workdir / f"{implementation.name}-{flow}-{n}-{repeat}"
    plane = ControlPlane.start(
        assets,
        directory / "controlplane",
        apiserver_args=THROTTLE_FLAGS if flow == THROTTLED else (),
    )
    try:
        if flow == THROTTLED:
            throttle(plane.admin_client(), settings.throttle_queue)
        fleet = Fleet(plane, implementation, settings, directory, log)
        try:
            machine, own = busy_cpu_seconds(), own_cpu_seconds(plane)
            clock = time.monotonic()
            baseline_start, cpu = fleet.mark()
            time.sleep(settings.baseline)
            baseline_end, after = fleet.mark()
            run.apiserver_baseline = (after - cpu) / (baseline_end - baseline_start)
            cpu, start = fleet.sampler.cpu(), time.monotonic()
            name = f"{implementation.name}, {flow}, N = {n}, run {repeat + 1}"
            log(f"{name}: round 1 (result burst)")
            fleet.round(n, settings.idle_for(flow), RESULT_BURST, run)
            log(f"{name}: round 2 (crash burst)")
            fleet.round(n, settings.crash_idle, CRASH_BURST, run)
            alone = run.apiserver_baseline * (time.monotonic() - start)
            run.apiserver_cpu = fleet.sampler.cpu() - cpu - alone
            run.apiserver_peak_rss_mib = max(p.apiserver_peak_rss_mib for p in run.phases)
            others = busy_cpu_seconds() - machine - (own_cpu_seconds(plane) - own)
            run.others_cores = max(0.0, others) / (time.monotonic() - clock)
            run.load_average.append(load_average())
            fleet.profile(run, (baseline_start, baseline_end))
        finally:
            fleet.close()
    finally:
        plane.stop()
    run.seconds = time.monotonic() - started
    return run


def measure_all(
    assets: Path,
    workdir: Path,
    settings: FleetSettings,
    log: Callable[[str], None],
    *,
    done: Callable[[FleetRun], None] = lambda run: None,
    skip: Collection[tuple[str, str, int, int]] = (),
) -> tuple[list[FleetRun], list[str]]:
    """Every implementation (the reference only with its binary), flow, N and repeat
    but those in ``skip`` (implementation, flow, N, repeat); ``done`` is called with
    each run as it ends. Returns the runs and, for each that could not be measured, why
    (the others still are)."""
    implementations = [i for i in IMPLEMENTATIONS if settings.reference_binary or not i.reference]
    runs, failures = [], []
    for flow in settings.flows:
        for n in settings.sizes_for(flow):
            # The implementations take turns, so that a slow spell of the machine does
            # not fall on one of them only.
            for repeat in range(settings.repeats_for(n)):
                for implementation in implementations:
                    if (implementation.name, flow, n, repeat) in skip:
                        continue
                    try:
                        run = measure(
                            assets, workdir, implementation, flow, n, settings, log, repeat
                        )
                    except Exception as exc:  # one broken run must not cost the others
                        failures.append(
                            f"{implementation.name}, {flow}, N = {n}, run {repeat + 1}: {exc!r}"
                        )
                        log(f"FAILED: {failures[-1]}")
                        continue
                    runs.append(run)
                    done(run)
    return runs, failures
