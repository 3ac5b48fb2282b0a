"""The engine end to end over in-memory edges: what gets decided, written and returned.

Time is a FakeClock moved by the test; the result file is a real file in a
temporary directory (watched with real inotify in auto mode).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod

from status_reporter import logs
from status_reporter.config import Config, LogFormat, MonitorMode
from status_reporter.contract import ResultState, read_result
from status_reporter.decision import Condition
from status_reporter.engine import ExitCode, Reporter
from status_reporter.kube import KubeError
from tests.unit.fakes import (
    FakeClock,
    FakeCluster,
    container_status,
    pod,
    running,
    settle,
    terminated,
)

SUCCESS = {"status": "success", "reason": "ValidationPassed", "message": "all good"}


class Run:
    """A reporter run as a task, with handles on its edges."""

    def __init__(self, tmp_path: Path, cluster: FakeCluster, **config: Any) -> None:
        self.path = tmp_path / "results" / "adapter-result.json"
        self.clock = FakeClock()
        self.cluster = cluster
        self.reads = 0
        self.config = Config(
            job_name="job-a",
            job_namespace="ns-a",
            pod_name="pod-a",
            results_path=str(self.path),
            **config,
        )
        self.reporter = Reporter(
            self.config, cluster, self.clock, logs.get_logger(), read=self._read
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

    async def finish(self, within: float = 0.0) -> ExitCode:
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


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster(pod(statuses=[running()]))


async def test_valid_result_is_written_and_exits_zero(tmp_path: Path, cluster: FakeCluster) -> None:
    run = await Run(tmp_path, cluster).start()
    assert not run.done
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.RESULT
    assert cluster.written == [Condition("True", "ValidationPassed", "all good")]
    assert cluster.pod_mode == "watch"


async def test_auto_mode_reacts_to_the_file_event_without_waiting_for_a_poll(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    (tmp_path / "results").mkdir()
    run = await Run(tmp_path, cluster).start()
    await asyncio.sleep(0.05)
    run.write({"status": "failure", "reason": "Denied", "message": "no"})
    # No clock movement: only the inotify event can wake the engine.
    assert await run.finish() is ExitCode.RESULT
    assert cluster.written == [Condition("False", "Denied", "no")]


async def test_failure_result_exits_zero_for_rule_two(tmp_path: Path, cluster: FakeCluster) -> None:
    run = await Run(tmp_path, cluster, monitor_mode=MonitorMode.POLL).start()
    run.write({"status": "failure", "reason": "Denied", "message": "no"})
    assert await run.finish(within=2) is ExitCode.RESULT


async def test_poll_mode_reads_on_the_reference_schedule(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    run = await Run(
        tmp_path, cluster, monitor_mode=MonitorMode.POLL, poll_interval_seconds=5
    ).start()
    assert run.reads == 1
    await run.clock.advance(4.9)
    assert run.reads == 1
    await run.clock.advance(0.1)
    assert run.reads == 2
    await run.clock.advance(10)
    assert run.reads == 4
    assert cluster.pod_mode == "poll every 10s"
    run.write(SUCCESS)
    assert not run.done
    assert await run.finish(within=5) is ExitCode.RESULT


async def test_reference_role_polls_the_pod(tmp_path: Path) -> None:
    cluster = FakeCluster(pod(statuses=[running()]), watch_pods=False)
    run = await Run(tmp_path, cluster, container_status_interval_seconds=7).start()
    assert cluster.pod_mode == "poll every 7s"
    run.reporter.stop()
    await run.finish()


async def test_crash_without_result(tmp_path: Path, cluster: FakeCluster) -> None:
    run = await Run(tmp_path, cluster).start()
    cluster.push(
        pod(statuses=[terminated(exit_code=2, reason="Error", message="boom\nfatal: bad")])
    )
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM
    assert cluster.written == [
        Condition(
            "False",
            "AdapterExitedWithError",
            "Adapter container exited with code 2: Error: fatal: bad",
        )
    ]


async def test_result_written_just_before_the_exit_wins(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    run = await Run(tmp_path, cluster, monitor_mode=MonitorMode.POLL).start()
    run.write(SUCCESS)  # no poll tick yet: only the termination makes the engine look again
    cluster.push(pod(statuses=[terminated(exit_code=1)]))
    assert await run.finish() is ExitCode.RESULT
    assert cluster.written == [Condition("True", "ValidationPassed", "all good")]


async def test_adapter_already_terminated_at_start(tmp_path: Path) -> None:
    cluster = FakeCluster(pod(statuses=[terminated(exit_code=0, reason="Completed")]))
    run = Run(tmp_path, cluster)
    run.write(SUCCESS)
    await run.start()
    assert await run.finish() is ExitCode.RESULT


async def test_oom_killed(tmp_path: Path, cluster: FakeCluster) -> None:
    run = await Run(tmp_path, cluster).start()
    cluster.push(pod(statuses=[terminated(exit_code=137, reason="OOMKilled")]))
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM
    assert cluster.written[0].reason == "AdapterOOMKilled"


async def test_timeout(tmp_path: Path, cluster: FakeCluster) -> None:
    run = await Run(tmp_path, cluster, max_wait_time_seconds=30).start()
    await run.clock.advance(29.9)
    assert not run.done
    assert await run.finish(within=0.1) is ExitCode.ADAPTER_PROBLEM
    assert cluster.written == [
        Condition("False", "AdapterTimeout", "Adapter did not produce results within 30s")
    ]


async def test_timeout_tells_why_the_adapter_never_started(tmp_path: Path) -> None:
    waiting = container_status(
        "adapter", {"waiting": {"reason": "ImagePullBackOff", "message": "no image"}}
    )
    cluster = FakeCluster(pod(statuses=[waiting]))
    run = await Run(tmp_path, cluster, max_wait_time_seconds=60).start()
    await run.finish(within=60)
    assert cluster.written[0].message == (
        "Adapter did not produce results within 1m0s (adapter waiting: ImagePullBackOff: no image)"
    )


async def test_two_step_write_is_not_reported_invalid_halfway(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    run = await Run(tmp_path, cluster, poll_interval_seconds=2).start()
    run.write('{"status": "success",')
    await run.clock.advance(1.5)
    run.write('{"status": "success", "reason": "Done"}')
    assert await run.finish(within=2) is ExitCode.RESULT
    assert cluster.written[0].reason == "Done"


async def test_invalid_file_is_reported_once_it_settles(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    run = await Run(
        tmp_path, cluster, monitor_mode=MonitorMode.POLL, poll_interval_seconds=2
    ).start()
    run.write('{"status": "done"}')
    await run.clock.advance(2)  # first seen at the 2 s poll
    await run.clock.advance(1.9)
    assert not run.done
    assert await run.finish(within=0.5) is ExitCode.ADAPTER_PROBLEM
    assert cluster.written == [
        Condition(
            "False",
            "InvalidResultFormat",
            "Failed to parse adapter result: status: must be either 'success' or 'failure'",
        )
    ]


async def test_invalid_file_after_exit_is_reported_at_once(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    run = await Run(tmp_path, cluster).start()
    run.write("not json")
    cluster.push(pod(statuses=[terminated(exit_code=0, reason="Completed")]))
    await run.finish()
    assert cluster.written[0].message.startswith("Failed to parse adapter result: invalid JSON: ")
    assert cluster.written[0].message.endswith("; adapter exited with code 0")


async def test_stop_before_a_result(tmp_path: Path, cluster: FakeCluster) -> None:
    run = await Run(tmp_path, cluster).start()
    run.reporter.stop()
    assert await run.finish() is ExitCode.ADAPTER_PROBLEM
    assert cluster.written[0].reason == "ReporterInterrupted"


async def test_stop_evaluates_the_latest_state_first(tmp_path: Path, cluster: FakeCluster) -> None:
    run = await Run(tmp_path, cluster, monitor_mode=MonitorMode.POLL).start()
    cluster.final_pod = Pod.from_dict(pod(statuses=[terminated(exit_code=0, reason="Completed")]))
    run.reporter.stop()
    await run.finish()
    assert cluster.written[0].reason == "AdapterMissingResults"
    # And a result present at the stop wins over everything.
    other = FakeCluster(pod(statuses=[running()]))
    run = await Run(tmp_path / "b", other, monitor_mode=MonitorMode.POLL).start()
    run.write(SUCCESS)
    run.reporter.stop()
    assert await run.finish() is ExitCode.RESULT


NATIVE = [{"name": "status-reporter", "image": "r", "restartPolicy": "Always"}]


async def test_native_sidecar_stays_until_stopped_then_exits_zero(tmp_path: Path) -> None:
    cluster = FakeCluster(pod(containers=["adapter"], init_containers=NATIVE, statuses=[running()]))
    run = await Run(tmp_path, cluster).start()
    cluster.push(
        pod(containers=["adapter"], init_containers=NATIVE, statuses=[terminated(exit_code=1)])
    )
    await run.clock.advance(60)
    assert len(cluster.written) == 1
    assert not run.done
    run.reporter.stop()
    assert await run.finish() is ExitCode.RESULT
    assert len(cluster.written) == 1


async def test_native_sidecar_exits_three_when_the_write_fails(tmp_path: Path) -> None:
    cluster = FakeCluster(
        pod(containers=["adapter"], init_containers=NATIVE), write_error=KubeError("forbidden", 403)
    )
    run = await Run(tmp_path, cluster).start()
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.WRITE_FAILED


async def test_classic_sidecar_exits_after_writing(tmp_path: Path, cluster: FakeCluster) -> None:
    run = await Run(tmp_path, cluster).start()
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.RESULT


async def test_write_failure_exits_three(tmp_path: Path) -> None:
    cluster = FakeCluster(pod(statuses=[running()]), write_error=KubeError("cannot patch", 500))
    run = await Run(tmp_path, cluster).start()
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.WRITE_FAILED


async def test_start_up_api_failure_exits_three(tmp_path: Path) -> None:
    cluster = FakeCluster(pod(), start_error=KubeError("not found: job", 404))
    run = await Run(tmp_path, cluster).start()
    assert await run.finish() is ExitCode.WRITE_FAILED
    assert cluster.written == []


async def test_named_adapter_missing_is_a_configuration_error(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    run = await Run(tmp_path, cluster, adapter_container_name="validator").start()
    assert await run.finish() is ExitCode.CONFIG_INVALID
    (line,) = cluster.config_errors
    assert line.startswith(
        'invalid configuration: ADAPTER_CONTAINER_NAME="validator": no such container'
    )
    assert "adapter, status-reporter" in line


async def test_auto_detection_skips_the_reporter(tmp_path: Path) -> None:
    cluster = FakeCluster(
        pod(containers=["status-reporter", "validator"], statuses=[running("validator")])
    )
    run = await Run(tmp_path, cluster).start()
    cluster.push(
        pod(containers=["status-reporter", "validator"], statuses=[terminated("validator", 4)])
    )
    await run.finish()
    assert cluster.written[0].message.startswith("Adapter container exited with code 4")


async def test_no_adapter_candidate(tmp_path: Path) -> None:
    cluster = FakeCluster(pod(containers=["status-reporter"]))
    run = await Run(tmp_path, cluster).start()
    assert await run.finish() is ExitCode.CONFIG_INVALID
    assert (
        "no container besides REPORTER_CONTAINER_NAME=status-reporter" in cluster.config_errors[0]
    )


async def test_results_directory_created_late_is_watched(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    run = await Run(tmp_path, cluster, poll_interval_seconds=2).start()
    await run.clock.advance(2)  # the watcher finds no directory and waits
    run.write(SUCCESS)
    assert await run.finish(within=2) is ExitCode.RESULT


async def test_every_monitor_task_is_cancelled_on_exit(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    before = asyncio.all_tasks()
    run = await Run(tmp_path, cluster).start()
    run.write(SUCCESS)
    await run.finish(within=2)
    await settle()
    assert asyncio.all_tasks() - before == set()


async def test_warns_about_job_controller_condition_types(
    tmp_path: Path, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure()
    run = await Run(tmp_path, cluster, condition_type="Complete").start()
    run.reporter.stop()
    await run.finish()
    assert (
        "CONDITION_TYPE is a condition the Job controller itself manages" in capsys.readouterr().out
    )


async def test_large_details_are_logged_truncated_below_64_kib(
    tmp_path: Path, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(fmt=LogFormat.JSON)
    try:
        run = await Run(tmp_path, cluster).start()
        run.write({**SUCCESS, "details": {"log": "x" * 500_000}})
        assert await run.finish(within=2) is ExitCode.RESULT
    finally:
        logs.configure()
    lines = capsys.readouterr().out.splitlines()
    entry = next(json.loads(line) for line in lines if '"adapter result details"' in line)
    assert entry["details_truncated"] is True
    assert entry["details"].startswith('{"log":"xxx')
    assert max(len(line.encode()) for line in lines) < 64 * 1024


async def test_small_details_are_logged_as_json(
    tmp_path: Path, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(fmt=LogFormat.JSON)
    try:
        run = await Run(tmp_path, cluster).start()
        run.write({**SUCCESS, "details": {"checks": [1, 2]}})
        await run.finish(within=2)
    finally:
        logs.configure()
    out = capsys.readouterr().out
    entry = next(
        json.loads(line) for line in out.splitlines() if '"adapter result details"' in line
    )
    assert (entry["details"], entry["details_truncated"]) == ({"checks": [1, 2]}, False)
