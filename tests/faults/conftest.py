"""Fixtures for the fault-injection suite: a control plane of its own (its API server is
stopped, restarted and frozen), a fault proxy in front of it, and the record of what
each case measured, printed as a table at the end of the run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.checks import eventually
from harness.cluster import AdapterJob, create_job, create_namespace
from harness.controlplane import ControlPlane
from harness.faultproxy import FaultProxy, remove_chain
from harness.httpproxy import HttpProxy
from harness.reporter import ReporterRun, start_reporter
from harness.required import start_plane
from lightkube import Client

pytestmark = pytest.mark.faults


@dataclass(frozen=True)
class Outcome:
    """What one fault case ended with, for the summary table."""

    case: str
    reason: str
    exit_code: int | None
    seconds: float
    measured: str = ""


OUTCOMES: list[Outcome] = []


@pytest.fixture(scope="session")
def fault_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane for the fault suite alone (shared by its modules, never by other
    suites): its API server will be made to fail."""
    plane = start_plane(tmp_path_factory.mktemp("fault-plane"))
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def plane(fault_plane: ControlPlane) -> Iterator[ControlPlane]:
    """The fault plane, running and thawed again after each case."""
    yield fault_plane
    fault_plane.thaw_apiserver()
    if fault_plane.processes["kube-apiserver"].poll() is not None:
        fault_plane.start_apiserver()


@pytest.fixture
def admin(plane: ControlPlane) -> Client:
    return plane.admin_client()


@pytest.fixture
def proxy(plane: ControlPlane) -> Iterator[FaultProxy]:
    remove_chain()  # left over by a run that was killed
    port = int(plane.url.rsplit(":", 1)[1])
    fault_proxy = FaultProxy(port).start()
    try:
        yield fault_proxy
    finally:
        fault_proxy.stop()


@pytest.fixture
def http_proxy(plane: ControlPlane) -> Iterator[HttpProxy]:
    """A TLS-terminating HTTP proxy in front of the API server (hostile on command)."""
    proxy = HttpProxy.in_front_of(plane).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def make_job(admin: Client, tmp_path: Path) -> Callable[..., AdapterJob]:
    namespace = create_namespace(admin)

    def make(**kwargs: object) -> AdapterJob:
        return create_job(admin, namespace, tmp_path / "results", **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def job(make_job: Callable[..., AdapterJob]) -> AdapterJob:
    made = make_job()
    made.running()
    return made


Start = Callable[..., ReporterRun]


@pytest.fixture
def reporter(plane: ControlPlane, tmp_path: Path) -> Iterator[Start]:
    """Start the reporter for a Job, through the proxy when one is given (as ``account``,
    a ServiceAccount of the Job's namespace)."""
    runs: list[ReporterRun] = []

    def start(
        job: AdapterJob,
        env: Mapping[str, str] | None = None,
        proxy: FaultProxy | HttpProxy | None = None,
        token_file: Path | None = None,
        account: str = "status-reporter",
    ) -> ReporterRun:
        server = f"https://127.0.0.1:{proxy.port}" if proxy is not None else None
        defaults = {"MAX_WAIT_TIME_SECONDS": "120", "CONTAINER_STATUS_INTERVAL_SECONDS": "3"}
        run = start_reporter(
            plane,
            job,
            tmp_path,
            {**defaults, **(env or {})},
            account=account,
            server=server,
            token_file=token_file,
        )
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop()


def monitoring(run: ReporterRun) -> ReporterRun:
    """``run`` once it has started monitoring (start-up done)."""
    eventually(lambda: "monitoring adapter" in run.output, timeout=30)
    return run


def exit_figures(run: ReporterRun) -> tuple[float, float]:
    """The peak memory (MiB, VmHWM) and CPU seconds the reporter logged at exit."""
    line = next(line for line in run.output.splitlines() if " exiting " in line)
    figures = dict(part.split("=", 1) for part in line.split() if "=" in part)
    return float(figures["max_rss_mib"]), float(figures["cpu_seconds"])


def record(
    case: str, job: AdapterJob, run: ReporterRun, since: float, measured: str = ""
) -> Outcome:
    """Note what a case ended with (condition reason, exit code, seconds since ``since``,
    and anything else it measured)."""
    condition = job.condition()
    outcome = Outcome(
        case,
        condition["reason"] if condition else "(none)",
        run.process.returncode,
        round(time.monotonic() - since, 2),
        measured,
    )
    OUTCOMES.append(outcome)
    return outcome


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The measured outcome of every fault case, as a table."""
    if not OUTCOMES:
        return
    terminalreporter.section("fault cases: condition, exit code, time")
    terminalreporter.write_line("| case | condition | exit code | time (s) | also measured |")
    terminalreporter.write_line("|---|---|---|---|---|")
    for outcome in OUTCOMES:
        terminalreporter.write_line(
            f"| {outcome.case} | {outcome.reason} | {outcome.exit_code} | {outcome.seconds}"
            f" | {outcome.measured} |"
        )
