"""README "Decision table" end to end: every row against a real API server, in both
monitor modes, reading the condition back from the Job as a consumer would."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from harness.checks import FAILURE, SUCCESS, eventually, summary, verbs
from harness.cluster import AdapterJob
from harness.controlplane import ControlPlane
from harness.reporter import ReporterRun

pytestmark = pytest.mark.integration

Reporter = Callable[..., ReporterRun]
MODES = [
    pytest.param({"MONITOR_MODE": "auto"}, id="auto"),
    pytest.param({"MONITOR_MODE": "poll"}, id="poll"),
]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> dict[str, str]:
    env: dict[str, str] = request.param
    return env


def report(job: AdapterJob, reporter: Reporter, env: dict[str, str], **extra: str) -> ReporterRun:
    job.running()
    return reporter(job, {**env, "CONTAINER_STATUS_INTERVAL_SECONDS": "1", **extra})


@dataclass(frozen=True)
class Row:
    """One row of the README's decision table: what happens, and what lands on the Job."""

    number: str
    act: Callable[[AdapterJob, ReporterRun], None]
    status: str
    reason: str
    message: str
    exit_code: int
    env: dict[str, str] = field(default_factory=dict)
    before_start: Callable[[AdapterJob], None] | None = None
    message_is_prefix: bool = False


def _stop(_: AdapterJob, run: ReporterRun) -> None:
    eventually(lambda: "monitoring adapter" in run.output)
    run.signal(signal.SIGTERM)


def _nothing(_: AdapterJob, __: ReporterRun) -> None:
    return None


def _invalid_then_exit(job: AdapterJob, _: ReporterRun) -> None:
    job.write_result('{"status": "SUCCESS"}')
    job.terminated(0, "Completed")


ROWS = [
    Row("1", lambda job, _: job.write_result(SUCCESS),
        "True", "ValidationPassed", "GCP environment validated", 0),
    Row("2", lambda job, _: job.write_result({**FAILURE, "details": {"missing": ["x.list"]}}),
        "False", "MissingPermissions", "SA lacks IAM roles", 0),
    Row("3", lambda job, _: job.terminated(137, "OOMKilled"),
        "False", "AdapterOOMKilled",
        "Adapter container was killed due to out of memory (OOMKilled)", 1),
    Row("4-terminated", _invalid_then_exit,
        "False", "InvalidResultFormat",
        "Failed to parse adapter result: status: must be either 'success' or 'failure'"
        "; adapter exited with code 0", 1),
    Row("4-settled", lambda job, _: job.write_result("{not json"),
        "False", "InvalidResultFormat", "Failed to parse adapter result: invalid JSON: ", 1,
        message_is_prefix=True),
    Row("5", lambda job, _: job.terminated(3, "Error", "starting\npanic: credentials rejected\n"),
        "False", "AdapterExitedWithError",
        "Adapter container exited with code 3: Error: panic: credentials rejected", 1),
    Row("6", lambda job, _: job.terminated(0, "Completed"),
        "False", "AdapterMissingResults",
        "Adapter container exited successfully (code 0) but did not produce a valid result "
        "file: Completed", 1),
    Row("7", _nothing, "False", "AdapterTimeout", "Adapter did not produce results within 3s", 1,
        env={"MAX_WAIT_TIME_SECONDS": "3"}),
    Row("7-waiting", _nothing, "False", "AdapterTimeout",
        "Adapter did not produce results within 2s "
        '(adapter waiting: ImagePullBackOff: Back-off pulling image "example.com/adapter:1")', 1,
        env={"MAX_WAIT_TIME_SECONDS": "2"},
        before_start=lambda job: job.waiting(
            "ImagePullBackOff", 'Back-off pulling image "example.com/adapter:1"'
        )),
    Row("8", _stop, "False", "ReporterInterrupted",
        "Status reporter was stopped before the adapter produced a result", 1),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"row-{row.number}")
