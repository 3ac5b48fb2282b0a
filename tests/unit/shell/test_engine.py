"""The engine end to end over the in-memory cluster: what gets decided, written and returned.

Time is a FakeClock moved by the test; the result file is a real file in a
temporary directory (watched with real inotify in auto mode). The fixtures give each
test its clock, its cluster (``@pytest.mark.memcluster(...)`` passes options to both),
and a reporter run over them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from status_reporter.api.protocol import (
    ApiError,
    CredentialsUnavailable,
    Operations,
    PodEvent,
    Unreachable,
)
from status_reporter.api.writer import FORBIDDEN_GRACE_SECONDS, ConditionWriter
from status_reporter.base import logs
from status_reporter.core.conditions import rfc3339
from status_reporter.core.config import Config, LogFormat, LogLevel, MonitorMode
from status_reporter.core.contract import ResultState, read_result
from status_reporter.core.models import (
    Container,
    JobCondition,
    ObjectMeta,
    OwnerReference,
    Pod,
    Status,
)
from status_reporter.monitors.pod import FIRST_STATE_SECONDS
from status_reporter.monitors.resultfile import MAX_READ_INTERVAL, MIN_READ_INTERVAL
from status_reporter.shell.engine import Reporter
from status_reporter.shell.outcome import STOP_EXIT_SECONDS, ExitCode
from tests.unit.fakes import WALL_START, FakeClock, running, settle, terminated, waiting
from tests.unit.memcluster import PROJECT_RULES, REFERENCE_RULES, MemoryCluster, make_pod

SUCCESS = {"status": "success", "reason": "ValidationPassed", "message": "all good"}
NATIVE = (Container(name="status-reporter", restart_policy="Always"),)


class Run:
    """A reporter run as a task over a MemoryCluster, with handles on its edges."""

    def __init__(self, tmp_path: Path, cluster: MemoryCluster | None = None, **config: Any) -> None:
        self.path = tmp_path / "results" / "adapter-result.json"
        self.termination = tmp_path / "termination-log"
        self.termination.write_bytes(b"")
        self.clock = cluster.clock if cluster is not None else FakeClock()
        self.cluster = cluster or MemoryCluster(self.clock)
        self.reads = 0
        self.config = Config(
            job_name=config.pop("job_name", "job-a"),
            job_namespace="ns-a",
            pod_name="pod-a",
            results_path=str(self.path),
            termination_message_path=str(self.termination),
            **config,
        )
        self.reporter = Reporter(
            self.config, self.cluster, self.clock, logs.get_logger(), read=self._read
        )
        self.task: asyncio.Task[ExitCode] | None = None

    def _read(self, path: str) -> ResultState:
        self.reads += 1
        return read_result(path)

    async def start(self) -> Run:
        self.task = asyncio.create_task(self.reporter.run())
        await settle()
        return self

    def write(self, content: str | dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else json.dumps(content)
        self.path.write_text(text)

    def adapter(self, state: Any) -> None:
        self.cluster.set_container("adapter", state)

    async def finish(self, within: float = 0.0) -> ExitCode:
        """The exit code, letting at most ``within`` seconds pass on the fake clock."""
        assert self.task is not None
        if within:
            await self.clock.advance(within)
        for _ in range(100):
            if self.task.done():
                break
            await asyncio.sleep(0.01)
        assert self.task.done(), "the reporter did not finish"
        return self.task.result()

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    def written(self) -> tuple[str, str, str] | None:
        condition = self.cluster.condition()
        if condition is None:
            return None
        return condition.status, condition.reason, condition.message

    def last_word(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.termination.read_bytes())
        return message


class NewRun(Protocol):
    def __call__(self, **config: Any) -> Run: ...


Start = Callable[..., Awaitable[Run]]
Logged = Callable[[], str]


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("memcluster")
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> FakeClock:
    """The test's clock; ``memcluster(autojump=True)`` makes every sleep return at once."""
    return FakeClock(autojump=_options(request).get("autojump", False))


@pytest.fixture
def cluster(clock: FakeClock, request: pytest.FixtureRequest) -> MemoryCluster:
    """The in-memory cluster, with the options of the test's ``memcluster`` marker."""
    options = {k: v for k, v in _options(request).items() if k != "autojump"}
    return MemoryCluster(clock, options.pop("pod", None), **options)


@pytest.fixture
def new_run(tmp_path: Path, cluster: MemoryCluster) -> NewRun:
    """A reporter run over the test's cluster, not started yet."""
    return lambda **config: Run(tmp_path, cluster, **config)


@pytest.fixture
def start(new_run: NewRun) -> Start:
    """A reporter run over the test's cluster, started."""

    async def started(**config: Any) -> Run:
        return await new_run(**config).start()

    return started


@pytest.fixture
def logged(capsys: pytest.CaptureFixture[str]) -> Logged:
    """Text logging at the default level; the output since the last call."""
    logs.configure()
    return lambda: capsys.readouterr().out


# --- results and crashes -------------------------------------------------------------


async def test_valid_result_is_written_and_exits_zero(cluster: MemoryCluster, start: Start) -> None:
    run = await start()
    assert not run.done
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.RESULT
    assert run.written() == ("True", "ValidationPassed", "all good")
    assert run.cluster.calls["watch"] == 1


async def test_a_watched_pods_first_state_comes_from_the_watch_not_a_get(
    cluster: MemoryCluster, start: Start
) -> None:
    run = await start()
    # Review, then the watch that starts with the Pod's state: no GET.
    assert cluster.calls == {"review": 1, "watch": 1, "get_job": 1}
    assert cluster.watch_versions == [""]
    assert cluster.watch_initial_events == [True]
    run.adapter(terminated(exit_code=1))
    # The same watch goes on: it brings the adapter's exit.
    assert await run.finish(within=1) is ExitCode.ADAPTER_PROBLEM
    assert cluster.calls["watch"] == 1
    assert cluster.calls["get_pod"] == 0


async def test_a_server_refusing_initial_events_gets_a_plain_watch(
    cluster: MemoryCluster, start: Start
) -> None:
    cluster.no_initial_events = True
    run = await start()
    assert cluster.watch_initial_events == [True, False]
    run.adapter(terminated(exit_code=1))
    assert await run.finish(within=1) is ExitCode.ADAPTER_PROBLEM
    # As many requests as a GET before the watch would cost.
    assert cluster.calls["get_pod"] == 0
    assert cluster.calls["watch"] == 2


