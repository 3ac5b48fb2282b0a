"""SPEC §4 end to end: every row of the decision table against a real API server,
in both monitor modes, reading the condition back from the Job."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from tests.harness.cluster import AdapterJob
from tests.harness.controlplane import ControlPlane
from tests.harness.reporter import ReporterRun
from tests.integration.helpers import FAILURE, SUCCESS, eventually, summary, verbs

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


def test_rule1_success(job: AdapterJob, reporter: Reporter, mode: dict[str, str]) -> None:
    run = report(job, reporter, mode)
    job.write_result(SUCCESS)
    assert run.wait() == 0, run.output
    condition = job.condition()
    assert summary(condition) == ("True", "ValidationPassed", "GCP environment validated")
    assert condition is not None
    assert condition["lastTransitionTime"].endswith("Z")


def test_rule2_failure_with_details(
    job: AdapterJob, reporter: Reporter, mode: dict[str, str]
) -> None:
    run = report(job, reporter, mode)
    job.write_result({**FAILURE, "details": {"missing": ["compute.instances.list"]}})
    assert run.wait() == 0, run.output
    assert summary(job.condition()) == ("False", "MissingPermissions", "SA lacks IAM roles")
    assert "compute.instances.list" in run.output  # details are logged...
    assert "compute.instances.list" not in str(job.job().to_dict())  # ...never copied to the Job


def test_rule3_oom_killed(job: AdapterJob, reporter: Reporter, mode: dict[str, str]) -> None:
    run = report(job, reporter, mode)
    job.terminated(137, "OOMKilled")
    assert run.wait() == 1, run.output
    assert summary(job.condition()) == (
        "False",
        "AdapterOOMKilled",
        "Adapter container was killed due to out of memory (OOMKilled)",
    )


def test_rule4_invalid_file_after_exit(
    job: AdapterJob, reporter: Reporter, mode: dict[str, str]
) -> None:
    run = report(job, reporter, mode)
    job.write_result('{"status": "SUCCESS"}')
    job.terminated(0, "Completed")
    assert run.wait() == 1, run.output
    assert summary(job.condition()) == (
        "False",
        "InvalidResultFormat",
        "Failed to parse adapter result: status: must be either 'success' or 'failure'"
        "; adapter exited with code 0",
    )


def test_rule4_invalid_file_settles_while_running(
    job: AdapterJob, reporter: Reporter, mode: dict[str, str]
) -> None:
    run = report(job, reporter, mode)
    job.write_result("{not json")
    assert run.wait(timeout=15) == 1, run.output
    condition = job.condition()
    assert condition is not None
    assert condition["reason"] == "InvalidResultFormat"
    assert condition["message"].startswith("Failed to parse adapter result: invalid JSON: ")
    assert "adapter exited" not in condition["message"]


def test_rule5_crash_with_termination_message(
    job: AdapterJob, reporter: Reporter, mode: dict[str, str]
) -> None:
    run = report(job, reporter, mode)
    job.terminated(3, "Error", "starting\npanic: credentials rejected\n")
    assert run.wait() == 1, run.output
    assert summary(job.condition()) == (
        "False",
        "AdapterExitedWithError",
        "Adapter container exited with code 3: Error: panic: credentials rejected",
    )


def test_rule6_exit_zero_without_result(
    job: AdapterJob, reporter: Reporter, mode: dict[str, str]
) -> None:
    run = report(job, reporter, mode)
    job.terminated(0, "Completed")
    assert run.wait() == 1, run.output
    assert summary(job.condition()) == (
        "False",
        "AdapterMissingResults",
        "Adapter container exited successfully (code 0) but did not produce a valid result file: "
        "Completed",
    )


def test_rule7_timeout(job: AdapterJob, reporter: Reporter, mode: dict[str, str]) -> None:
    started = time.monotonic()
    run = report(job, reporter, mode, MAX_WAIT_TIME_SECONDS="3")
    assert run.wait() == 1, run.output
    assert 3.0 <= time.monotonic() - started < 10
    assert summary(job.condition()) == (
        "False",
        "AdapterTimeout",
        "Adapter did not produce results within 3s",
    )


def test_rule7_timeout_names_the_waiting_reason(
    job: AdapterJob, reporter: Reporter, mode: dict[str, str]
) -> None:
    job.waiting("ImagePullBackOff", 'Back-off pulling image "example.com/adapter:1"')
    run = reporter(job, {**mode, "MAX_WAIT_TIME_SECONDS": "2", "POLL_INTERVAL_SECONDS": "1"})
    assert run.wait() == 1, run.output
    assert summary(job.condition()) == (
        "False",
        "AdapterTimeout",
        "Adapter did not produce results within 2s "
        '(adapter waiting: ImagePullBackOff: Back-off pulling image "example.com/adapter:1")',
    )


def test_rule8_interrupted(job: AdapterJob, reporter: Reporter, mode: dict[str, str]) -> None:
    run = report(job, reporter, mode)
    eventually(lambda: "monitoring adapter" in run.output)
    run.signal(signal.SIGTERM)
    assert run.wait() == 1, run.output
    assert summary(job.condition()) == (
        "False",
        "ReporterInterrupted",
        "Status reporter was stopped before the adapter produced a result",
    )


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