def test_decision_table_row(
    row: Row, job: AdapterJob, reporter: Reporter, mode: dict[str, str]
) -> None:
    env = {**mode, "CONTAINER_STATUS_INTERVAL_SECONDS": "1", "POLL_INTERVAL_SECONDS": "1"}
    if row.before_start is not None:
        row.before_start(job)
    else:
        job.running()
    run = reporter(job, {**env, **row.env})
    row.act(job, run)
    assert run.wait(timeout=20) == row.exit_code, run.output
    condition = job.condition()
    assert condition is not None, run.output
    assert (condition["status"], condition["reason"]) == (row.status, row.reason)
    if row.message_is_prefix:
        assert condition["message"].startswith(row.message)
    else:
        assert condition["message"] == row.message
    assert condition["lastTransitionTime"].endswith("Z")
    assert run.last_word()["reason"] == row.reason
    assert run.last_word()["written"] is True


def test_details_are_logged_and_never_copied_to_the_job(
    job: AdapterJob, reporter: Reporter
) -> None:
    run = report(job, reporter, {})
    job.write_result({**FAILURE, "details": {"missing": ["compute.instances.list"]}})
    assert run.wait() == 0, run.output
    assert "compute.instances.list" in run.output
    assert "compute.instances.list" not in str(job.job().to_dict())


def test_sigterm_evaluates_once_more_before_rule8(
    job: AdapterJob, reporter: Reporter, mode: dict[str, str]
) -> None:
    run = report(
        job, reporter, {**mode, "POLL_INTERVAL_SECONDS": "20", "MAX_WAIT_TIME_SECONDS": "60"}
    )
    eventually(lambda: "monitoring adapter" in run.output)
    if mode["MONITOR_MODE"] == "poll":
        job.write_result(SUCCESS)  # no poll before the signal: only the final evaluation sees it
    else:
        job.terminated(2, "Error")
    run.signal(signal.SIGINT)
    code = run.wait()
    condition = job.condition()
    assert condition is not None
    if mode["MONITOR_MODE"] == "poll":
        assert (code, condition["reason"]) == (0, "ValidationPassed"), run.output
    else:
        assert (code, condition["reason"]) == (1, "AdapterExitedWithError"), run.output


def test_valid_result_wins_over_a_crash(
    job: AdapterJob, reporter: Reporter, mode: dict[str, str]
) -> None:
    job.terminated(1, "Error")
    job.write_result(SUCCESS)
    run = reporter(job, mode)
    assert run.wait() == 0, run.output
    assert summary(job.condition()) == ("True", "ValidationPassed", "GCP environment validated")


def test_result_written_just_before_the_crash_wins(
    job: AdapterJob, reporter: Reporter, mode: dict[str, str]
) -> None:
    run = report(job, reporter, {**mode, "POLL_INTERVAL_SECONDS": "5"})
    eventually(lambda: "monitoring adapter" in run.output)
    job.write_result(FAILURE)
    job.terminated(1, "Error")
    assert run.wait() == 0, run.output
    assert summary(job.condition()) == ("False", "MissingPermissions", "SA lacks IAM roles")


def test_result_in_two_steps_is_never_reported_invalid(
    job: AdapterJob, reporter: Reporter, mode: dict[str, str], plane: ControlPlane
) -> None:
    run = report(job, reporter, {**mode, "POLL_INTERVAL_SECONDS": "3"})
    eventually(lambda: "monitoring adapter" in run.output)
    job.write_result('{"status": "success",')
    time.sleep(1.5)
    job.append_result(' "reason": "TwoSteps", "message": "written in two steps"}')
    assert run.wait() == 0, run.output
    assert summary(job.condition()) == ("True", "TwoSteps", "written in two steps")
    assert [v for v in verbs(plane, job) if v.startswith("patch")] == ["patch jobs/status 200"]


def test_atomic_rename_is_seen(job: AdapterJob, reporter: Reporter, mode: dict[str, str]) -> None:
    run = report(job, reporter, mode)
    job.write_result_atomically(SUCCESS)
    assert run.wait() == 0, run.output
    assert job.condition() is not None