async def test_a_watch_silent_at_start_is_followed_by_a_get_and_goes_on(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    cluster.quiet_start = True
    run = await start()
    await clock.advance(FIRST_STATE_SECONDS)
    # Nothing within FIRST_STATE_SECONDS: a GET gives the state, the watch stays open.
    assert cluster.calls == {"review": 1, "watch": 1, "get_pod": 1, "get_job": 1}
    assert cluster.watch_initial_events == [True]
    await clock.advance(30)
    run.adapter(terminated(exit_code=1))
    assert await run.finish(within=1) is ExitCode.ADAPTER_PROBLEM
    assert cluster.calls["watch"] == 1
    assert cluster.calls["get_pod"] == 1


async def test_auto_mode_reacts_to_the_file_event_without_waiting_for_a_poll(
    start: Start, tmp_path: Path
) -> None:
    (tmp_path / "results").mkdir()
    run = await start()
    await asyncio.sleep(0.05)
    run.write({"status": "failure", "reason": "Denied", "message": "no"})
    await asyncio.sleep(0.05)
    # Far less than a poll interval: only the inotify event can wake the engine.
    assert await run.finish(within=MIN_READ_INTERVAL) is ExitCode.RESULT
    assert run.written() == ("False", "Denied", "no")


async def test_poll_mode_reads_on_the_reference_schedule(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    run = await start(monitor_mode=MonitorMode.POLL, poll_interval_seconds=5)
    assert run.cluster.calls == {"review": 1, "get_pod": 1, "get_job": 1}
    assert run.reads == 1
    await run.clock.advance(4.9)
    assert run.reads == 1
    await run.clock.advance(0.1)
    assert run.reads == 2
    await run.clock.advance(10)
    assert run.reads == 4
    assert run.cluster.calls["watch"] == 0
    run.write(SUCCESS)
    assert not run.done
    assert await run.finish(within=5) is ExitCode.RESULT


@pytest.mark.memcluster(rules=REFERENCE_RULES)
async def test_reference_role_polls_the_pod_every_interval(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    run = await start(container_status_interval_seconds=7)
    assert cluster.calls["get_pod"] == 1  # the start-up read; the first poll is 7 s away
    await clock.advance(14)
    assert cluster.calls["get_pod"] == 3
    assert cluster.calls["watch"] == 0
    run.adapter(terminated(exit_code=3))
    assert await run.finish(within=7) is ExitCode.ADAPTER_PROBLEM


async def test_crash_without_result_carries_the_termination_message_tail(start: Start) -> None:
    run = await start()
    run.adapter(terminated(exit_code=2, reason="Error", message="boom\nfatal: bad"))
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM
    assert run.written() == (
        "False",
        "AdapterExitedWithError",
        "Adapter container exited with code 2: Error: fatal: bad",
    )


async def test_result_written_just_before_the_exit_wins(start: Start) -> None:
    run = await start(monitor_mode=MonitorMode.POLL, poll_interval_seconds=60)
    run.write(SUCCESS)  # no file poll before the Pod's: only the termination makes it look again
    run.adapter(terminated(exit_code=1))
    assert await run.finish(within=10) is ExitCode.RESULT
    assert run.written() == ("True", "ValidationPassed", "all good")


async def test_a_result_already_there_needs_no_monitors(
    cluster: MemoryCluster, start: Start, new_run: NewRun
) -> None:
    run = new_run()
    run.write(SUCCESS)
    await run.start()
    assert await run.finish() is ExitCode.RESULT
    # Review, the watch that gave the Pod, Job, patch, Event; the watch went no further.
    assert run.cluster.calls["watch"] == 1
    assert run.cluster.calls["get_pod"] == 0
    assert sum(run.cluster.calls.values()) == 5


async def test_adapter_already_terminated_at_start(
    cluster: MemoryCluster, start: Start, new_run: NewRun
) -> None:
    cluster.set_container("adapter", terminated(exit_code=0, reason="Completed"))
    run = new_run()
    run.write(SUCCESS)
    await run.start()
    assert await run.finish() is ExitCode.RESULT


async def test_oom_killed(start: Start) -> None:
    run = await start()
    run.adapter(terminated(exit_code=137, reason="OOMKilled"))
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM
    assert run.written() is not None
    assert run.written()[1] == "AdapterOOMKilled"  # type: ignore[index]


async def test_timeout(clock: FakeClock, start: Start) -> None:
    run = await start(max_wait_time_seconds=30)
    await run.clock.advance(29.9)
    assert not run.done
    assert await run.finish(within=0.1) is ExitCode.ADAPTER_PROBLEM
    assert run.written() == (
        "False",
        "AdapterTimeout",
        "Adapter did not produce results within 30s",
    )


async def test_timeout_tells_why_the_adapter_never_started(
    cluster: MemoryCluster, start: Start
) -> None:
    cluster.set_container("adapter", waiting("ImagePullBackOff", "no image"))
    run = await start(max_wait_time_seconds=60)
    await run.finish(within=60)
    assert run.written() == (
        "False",
        "AdapterTimeout",
        "Adapter did not produce results within 1m0s (adapter waiting: ImagePullBackOff: no image)",
    )


@pytest.mark.memcluster(rules=REFERENCE_RULES)
async def test_deadline_reads_the_pod_once_more_before_timing_out(
    clock: FakeClock, start: Start
) -> None:
    # The reference Role: the Pod is polled every 10 s, the crash comes between polls.
    run = await start(max_wait_time_seconds=5, poll_interval_seconds=1)
    await clock.advance(0.5)
    run.adapter(terminated(exit_code=1, reason="Error"))
    assert await run.finish(within=4.5) is ExitCode.ADAPTER_PROBLEM
    assert run.written() == (
        "False",
        "AdapterExitedWithError",
        "Adapter container exited with code 1: Error",
    )


async def test_an_older_pod_state_never_replaces_a_newer_one(
    cluster: MemoryCluster, start: Start
) -> None:
    """The adapter crashes while the deadline read is in flight: the watch delivers the
    crash, then the read's older state lands. The crash is reported as the crash."""
    cluster.set_container("adapter", running())
    run = await start(max_wait_time_seconds=5)

    raced: list[bool] = []

    async def crash_meanwhile() -> None:
        cluster.set_container("adapter", terminated(exit_code=1, reason="Error"))
        await settle()
        raced.append(True)

    cluster.while_reading = crash_meanwhile
    assert await run.finish(within=5) is ExitCode.ADAPTER_PROBLEM
    assert raced  # the deadline read did race the crash
    assert run.written() == (
        "False",
        "AdapterExitedWithError",
        "Adapter container exited with code 1: Error",
    )


async def test_deadline_reads_the_file_once_more(
    clock: FakeClock, start: Start, tmp_path: Path
) -> None:
    run = await Run(
        tmp_path, monitor_mode=MonitorMode.POLL, max_wait_time_seconds=5, poll_interval_seconds=4
    ).start()
    await run.clock.advance(4.5)
    run.write(SUCCESS)
    assert await run.finish(within=0.5) is ExitCode.RESULT


# --- invalid files ---------------------------------------------------------------------


async def test_two_step_write_is_not_reported_invalid_halfway(
    clock: FakeClock, start: Start
) -> None:
    run = await start(poll_interval_seconds=2)
    run.write('{"status": "success",')
    await run.clock.advance(1.5)
    run.write('{"status": "success", "reason": "Done"}')
    assert await run.finish(within=2) is ExitCode.RESULT
    assert run.written() == ("True", "Done", "No message provided")


async def test_invalid_file_is_reported_once_it_settles(clock: FakeClock, start: Start) -> None:
    run = await start(monitor_mode=MonitorMode.POLL, poll_interval_seconds=2)
    run.write('{"status": "done"}')
    await run.clock.advance(2)  # first seen at the 2 s poll
    await run.clock.advance(1.9)
    assert not run.done
    assert await run.finish(within=0.5) is ExitCode.ADAPTER_PROBLEM
    assert run.written() == (
        "False",
        "InvalidResultFormat",
        "Failed to parse adapter result: status: must be either 'success' or 'failure'",
    )


async def test_reads_are_coalesced_however_often_the_file_changes(
    clock: FakeClock, start: Start, tmp_path: Path
) -> None:
    (tmp_path / "results").mkdir()
    run = await start()
    for index in range(200):
        run.write(f'{{"status": "writing {index}"}}')
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    await run.clock.advance(0.05)
    # 200 writes within about 0.05 s of the fake clock: at most a few reads.
    assert run.reads <= 6
    run.reporter.stop()
    await run.finish(within=6)


async def test_reads_back_off_while_every_read_finds_new_invalid_content(
    clock: FakeClock, start: Start, tmp_path: Path
) -> None:
    """An adapter rewriting its file in a loop for 10 s: the re-reads thin out to
    one per MAX_READ_INTERVAL, not one per MIN_READ_INTERVAL."""
    (tmp_path / "results").mkdir()
    run = await start(poll_interval_seconds=30, max_wait_time_seconds=300)
    before = run.reads
    for index in range(1000):  # a new invalid content every 10 ms
        run.write(f'{{"status": "writing {index}"}}')
        await asyncio.sleep(0)
        await run.clock.advance(0.01)
    reads = run.reads - before
    assert reads <= 10 / MAX_READ_INTERVAL + 10, reads
    assert reads < 10 / MIN_READ_INTERVAL / 4, reads
    run.write(SUCCESS)  # a valid result still lands within the longest gap
    assert await run.finish(within=MAX_READ_INTERVAL) is ExitCode.RESULT


async def test_an_empty_file_never_settles_while_the_adapter_runs(
    clock: FakeClock, start: Start
) -> None:
    """Truncate-then-write shows an empty file for an instant: it is never the verdict
    while the adapter runs; once the adapter has ended, it is."""
    run = await start()
    run.write("")
    await run.clock.advance(20)
    assert not run.done
    run.adapter(terminated(exit_code=0, reason="Completed"))
    assert await run.finish(within=1) is ExitCode.ADAPTER_PROBLEM
    assert run.written() == (
        "False",
        "InvalidResultFormat",
        "Failed to parse adapter result: file is empty; adapter exited with code 0",
    )


async def test_invalid_file_after_exit_is_reported_at_once(start: Start) -> None:
    run = await start()
    run.write("not json")
    run.adapter(terminated(exit_code=0, reason="Completed"))
    await run.finish()
    written = run.written()
    assert written is not None
    assert written[2].startswith("Failed to parse adapter result: invalid JSON: ")
    assert written[2].endswith("; adapter exited with code 0")


# --- stops ----------------------------------------------------------------------------------


async def test_stop_before_a_result_waits_the_window_then_interrupts(
    clock: FakeClock, start: Start
) -> None:
    run = await start()
    run.reporter.stop()
    await run.clock.advance(4.9)
    assert not run.done
    assert await run.finish(within=0.2) is ExitCode.ADAPTER_PROBLEM
    assert run.written() == (
        "False",
        "ReporterInterrupted",
        "Status reporter was stopped before the adapter produced a result",
    )


@pytest.mark.memcluster(pod=make_pod(("adapter",), NATIVE))
async def test_stop_window_sees_a_termination_posted_after_the_signal(
    clock: FakeClock, start: Start
) -> None:
    # A real kubelet stops a native sidecar before posting the adapter's terminated state.
    run = await start()
    exited = rfc3339(clock.wall())
    run.reporter.stop()
    await clock.advance(1)
    run.adapter(terminated(exit_code=1, reason="Error", finished_at=exited))
    assert await run.finish(within=0.5) is ExitCode.RESULT
    assert run.written() == (
        "False",
        "AdapterExitedWithError",
        "Adapter container exited with code 1: Error",
    )


async def test_an_adapter_killed_by_the_same_stop_is_an_interruption(
    clock: FakeClock, start: Start
) -> None:
    run = await start()
    run.reporter.stop()
    await run.clock.advance(3)
    run.adapter(terminated(exit_code=143, reason="Error", finished_at=rfc3339(run.clock.wall())))
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM
    assert run.written() is not None
    assert run.written()[1] == "ReporterInterrupted"  # type: ignore[index]


async def test_stop_evaluates_the_latest_pod_state_first(clock: FakeClock, start: Start) -> None:
    run = await start(monitor_mode=MonitorMode.POLL)
    # Polled every 10 s: the change is only seen by the read that the stop makes.
    run.adapter(terminated(exit_code=0, reason="Completed", finished_at=rfc3339(run.clock.wall())))
    run.reporter.stop()
    await run.finish(within=1)
    assert run.written() is not None
    assert run.written()[1] == "AdapterMissingResults"  # type: ignore[index]


async def test_a_result_present_at_the_stop_wins(start: Start) -> None:
    run = await start(monitor_mode=MonitorMode.POLL)
    run.write(SUCCESS)
    run.reporter.stop()
    assert await run.finish() is ExitCode.RESULT
    assert run.written() == ("True", "ValidationPassed", "all good")


async def test_a_deleted_pod_is_a_stop(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    run = await start()
    await run.clock.advance(5)
    # The deletion was requested 4 s ago; the adapter was killed 2 s later.
    killed = terminated(exit_code=137, reason="Error", finished_at=rfc3339(run.clock.wall() - 2))
    run.cluster.set_container("adapter", killed, notify=False)
    run.cluster.delete_pod(requested_at=rfc3339(run.clock.wall() - 4))
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM
    assert run.written() is not None
    assert run.written()[1] == "ReporterInterrupted"  # type: ignore[index]


@pytest.mark.memcluster(rules=REFERENCE_RULES)
async def test_a_pod_gone_from_polls_is_a_stop(cluster: MemoryCluster, start: Start) -> None:
    run = await start(container_status_interval_seconds=2)
    cluster.pod = None
    assert await run.finish(within=2) is ExitCode.ADAPTER_PROBLEM
    assert run.written() is not None
    assert run.written()[1] == "ReporterInterrupted"  # type: ignore[index]


async def test_stop_during_start_up_retries_exits_within_the_bound(
    clock: FakeClock, cluster: MemoryCluster, start: Start, new_run: NewRun
) -> None:
    cluster.hang = True  # a black hole: every call waits for its timeout
    run = new_run()
    run.write(SUCCESS)
    await run.start()
    await clock.advance(30)
    assert not run.done
    stopped_at = clock.now()
    run.reporter.stop()
    code = await run.finish(within=STOP_EXIT_SECONDS)
    assert clock.now() - stopped_at <= STOP_EXIT_SECONDS
    assert code is ExitCode.WRITE_FAILED
    assert run.last_word() == {
        "type": "Available",
        "status": "True",
        "reason": "ValidationPassed",
        "message": "all good",
        "written": False,
    }


async def test_stop_during_start_up_still_writes_when_the_api_answers(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    cluster.hang = True
    run = await start()
    await clock.advance(20)
    run.reporter.stop()
    cluster.hang = False
    assert await run.finish(within=6) is ExitCode.ADAPTER_PROBLEM
    assert run.written() is not None
    assert run.written()[1] == "ReporterInterrupted"  # type: ignore[index]


async def test_stop_during_write_retries_makes_one_last_attempt(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    run = await start()
    run.cluster.down = True
    run.write(SUCCESS)
    await run.clock.advance(40)
    assert not run.done
    run.cluster.down = False
    run.reporter.stop()
    assert await run.finish(within=1) is ExitCode.RESULT
    assert run.written() == ("True", "ValidationPassed", "all good")
    assert run.last_word()["written"] is True


async def test_second_stop_reports_at_once(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    run = await start()
    run.cluster.down = True
    run.write(SUCCESS)
    await run.clock.advance(3)
    run.reporter.stop()
    assert run.reporter.final_report() == ExitCode.WRITE_FAILED
    assert run.last_word()["reason"] == "ValidationPassed"
    assert run.last_word()["written"] is False
    await run.finish(within=STOP_EXIT_SECONDS)


# --- the write path ----------------------------------------------------------------------


async def test_the_decided_outcome_is_left_before_the_write_ends(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    """A SIGKILL during the write's retries (an OOM kill, a node shutdown) still leaves it."""
    run = await start()
    cluster.down = True
    run.write(SUCCESS)
    await clock.advance(3)
    assert not run.done
    assert run.last_word() == {**PASSED_WORD, "written": False}
    cluster.down = False
    assert await run.finish(within=6) is ExitCode.RESULT
    assert run.last_word() == {**PASSED_WORD, "written": True}


async def test_the_patch_carries_no_resource_version_and_merges_by_type(
    cluster: MemoryCluster, start: Start
) -> None:
    other = JobCondition(type="Complete", status="True", reason="Done", message="m")
    cluster.set_conditions([other])
    run = await start()
    run.write(SUCCESS)
    await run.finish(within=2)
    (patch,) = cluster.patches
    assert "metadata" not in patch
    assert [c.type for c in cluster.job.status.conditions] == ["Complete", "Available"]


async def test_an_identical_condition_is_not_written_again(
    cluster: MemoryCluster, start: Start
) -> None:
    same = JobCondition(
        type="Available",
        status="True",
        reason="ValidationPassed",
        message="all good",
        last_transition_time="2026-01-01T00:00:00Z",
    )
    cluster.set_conditions([same])
    run = await start()
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.RESULT
    assert cluster.patches == []
    # The start-up copy showed it; it is read once more before nothing is written.
    assert cluster.calls["get_job"] == 2
    assert run.last_word()["written"] is True


async def test_a_condition_changed_by_another_writer_after_start_up_is_written(
    cluster: MemoryCluster, start: Start
) -> None:
    """The Job carries this verdict from an earlier Pod; another writer (the reporter of
    a still-terminating Pod) replaces it after start-up: the stale copy must not say
    "nothing to write"."""
    crashed = JobCondition(
        type="Available",
        status="False",
        reason="AdapterExitedWithError",
        message="Adapter container exited with code 1: Error",
        last_transition_time="2026-01-01T00:00:00Z",
    )
    cluster.set_conditions([crashed])
    run = await start()
    interrupted = JobCondition(
        type="Available",
        status="False",
        reason="ReporterInterrupted",
        message="Status reporter was stopped before the adapter produced a result",
        last_transition_time="2026-01-01T00:00:00Z",
    )
    cluster.set_conditions([interrupted])
    run.adapter(terminated(exit_code=1))
    assert await run.finish(within=1) is ExitCode.ADAPTER_PROBLEM
    assert run.written() == (
        "False",
        "AdapterExitedWithError",
        "Adapter container exited with code 1: Error",
    )
    assert len(cluster.patches) == 1
    assert run.last_word()["written"] is True


async def test_a_held_condition_of_this_type_is_read_again_before_the_write(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    """Start-up saw False (09:00); another writer sets True (10:00:01) since: the crash
    is a new transition, not a False kept from the stale copy's 09:00."""
    cluster.set_conditions(
        [
            JobCondition(
                type="Available",
                status="False",
                reason="AdapterTimeout",
                message="Adapter did not produce results within 5m0s",
                last_transition_time="2026-11-26T09:00:00Z",
            )
        ]
    )
    run = await start()
    cluster.set_conditions(
        [
            JobCondition(
                type="Available",
                status="True",
                reason="ValidationPassed",
                message="all good",
                last_transition_time="2026-11-26T10:00:01Z",
            )
        ]
    )
    await clock.advance(2)
    crashed_at = rfc3339(clock.wall())
    run.adapter(terminated(exit_code=1))
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM
    written = cluster.condition()
    assert written is not None
    assert (written.reason, written.last_transition_time) == ("AdapterExitedWithError", crashed_at)
    assert cluster.calls["get_job"] == 2


async def test_without_a_condition_of_this_type_a_run_reads_the_job_once(
    cluster: MemoryCluster, start: Start
) -> None:
    run = await start()
    run.adapter(terminated(exit_code=1))
    assert await run.finish(within=1) is ExitCode.ADAPTER_PROBLEM
    # Review, watch (with the Pod), Job, patch, Event: five requests.
    assert sum(cluster.calls.values()) == 5
    assert cluster.calls["get_job"] == 1


async def test_the_write_is_retried_for_max_wait_when_that_is_longer(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    run = await start(max_wait_time_seconds=120)
    run.cluster.down = True
    run.write(SUCCESS)
    await run.clock.advance(75)
    assert not run.done
    run.cluster.down = False
    assert await run.finish(within=6) is ExitCode.RESULT
    assert run.written() == ("True", "ValidationPassed", "all good")


@pytest.mark.memcluster(autojump=True)
async def test_credentials_failing_during_the_write_are_retried_like_any_api_failure(
    cluster: MemoryCluster, start: Start, new_run: NewRun, logged: Logged
) -> None:
    missing = CredentialsUnavailable("token file /t: No such file or directory")
    cluster.fail("patch", missing, missing)
    run = new_run()
    run.write(SUCCESS)
    await run.start()
    assert await run.finish() is ExitCode.RESULT  # the file came back: written
    assert cluster.calls["patch"] == 3
    assert run.last_word()["written"] is True
    assert "API call failed, retrying" in logged()


@pytest.mark.memcluster(autojump=True)
async def test_credentials_failing_for_good_end_with_the_clear_line_and_the_last_word(
    cluster: MemoryCluster, start: Start, new_run: NewRun, logged: Logged
) -> None:
    cluster.fail("patch", *[CredentialsUnavailable("exec plugin 'x': exit code 1: denied")] * 99)
    run = new_run()
    run.write(SUCCESS)
    await run.start()
    assert await run.finish() is ExitCode.WRITE_FAILED
    out = logged()
    assert "no credentials: exec plugin 'x': exit code 1: denied" in out
    assert "condition not recorded on the Job" in out
    assert "internal error" not in out
    assert run.last_word()["written"] is False


async def test_a_black_hole_ends_the_write_within_its_budget(
    clock: FakeClock, cluster: MemoryCluster, start: Start, tmp_path: Path
) -> None:
    (tmp_path / "results").mkdir()
    run = await start(max_wait_time_seconds=30)
    run.cluster.hang = True
    run.write(SUCCESS)
    await asyncio.sleep(0.1)  # the file event arrives; the fake clock stands still
    await run.clock.advance(59.9)
    assert not run.done
    # The budget, max(60 s, MAX_WAIT_TIME_SECONDS), holds with each request's timeout in it.
    assert await run.finish(within=0.2) is ExitCode.WRITE_FAILED
    assert run.last_word()["written"] is False


async def test_forbidden_write_is_final_when_start_up_could_not_confirm_it(
    cluster: MemoryCluster, start: Start
) -> None:
    cluster.review_incomplete = True  # a webhook authorizer: the review cannot tell
    run = await start()
    cluster.fail("patch", *[ApiError(403, "HTTP 403: forbidden")] * 50)
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.WRITE_FAILED
    assert cluster.calls["patch"] == 1


async def test_a_403_contradicting_the_start_up_review_is_retried_briefly(
    cluster: MemoryCluster, start: Start
) -> None:
    # Just after an API server restart, authorization refuses until its caches fill.
    run = await start()
    run.cluster.fail("patch", *[ApiError(403, "HTTP 403: forbidden")] * 3)
    run.write(SUCCESS)
    assert await run.finish(within=FORBIDDEN_GRACE_SECONDS) is ExitCode.RESULT
    assert run.cluster.calls["patch"] == 4


async def test_a_lasting_403_ends_the_write_after_the_grace(
    clock: FakeClock, cluster: MemoryCluster, start: Start, tmp_path: Path
) -> None:
    (tmp_path / "results").mkdir()
    run = await start()
    run.cluster.fail("patch", *[ApiError(403, "HTTP 403: forbidden")] * 50)
    run.write(SUCCESS)
    await asyncio.sleep(0.1)
    await run.clock.advance(FORBIDDEN_GRACE_SECONDS - 1)
    assert not run.done
    assert await run.finish(within=6) is ExitCode.WRITE_FAILED
    assert run.last_word()["written"] is False


@pytest.mark.memcluster(pod=make_pod(("adapter",), NATIVE))
async def test_native_sidecar_stays_until_stopped_then_exits_zero(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    run = await start()
    run.adapter(terminated(exit_code=1))
    await clock.advance(60)
    assert len(cluster.patches) == 1
    assert not run.done
    run.reporter.stop()
    assert await run.finish() is ExitCode.RESULT
    assert len(cluster.patches) == 1


@pytest.mark.memcluster(pod=make_pod(("adapter",), NATIVE))
async def test_native_sidecar_exits_three_when_the_write_fails(
    cluster: MemoryCluster, start: Start
) -> None:
    cluster.fail("patch", ApiError(404, 'HTTP 404: jobs "job-a" not found'))
    run = await start()
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.WRITE_FAILED


# --- start-up --------------------------------------------------------------------------------


async def test_a_missing_job_exits_three_at_once(cluster: MemoryCluster, start: Start) -> None:
    cluster.fail("get_job", ApiError(404, 'HTTP 404: jobs "job-a" not found'))
    run = await start()
    assert await run.finish() is ExitCode.WRITE_FAILED
    assert cluster.patches == []
    assert "not found" in run.last_word()["error"]


async def test_start_up_rides_out_an_outage(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    cluster.down = True
    run = await start()
    await clock.advance(20)
    cluster.down = False
    run.write(SUCCESS)
    assert await run.finish(within=8) is ExitCode.RESULT


async def test_named_adapter_missing_is_a_configuration_error(start: Start) -> None:
    run = await start(adapter_container_name="validator")
    assert await run.finish() is ExitCode.CONFIG_INVALID
    written = run.written()
    assert written is not None
    assert written[1] == "ReporterConfigInvalid"
    assert written[2].startswith(
        'invalid configuration: ADAPTER_CONTAINER_NAME="validator": no such container'
    )
    assert "adapter, status-reporter" in written[2]


@pytest.mark.memcluster(pod=make_pod(("status-reporter",), (Container(name="setup"),)))
async def test_an_adapter_named_as_an_init_container_is_found(
    cluster: MemoryCluster, start: Start
) -> None:
    run = await start(adapter_container_name="setup")
    cluster.set_container("setup", terminated(exit_code=5), init=True)
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM
    written = run.written()
    assert written is not None
    assert written[2].startswith("Adapter container exited with code 5")


@pytest.mark.memcluster(pod=make_pod(("status-reporter", "validator")))
async def test_auto_detection_skips_the_reporter(cluster: MemoryCluster, start: Start) -> None:
    run = await start()
    cluster.set_container("validator", terminated(exit_code=4))
    await run.finish()
    written = run.written()
    assert written is not None
    assert written[2].startswith("Adapter container exited with code 4")


@pytest.mark.memcluster(pod=make_pod(("status-reporter",)))
async def test_no_adapter_candidate(start: Start) -> None:
    run = await start()
    assert await run.finish() is ExitCode.CONFIG_INVALID
    written = run.written()
    assert written is not None
    assert "no container besides REPORTER_CONTAINER_NAME=status-reporter" in written[2]


async def test_a_missing_pod_is_a_configuration_error(cluster: MemoryCluster, start: Start) -> None:
    cluster.pod = None
    run = await start()
    assert await run.finish(within=0.1) is ExitCode.CONFIG_INVALID
    assert run.last_word()["reason"] == "ReporterConfigInvalid"
    # The watch's initial events told it: no GET.
    assert cluster.calls["get_pod"] == 0


@pytest.mark.parametrize("watch", ["refused", "no_initial_events"])
async def test_a_missing_pod_is_a_configuration_error_however_it_is_read(
    cluster: MemoryCluster, start: Start, watch: str
) -> None:
    cluster.pod = None
    if watch == "refused":
        cluster.rules = REFERENCE_RULES
    else:
        cluster.no_initial_events = True
    run = await start()
    # A plain watch says nothing of a missing Pod: a GET asks after FIRST_STATE_SECONDS.
    assert await run.finish(within=FIRST_STATE_SECONDS + 0.1) is ExitCode.CONFIG_INVALID
    assert cluster.calls["get_pod"] == 1
    assert cluster.calls["watch"] == (0 if watch == "refused" else 2)


@pytest.mark.memcluster(pod=make_pod(("adapter", "sidecar")))
async def test_warns_when_the_reporter_container_is_not_in_the_pod(
    start: Start, logged: Logged
) -> None:
    run = await start()
    run.write(SUCCESS)
    await run.finish(within=2)
    assert "REPORTER_CONTAINER_NAME is not a container of this Pod" in logged()


async def test_warns_about_job_controller_condition_types(start: Start, logged: Logged) -> None:
    run = await start(condition_type="Complete")
    run.write(SUCCESS)
    await run.finish(within=2)
    out = logged()
    assert "CONDITION_TYPE is a condition the Job controller itself manages" in out


async def test_without_job_name_the_pods_owning_job_is_reported_on(
    start: Start, logged: Logged
) -> None:
    run = await start(job_name="")
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.RESULT
    assert run.written() == ("True", "ValidationPassed", "all good")
    out = logged()
    assert "reporting on the Job that owns this Pod job=job-a" in out
    # Every later line names the Job too, not the empty JOB_NAME.
    written = next(line for line in out.splitlines() if "condition written" in line)
    assert "job=job-a" in written, out


@pytest.mark.memcluster(
    pod=make_pod(
        owners=(
            OwnerReference(kind="ReplicaSet", name="rs", api_version="apps/v1", controller=True),
        )
    )
)
async def test_without_job_name_a_pod_no_job_owns_is_a_configuration_error(
    cluster: MemoryCluster, start: Start, logged: Logged
) -> None:
    run = await start(job_name="")
    assert await run.finish() is ExitCode.CONFIG_INVALID
    assert cluster.patches == []
    assert run.last_word()["reason"] == "ReporterConfigInvalid"
    assert run.last_word()["written"] is False
    assert (
        "invalid configuration: JOB_NAME=(unset): required: "
        "Pod pod-a is not owned by a Job to take the name from"
    ) in logged()


@pytest.mark.memcluster(
    pod=make_pod(
        owners=(OwnerReference(kind="Job", name="job-b", api_version="batch/v1", controller=True),)
    )
)
async def test_a_job_name_other_than_the_owner_is_kept_with_a_warning(
    start: Start, logged: Logged
) -> None:
    run = await start()
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.RESULT
    assert run.written() is not None
    out = logged()
    assert "JOB_NAME differs from the Job that owns this Pod; using JOB_NAME" in out
    assert "job_name=job-a owner=job-b" in out


# --- an API server unreachable from the start ---------------------------------------------

PASSED_WORD = {
    "type": "Available",
    "status": "True",
    "reason": "ValidationPassed",
    "message": "all good",
}


async def test_a_result_during_an_outage_from_the_start_decides_and_is_left_at_once(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    cluster.down = True
    run = await start(max_wait_time_seconds=30)
    await clock.advance(1)
    run.write(SUCCESS)
    await clock.advance(2)
    assert not run.done
    # Decided without the API, and left before any write could succeed.
    assert run.last_word() == {**PASSED_WORD, "written": False}
    # The write has max(60 s, MAX_WAIT_TIME_SECONDS) from the decision, start-up included.
    await clock.advance(55)
    assert not run.done
    code = await run.finish(within=6)
    assert code is ExitCode.WRITE_FAILED
    word = run.last_word()
    assert {k: v for k, v in word.items() if k != "error"} == {**PASSED_WORD, "written": False}
    assert 'get pods "pod-a" in namespace "ns-a"' in word["error"]
    assert "unreachable" in word["error"]


async def test_an_api_back_within_the_write_budget_gets_the_result_written(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    cluster.down = True
    run = await start(max_wait_time_seconds=30)
    await clock.advance(1)
    run.write(SUCCESS)
    # Back after MAX_WAIT_TIME_SECONDS, within the write's budget.
    await clock.advance(39)
    assert not run.done
    reviews = cluster.calls["review"]
    cluster.down = False
    assert await run.finish(within=6) is ExitCode.RESULT
    assert run.written() == ("True", "ValidationPassed", "all good")
    assert run.last_word() == {**PASSED_WORD, "written": True}
    # Start-up's checks ran before the write, the review answered.
    assert cluster.calls["review"] == reviews + 1
    assert len(cluster.patches) == 1


@pytest.mark.memcluster(rules=[r for r in PROJECT_RULES if r.resources != ["jobs/status"]])
async def test_a_start_up_check_failing_when_the_api_answers_leaves_the_result_and_names_it(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    cluster.down = True
    run = await start(max_wait_time_seconds=30)
    run.write(SUCCESS)
    await clock.advance(5)
    cluster.down = False
    assert await run.finish(within=6) is ExitCode.WRITE_FAILED
    assert cluster.patches == []
    word = run.last_word()
    assert {k: v for k, v in word.items() if k != "error"} == {**PASSED_WORD, "written": False}
    assert 'missing permission to patch jobs/status "job-a"' in word["error"]


async def test_a_missing_pod_found_after_an_early_result_is_a_configuration_error(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    cluster.down = True
    run = await start()
    run.write(SUCCESS)
    await clock.advance(3)
    cluster.pod = None
    cluster.down = False
    assert await run.finish(within=6) is ExitCode.CONFIG_INVALID
    word = run.last_word()
    assert word["reason"] == "ValidationPassed"
    assert word["written"] is False
    assert "POD_NAME" in word["error"]


@pytest.mark.memcluster(pod=make_pod(("adapter",), NATIVE))
async def test_a_native_sidecar_whose_pod_was_never_read_ends_with_the_stop(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    """The kubelet stops a native sidecar once the adapter has exited: the result is left
    and the stop ends the run within its bound, as it does when the Pod was read."""
    cluster.down = True
    run = await start(max_wait_time_seconds=30)
    run.write(SUCCESS)
    await clock.advance(3)
    assert not run.done
    stopped_at = clock.now()
    run.reporter.stop()
    assert await run.finish(within=STOP_EXIT_SECONDS) is ExitCode.WRITE_FAILED
    assert clock.now() - stopped_at <= STOP_EXIT_SECONDS
    assert run.last_word() == {**PASSED_WORD, "written": False}


async def test_an_outage_from_the_start_without_a_result_still_ends_at_the_wait(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    cluster.down = True
    run = await start(max_wait_time_seconds=30)
    await clock.advance(29)
    assert not run.done
    assert await run.finish(within=2) is ExitCode.WRITE_FAILED
    assert "cannot get pods" in run.last_word()["error"]


# --- the Job's own deadline ---------------------------------------------------------------


# The Job started 3 s before the reporter and ends after 25 s: the wait is 25 - 5 - 3.
@pytest.mark.memcluster(active_deadline_seconds=25, start_time=rfc3339(WALL_START - 3))
async def test_the_jobs_deadline_ends_the_wait_before_it(
    clock: FakeClock, start: Start, logged: Logged
) -> None:
    run = await start(max_wait_time_seconds=300)
    await clock.advance(16.9)
    assert not run.done
    assert await run.finish(within=0.1) is ExitCode.ADAPTER_PROBLEM
    assert run.written() == (
        "False",
        "AdapterTimeout",
        "Adapter did not produce results within 17s",
    )
    out = logged()
    assert "the Job's activeDeadlineSeconds ends first" in out
    assert "max_wait_time_seconds=300 active_deadline_seconds=25 wait_seconds=17" in out


@pytest.mark.memcluster(active_deadline_seconds=310, start_time=rfc3339(WALL_START))
async def test_a_job_deadline_later_than_the_wait_changes_nothing(
    clock: FakeClock, start: Start, logged: Logged
) -> None:
    run = await start(max_wait_time_seconds=300)
    await clock.advance(299.9)
    assert not run.done
    assert await run.finish(within=0.1) is ExitCode.ADAPTER_PROBLEM
    assert run.written() == (
        "False",
        "AdapterTimeout",
        "Adapter did not produce results within 5m0s",
    )
    assert "activeDeadlineSeconds" not in logged()


# --- clocks that differ -----------------------------------------------------------------
# The node's clock runs ``node_ahead`` seconds ahead of the API server's (behind when
# negative); the API server stamps the Job's and the Pod's times on its own.


@pytest.mark.parametrize("node_ahead", [-300, 0, 30, 120, 306, 86_400])
async def test_the_time_left_before_the_jobs_deadline_is_the_api_servers(
    clock: FakeClock, tmp_path: Path, node_ahead: int
) -> None:
    started = rfc3339(WALL_START - node_ahead)  # the Job controller's clock is the server's
    cluster = MemoryCluster(clock, active_deadline_seconds=300, start_time=started)
    cluster.server_skew = -node_ahead
    run = await Run(tmp_path, cluster, max_wait_time_seconds=300).start()
    # 300 s of activeDeadlineSeconds less the 5 s margin, whatever the clocks say.
    await clock.advance(293.5)
    assert not run.done
    assert await run.finish(within=2) is ExitCode.ADAPTER_PROBLEM
    assert run.written() == (
        "False",
        "AdapterTimeout",
        "Adapter did not produce results within 4m55s",
    )


@pytest.mark.parametrize("node_ahead", [-300, 0, 10, 120, 300])
async def test_a_crash_just_before_the_pods_deletion_is_the_crash_whatever_the_clocks(
    clock: FakeClock, cluster: MemoryCluster, start: Start, node_ahead: int
) -> None:
    cluster.server_skew = -node_ahead
    run = await start()
    await clock.advance(10.2)
    crashed = terminated(exit_code=1, reason="Error", finished_at=rfc3339(clock.wall()))
    cluster.set_container("adapter", crashed, notify=False)  # not posted yet
    await clock.advance(0.5)
    cluster.delete_pod(requested_at=rfc3339(clock.wall() - node_ahead))
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM
    assert run.written() == (
        "False",
        "AdapterExitedWithError",
        "Adapter container exited with code 1: Error",
    )


@pytest.mark.parametrize("node_ahead", [-300, 0, 10, 120, 300])
async def test_an_adapter_the_deletion_killed_is_an_interruption_whatever_the_clocks(
    clock: FakeClock, cluster: MemoryCluster, start: Start, node_ahead: int
) -> None:
    cluster.server_skew = -node_ahead
    run = await start()
    await clock.advance(10.2)
    deleted = rfc3339(clock.wall() - node_ahead)
    await clock.advance(1.5)
    killed = terminated(exit_code=143, reason="Error", finished_at=rfc3339(clock.wall()))
    cluster.set_container("adapter", killed, notify=False)
    cluster.delete_pod(requested_at=deleted)
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM
    assert run.written() is not None
    assert run.written()[1] == "ReporterInterrupted"  # type: ignore[index]


# --- the Event ------------------------------------------------------------------------------


async def test_the_outcome_is_recorded_as_an_event_on_the_job(
    cluster: MemoryCluster, start: Start
) -> None:
    run = await start()
    run.adapter(terminated(exit_code=2, reason="Error"))
    assert await run.finish(within=1) is ExitCode.ADAPTER_PROBLEM
    (event,) = run.cluster.events
    assert event["type"] == "Warning"
    assert event["reason"] == "AdapterExitedWithError"
    assert event["note"] == "Adapter container exited with code 2: Error"
    assert event["action"] == "ReportResult"
    assert event["reportingController"] == "status-reporter"
    assert event["reportingInstance"] == "pod-a"
    assert event["regarding"] == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "job-a",
        "namespace": "ns-a",
        "uid": "uid-job-a",
    }


async def test_a_success_is_a_normal_event(cluster: MemoryCluster, start: Start) -> None:
    run = await start()
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.RESULT
    (event,) = run.cluster.events
    assert (event["type"], event["reason"], event["note"]) == (
        "Normal",
        "ValidationPassed",
        "all good",
    )


@pytest.mark.memcluster(rules=REFERENCE_RULES)
async def test_without_the_permission_no_event_is_sent_and_one_debug_line_says_so(
    cluster: MemoryCluster, start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(LogLevel.DEBUG)
    run = await start()
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.RESULT
    assert cluster.calls["event"] == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "events" in line]
    assert len(lines) == 1
    assert " DEBUG " in lines[0]


@pytest.mark.memcluster(autojump=True)
async def test_a_failing_event_changes_nothing_and_is_bounded(
    cluster: MemoryCluster, start: Start, new_run: NewRun
) -> None:
    cluster.fail("event", *[ApiError(503, "busy")] * 100)
    run = new_run()
    run.write(SUCCESS)
    await run.start()
    assert await run.finish() is ExitCode.RESULT
    assert run.written() is not None
    assert 1 < cluster.calls["event"] < 100
    assert run.last_word()["written"] is True


async def test_a_forbidden_event_is_not_retried(cluster: MemoryCluster, start: Start) -> None:
    cluster.review_incomplete = True  # the review cannot tell: the call itself does
    cluster.rules = [r for r in cluster.rules if "events" not in r.resources]
    run = await start()
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.RESULT
    assert cluster.calls["event"] == 1
    assert cluster.events == []


# --- monitors ----------------------------------------------------------------------------------


async def test_results_directory_created_late_is_watched(clock: FakeClock, start: Start) -> None:
    run = await start(poll_interval_seconds=30, max_wait_time_seconds=300)
    await run.clock.advance(30)  # the watcher finds no directory and checks again later
    run.write(SUCCESS)
    assert await run.finish(within=30) is ExitCode.RESULT


async def test_a_broken_watch_polls_the_pod_until_it_is_back(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    run = await start(container_status_interval_seconds=10)
    reads = run.cluster.calls["get_pod"]
    run.cluster.fail("watch", *[Unreachable("refused")] * 50)
    run.cluster.break_watches()
    await settle()
    # The Pod is read at once, not at the next watch attempt.
    assert run.cluster.calls["get_pod"] == reads + 1
    await run.clock.advance(10)
    assert run.cluster.calls["get_pod"] == reads + 2
    # Re-watch attempts back off, but never more than 5 s apart.
    attempts = run.cluster.calls["watch"]
    await run.clock.advance(30)
    assert run.cluster.calls["watch"] - attempts >= 6
    run.adapter(terminated(exit_code=1))
    assert await run.finish(within=10) is ExitCode.ADAPTER_PROBLEM


async def test_a_watch_the_server_ends_at_once_is_a_failed_watch(
    clock: FakeClock, cluster: MemoryCluster, start: Start, logged: Logged
) -> None:
    """200 and an empty body, every time: backoff, the Pod polled meanwhile, one warning,
    and at most one watch request per second on average."""
    run = await start(container_status_interval_seconds=10)
    run.cluster.empty_watches = True
    run.cluster.break_watches()
    await run.clock.advance(60)
    assert run.cluster.calls["watch"] <= 60
    assert run.cluster.calls["get_pod"] >= 1 + 6  # start-up, then polled meanwhile
    run.adapter(terminated(exit_code=1))
    assert await run.finish(within=20) is ExitCode.ADAPTER_PROBLEM
    out = logged()
    assert out.count("Pod watch broke") == 1
    print(f"watch requests in 60 s: {run.cluster.calls['watch']}")


async def test_a_silent_watch_is_given_up_by_the_deadline(
    cluster: MemoryCluster, start: Start, tmp_path: Path
) -> None:
    """However long the bookmarks may take, the watch waits no longer than the time
    left before the deadline (then the Pod is read anyway)."""
    run = await start(max_wait_time_seconds=30)
    assert run.cluster.watch_timeouts[0] == pytest.approx(31.0, abs=0.5)
    run.write(SUCCESS)
    await run.finish(within=2)
    (tmp_path / "long").mkdir()
    long_run = await Run(tmp_path / "long", max_wait_time_seconds=300).start()
    assert long_run.cluster.watch_timeouts[0] == 75.0
    long_run.write(SUCCESS)
    await long_run.finish(within=2)


async def test_without_bookmarks_a_silent_watch_is_renewed_quietly(
    clock: FakeClock, cluster: MemoryCluster, start: Start, logged: Logged
) -> None:
    """An API server with its watch cache off sends no bookmarks: each watch goes silent
    for the bound and is renewed from the last state seen (one watch request per 75 s),
    with no poll and no warning."""
    cluster.silent_watches = True
    run = await start(max_wait_time_seconds=300, container_status_interval_seconds=10)
    reads = cluster.calls["get_pod"]
    await clock.advance(230)
    assert cluster.calls["watch"] == 4  # opened, renewed at 75, 150 and 225 s
    assert cluster.calls["get_pod"] == reads
    run.adapter(terminated(exit_code=1))  # seen on the renewed watch
    assert await run.finish(within=1) is ExitCode.ADAPTER_PROBLEM
    out = logged()
    assert "Pod watch broke" not in out
    assert out.count("no watch bookmarks from the API server so far") == 1


async def test_a_silent_watch_after_bookmarks_is_a_broken_one(
    clock: FakeClock, cluster: MemoryCluster, start: Start, logged: Logged
) -> None:
    cluster.silent_watches = True
    run = await start(max_wait_time_seconds=300, container_status_interval_seconds=10)
    assert cluster.pod is not None
    version = cluster.pod.metadata.resource_version
    cluster.send_watch_event(
        PodEvent("BOOKMARK", pod=Pod(metadata=ObjectMeta(resource_version=version)))
    )
    reads = cluster.calls["get_pod"]
    await clock.advance(76)
    assert cluster.calls["get_pod"] > reads  # polled while the watch is down
    assert "Pod watch broke" in logged()
    run.adapter(terminated(exit_code=1))
    assert await run.finish(within=10) is ExitCode.ADAPTER_PROBLEM


async def test_a_watch_that_comes_back_stops_the_polling(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    run = await start(container_status_interval_seconds=10)
    run.cluster.break_watches()
    await run.clock.advance(6)  # the watch is back within the 5 s backoff cap
    reads = run.cluster.calls["get_pod"]
    await run.clock.advance(30)
    assert run.cluster.calls["get_pod"] == reads
    run.adapter(terminated(exit_code=1))
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM


async def test_a_watch_that_is_too_old_starts_again_from_the_current_state(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    run = await start(container_status_interval_seconds=10)
    await run.clock.advance(2)
    run.cluster.break_watches()  # renewed from the version seen
    await run.clock.advance(1)
    assert run.cluster.watch_versions[1] != ""
    await run.clock.advance(2)
    run.cluster.fail("get_pod", Unreachable("refused"))  # no fresh version from a read either
    run.cluster.send_watch_event(PodEvent("ERROR", error=Status(code=410, message="too old")))
    await run.clock.advance(1)
    assert run.cluster.watch_versions[2] == ""  # 410 Gone: never resume from the old version
    run.adapter(terminated(exit_code=1))
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_watch_falls_back_to_polling_for_good(
    clock: FakeClock, cluster: MemoryCluster, start: Start, status: int
) -> None:
    run = await start(container_status_interval_seconds=5)
    run.cluster.fail("watch", ApiError(status, f"HTTP {status}: no"))
    run.cluster.break_watches()
    await run.clock.advance(1)
    reads = run.cluster.calls["get_pod"]
    watches = run.cluster.calls["watch"]
    await run.clock.advance(30)
    assert run.cluster.calls["get_pod"] == reads + 6
    assert run.cluster.calls["watch"] == watches


async def test_a_forbidden_watch_falls_back_to_polling(
    clock: FakeClock, cluster: MemoryCluster, start: Start
) -> None:
    run = await start(container_status_interval_seconds=5)
    run.cluster.fail("watch", ApiError(403, "HTTP 403: forbidden"))
    run.cluster.break_watches()
    await run.clock.advance(1)
    reads = run.cluster.calls["get_pod"]
    await run.clock.advance(10)
    assert run.cluster.calls["get_pod"] == reads + 2


async def test_a_failing_monitor_is_logged_at_once_and_replaced_by_polling(
    cluster: MemoryCluster, start: Start, logged: Logged
) -> None:
    run = await start(container_status_interval_seconds=5)
    run.cluster.break_watches(RuntimeError("decoder bug"))
    await settle()
    assert "monitor failed" in logged()
    run.adapter(terminated(exit_code=9))
    assert await run.finish(within=5) is ExitCode.ADAPTER_PROBLEM


async def test_every_monitor_task_is_cancelled_on_exit(start: Start) -> None:
    before = asyncio.all_tasks()
    run = await start()
    run.write(SUCCESS)
    await run.finish(within=2)
    await settle()
    assert asyncio.all_tasks() - before == set()


# --- what is logged, and when ------------------------------------------------------------


def _json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


async def test_details_are_logged_after_the_write(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(fmt=LogFormat.JSON)
    run = await start()
    run.write({**SUCCESS, "details": {"checks": [1, 2]}})
    await run.finish(within=2)
    messages = [entry["message"] for entry in _json_lines(capsys.readouterr().out)]
    assert messages.index("condition written") < messages.index("adapter result details")


async def test_small_details_are_logged_as_json(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(fmt=LogFormat.JSON)
    run = await start()
    run.write({**SUCCESS, "details": {"checks": [1, 2]}})
    await run.finish(within=2)
    entry = next(e for e in _json_lines(capsys.readouterr().out) if "details" in e)
    assert (entry["details"], entry["details_truncated"]) == ({"checks": [1, 2]}, False)


async def test_large_details_are_logged_truncated_below_64_kib(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(fmt=LogFormat.JSON)
    run = await start()
    run.write({**SUCCESS, "details": {"log": "x" * 500_000}})
    assert await run.finish(within=2) is ExitCode.RESULT
    out = capsys.readouterr().out
    entry = next(e for e in _json_lines(out) if "details" in e)
    assert entry["details_truncated"] is True
    assert entry["details"].startswith('{"log": "xxx')
    assert max(len(line.encode()) for line in out.splitlines()) < 64 * 1024


async def test_a_lone_surrogate_in_details_does_not_stop_the_write(
    start: Start, logged: Logged
) -> None:
    run = await start()
    run.write('{"status": "success", "reason": "Ok", "details": {"x": "\\ud800"}}')
    assert await run.finish(within=2) is ExitCode.RESULT
    assert run.written() == ("True", "Ok", "No message provided")
    assert "adapter result details" in logged()


@pytest.mark.memcluster(pod=make_pod(("adapter",), NATIVE))
async def test_a_native_sidecar_stopped_during_start_up_exits_zero(
    cluster: MemoryCluster, start: Start
) -> None:
    cluster.fail("get_job", *[Unreachable("refused")] * 3)
    run = await start()
    run.reporter.stop()  # before start-up has read the Pod
    assert await run.finish(within=STOP_EXIT_SECONDS) is ExitCode.RESULT
    assert run.written() is not None
    assert run.written()[1] == "ReporterInterrupted"  # type: ignore[index]


async def test_after_an_unexpected_error_the_decided_condition_is_still_left(
    cluster: MemoryCluster, start: Start
) -> None:
    run = await start()
    run.cluster.fail("patch", RuntimeError("a bug"))
    run.write(SUCCESS)
    with pytest.raises(RuntimeError):
        await run.finish(within=2)
    run.reporter.report_failure("internal error: RuntimeError('a bug')")
    assert run.last_word()["reason"] == "ValidationPassed"
    assert run.last_word()["written"] is False


@pytest.mark.parametrize("stop_during_start_up", [False, True])
@pytest.mark.parametrize("job_name", ["job-a", ""])
async def test_the_condition_writer_is_built_once(
    new_run: NewRun,
    cluster: MemoryCluster,
    monkeypatch: pytest.MonkeyPatch,
    job_name: str,
    stop_during_start_up: bool,
) -> None:
    """Once the Job is named (JOB_NAME, or the Pod's owner), never again: not for the
    Job start-up read, nor after a stop, nor for the write."""
    built: list[str] = []
    build = ConditionWriter.__init__

    def counted(writer: ConditionWriter, api: Any, ops: Operations, *args: Any, **kw: Any) -> None:
        built.append(ops.job)
        build(writer, api, ops, *args, **kw)

    monkeypatch.setattr(ConditionWriter, "__init__", counted)
    if stop_during_start_up:
        cluster.fail("get_job", *[Unreachable("refused")] * 3)
    run = new_run(job_name=job_name)
    run.write(SUCCESS)
    await run.start()
    if stop_during_start_up:
        run.reporter.stop()
    await run.finish(within=STOP_EXIT_SECONDS)
    assert run.written() is not None
    assert built == ["job-a"]
