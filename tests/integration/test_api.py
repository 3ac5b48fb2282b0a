"""Against the real API server: how the condition is written, RBAC, start-up checks,
lifecycle, and what the server accepts in a condition."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.checks import (
    FAILURE,
    SUCCESS,
    eventually,
    reporter_requests,
    stalled_pipe,
    summary,
    verbs,
)
from harness.cluster import (
    REFERENCE_ROLE,
    AdapterJob,
    create_job,
    create_namespace,
    now,
    patch_job_condition,
)
from harness.controlplane import ControlPlane
from harness.reporter import ReporterRun, start_reporter
from lightkube import Client
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Event as CoreEvent
from lightkube.types import CascadeType, PatchType

pytestmark = pytest.mark.integration

Reporter = Callable[..., ReporterRun]


# --- writing the condition ---------------------------------------------------------


def test_second_reporter_writes_nothing_and_keeps_transition_time(
    job: AdapterJob, reporter: Reporter, plane: ControlPlane
) -> None:
    job.running()
    job.write_result(SUCCESS)
    assert reporter(job).wait() == 0
    first = job.condition()
    time.sleep(1.1)  # a rewrite would carry a later timestamp
    second = reporter(job)
    assert second.wait() == 0, second.output
    assert "condition already recorded" in second.output
    assert job.condition() == first
    assert [v for v in verbs(plane, job) if v.startswith("patch")] == ["patch jobs/status 200"]


def test_same_status_new_reason_keeps_transition_time(job: AdapterJob, reporter: Reporter) -> None:
    job.running()
    job.write_result(FAILURE)
    assert reporter(job).wait() == 0
    first = job.condition()
    assert first is not None
    time.sleep(1.1)
    job.write_result({"status": "failure", "reason": "QuotaExceeded", "message": "no quota"})
    assert reporter(job).wait() == 0
    second = job.condition()
    assert summary(second) == ("False", "QuotaExceeded", "no quota")
    assert second is not None
    assert second["lastTransitionTime"] == first["lastTransitionTime"]
    time.sleep(1.1)
    job.write_result(SUCCESS)
    assert reporter(job).wait() == 0
    third = job.condition()
    assert third is not None
    assert third["status"] == "True"
    assert third["lastTransitionTime"] > first["lastTransitionTime"]


def test_other_conditions_are_preserved(job: AdapterJob, reporter: Reporter, admin: Client) -> None:
    other = {
        "type": "Validated",
        "status": "True",
        "reason": "Other",
        "message": "kept",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    patch_job_condition(admin, job, other)
    job.running()
    job.write_result(SUCCESS)
    assert reporter(job, {"CONDITION_TYPE": "Available"}).wait() == 0
    by_type = {c["type"]: c for c in job.conditions()}
    assert by_type["Validated"] == other
    assert summary(by_type["Available"]) == (
        "True",
        "ValidationPassed",
        "GCP environment validated",
    )


def test_event_driven_run_costs_five_requests(
    job: AdapterJob, reporter: Reporter, plane: ControlPlane
) -> None:
    job.running()
    run = reporter(job, {"MAX_WAIT_TIME_SECONDS": "60"})
    eventually(lambda: "monitoring adapter" in run.output)
    time.sleep(2)
    job.write_result(SUCCESS)
    assert run.wait() == 0
    # The review first (it tells that the Pod may be watched), then the watch, which
    # gives the Pod's state and goes on as the run's only watch: the Pod is never GET.
    assert verbs(plane, job) == [
        "create selfsubjectrulesreviews 201",
        "watch pods 200",
        "get jobs 200",
        "patch jobs/status 200",
        "create events 201",
    ]
    (watch,) = [e for e in reporter_requests(plane, job) if e["verb"] == "watch"]
    assert "sendInitialEvents=true" in watch["requestURI"]
    assert "resourceVersion=" not in watch["requestURI"].replace("resourceVersionMatch", "")


def _assert_pod_read_never_watched(requests: list[str], output: str) -> None:
    """Start-up was the review, a GET of the Pod and of the Job; the Pod was polled,
    never watched."""
    assert requests[:3] == [
        "create selfsubjectrulesreviews 201",
        "get pods 200",
        "get jobs 200",
    ]
    assert not any(v.startswith("watch") for v in requests)
    assert "pod_updates=poll" in output


def test_poll_mode_reads_the_pod_and_never_watches(
    job: AdapterJob, reporter: Reporter, plane: ControlPlane
) -> None:
    job.running()
    run = reporter(job, {"MONITOR_MODE": "poll", "CONTAINER_STATUS_INTERVAL_SECONDS": "1"})
    eventually(lambda: "monitoring adapter" in run.output)
    job.terminated(2, "Error")
    assert run.wait() == 1, run.output
    _assert_pod_read_never_watched(verbs(plane, job), run.output)


def test_a_watch_outlives_the_api_servers_bookmarks(
    make_job: Callable[..., AdapterJob], reporter: Reporter, plane: ControlPlane, admin: Client
) -> None:
    # About a minute into a watch the API server sends a bookmark, when the Pods' resource
    # version has moved on: other Pods change meanwhile. A long Job costs the same five
    # requests as a short one, and the watch is never dropped.
    job, other = make_job(), make_job()
    job.running()
    run = reporter(job, {"MAX_WAIT_TIME_SECONDS": "120"})
    eventually(lambda: "monitoring adapter" in run.output)
    for second in range(65):
        if second % 5 == 0:
            started = f"2026-11-26T10:{second // 60:02d}:{second % 60:02d}Z"
            other.set_adapter({"running": {"startedAt": started}})
        time.sleep(1)
    job.write_result(SUCCESS)
    assert run.wait() == 0, run.output
    assert "Pod watch broke" not in run.output
    assert len(verbs(plane, job)) == 5, verbs(plane, job)


# --- logging never delays the write ------------------------------------------------------


@pytest.mark.parametrize("stop", [False, True])
def test_a_stalled_stdout_never_delays_the_write_nor_the_exit_code(
    job: AdapterJob, plane: ControlPlane, tmp_path: Path, stop: bool
) -> None:
    """Nobody reads the reporter's stdout: the condition is written all the same, and
    the process exits with the decided code, also when a SIGTERM comes while its last
    lines wait for the pipe."""
    job.running()
    job.write_result(SUCCESS)
    read_end, write_end = stalled_pipe()
    try:
        started = time.monotonic()
        run = start_reporter(plane, job, tmp_path, stdout=write_end)
        eventually(job.condition, timeout=10)
        assert time.monotonic() - started < 5
        assert run.last_word()["written"] is True
        if stop:
            time.sleep(0.3)  # the decided run waits for its last lines to leave
            assert run.running
            run.signal(signal.SIGTERM)
        assert run.wait(timeout=10) == 0
    finally:
        os.close(read_end)
        os.close(write_end)


# --- the Event, the owner, the Job's deadline -------------------------------------------


def test_the_outcome_is_an_event_that_describe_job_shows(
    job: AdapterJob, reporter: Reporter, admin: Client
) -> None:
    job.running()
    run = reporter(job)
    eventually(lambda: "monitoring adapter" in run.output)
    job.terminated(2, "Error", "connecting...\nquota exceeded")
    assert run.wait() == 1, run.output
    uid = job.job().metadata.uid  # type: ignore[union-attr]
    # kubectl describe job lists the core/v1 view of the Events regarding the Job.
    selector: dict[str, Any] = {"involvedObject.kind": "Job", "involvedObject.name": job.name}
    (event,) = admin.list(CoreEvent, namespace=job.namespace, fields=selector)
    assert event.involvedObject.uid == uid
    assert (event.type, event.reason, event.message) == (
        "Warning",
        "AdapterExitedWithError",
        "Adapter container exited with code 2: Error: quota exceeded",
    )
    assert event.reportingComponent == "status-reporter"
    assert event.action == "ReportResult"
    assert event.reportingInstance == job.pod


def test_without_job_name_the_owning_job_is_found(
    job: AdapterJob, reporter: Reporter, plane: ControlPlane
) -> None:
    job.running()
    job.write_result(SUCCESS)
    run = reporter(job, {"JOB_NAME": ""})
    assert run.wait() == 0, run.output
    assert summary(job.condition()) == (
        "True",
        "ValidationPassed",
        "GCP environment validated",
    )
    assert f"reporting on the Job that owns this Pod job={job.name}" in run.output
    exiting = next(line for line in run.output.splitlines() if "exiting" in line)
    assert f"job={job.name}" in exiting, run.output


def test_the_jobs_own_deadline_ends_the_wait_five_seconds_before_it(
    job: AdapterJob, reporter: Reporter, admin: Client
) -> None:
    # As the Job controller would: the Job started now and may run 12 s in all.
    admin.patch(Job, job.name, {"spec": {"activeDeadlineSeconds": 12}}, namespace=job.namespace)
    admin.patch(
        Job.Status,
        job.name,
        {"status": {"startTime": now()}},
        namespace=job.namespace,
        patch_type=PatchType.MERGE,
    )
    job.running()
    started = time.monotonic()
    run = reporter(job, {"MAX_WAIT_TIME_SECONDS": "300"})
    assert run.wait() == 1, run.output
    elapsed = time.monotonic() - started
    condition = job.condition()
    assert condition is not None
    assert condition["reason"] == "AdapterTimeout"
    wait = int(condition["message"].removeprefix("Adapter did not produce results within ")[:-1])
    assert 5 <= wait <= 7, condition["message"]
    assert elapsed < 12 - 3, elapsed
    assert "the Job's activeDeadlineSeconds ends first" in run.output
    assert "max_wait_time_seconds=300 active_deadline_seconds=12" in run.output


# --- RBAC ------------------------------------------------------------------------


def test_reference_role_polls_the_pod(admin: Client, plane: ControlPlane, tmp_path: Path) -> None:
    namespace = create_namespace(admin, role=REFERENCE_ROLE)
    job = create_job(admin, namespace, tmp_path / "results")
    job.running()
    run = start_reporter(plane, job, tmp_path, {"CONTAINER_STATUS_INTERVAL_SECONDS": "1"})
    eventually(lambda: "monitoring adapter" in run.output)
    job.terminated(2, "Error")
    assert run.wait() == 1, run.output
    assert job.condition() is not None
    assert job.condition()["reason"] == "AdapterExitedWithError"  # type: ignore[index]
    requests = verbs(plane, job)
    # No watch permission: the review says so, and the Pod is read, never watched.
    _assert_pod_read_never_watched(requests, run.output)
    assert not any(v.startswith("create events") for v in requests)
    assert any(v == "get pods 200" for v in requests[3:])
    # Without the permission, one debug line says that no Event is recorded.
    assert run.output.count("the outcome is not recorded as an Event") == 1


def test_missing_patch_permission_fails_at_start(
    admin: Client, plane: ControlPlane, tmp_path: Path
) -> None:
    role = {
        **REFERENCE_ROLE,
        "rules": [
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]},
            {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get", "update"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        ],
    }
    namespace = create_namespace(admin, role=role)
    job = create_job(admin, namespace, tmp_path / "results")
    started = time.monotonic()
    run = start_reporter(plane, job, tmp_path)
    assert run.wait() == 3, run.output
    assert time.monotonic() - started < 5
    assert _logged(f'forbidden: missing permission to patch jobs/status "{job.name}"', run.output)
    assert _logged("needs 'patch' on 'jobs/status' (API group 'batch')", run.output)
    assert job.condition() is None


def test_forbidden_job_read_names_the_verb(
    admin: Client, plane: ControlPlane, tmp_path: Path
) -> None:
    role = {
        **REFERENCE_ROLE,
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    namespace = create_namespace(admin, role=role)
    job = create_job(admin, namespace, tmp_path / "results")
    run = start_reporter(plane, job, tmp_path)
    assert run.wait() == 3, run.output
    expected = f'forbidden: cannot get jobs "{job.name}" in namespace "{namespace}"'
    assert _logged(expected, run.output)


def _logged(text: str, output: str) -> bool:
    """Whether ``text`` is in the log, as a quoted text value holds it (JSON escapes)."""
    return json.dumps(text)[1:-1] in output


# --- fast start-up ------------------------------------------------------------------


def test_job_that_never_existed(job: AdapterJob, plane: ControlPlane, tmp_path: Path) -> None:
    started = time.monotonic()
    run = start_reporter(plane, job, tmp_path, {"JOB_NAME": "no-such-job"})
    assert run.wait() == 3, run.output
    assert time.monotonic() - started < 5
    assert _logged('not found: cannot get jobs "no-such-job"', run.output)


def test_deleted_job(job: AdapterJob, plane: ControlPlane, tmp_path: Path, admin: Client) -> None:
    # Background propagation: no orphan finalizer waiting for a garbage collector.
    admin.delete(Job, job.name, namespace=job.namespace, cascade=CascadeType.BACKGROUND)

    def gone() -> bool:
        names = {j.metadata.name for j in admin.list(Job, namespace=job.namespace) if j.metadata}
        return job.name not in names

    eventually(gone)
    run = start_reporter(plane, job, tmp_path)
    assert run.wait() == 3, run.output
    assert "not found" in run.output


def test_named_adapter_not_in_the_pod(job: AdapterJob, reporter: Reporter) -> None:
    started = time.monotonic()
    run = reporter(job, {"ADAPTER_CONTAINER_NAME": "dns-adapter"})
    assert run.wait() == 2, run.output
    assert time.monotonic() - started < 5
    condition = job.condition()
    assert condition is not None
    assert condition["reason"] == "ReporterConfigInvalid"
    assert condition["message"].startswith(
        'invalid configuration: ADAPTER_CONTAINER_NAME="dns-adapter": '
    )
    assert "(containers: adapter, status-reporter)" in condition["message"]


def test_wrong_pod_name_is_a_configuration_error(
    job: AdapterJob, reporter: Reporter, plane: ControlPlane
) -> None:
    started = time.monotonic()
    run = reporter(job, {"POD_NAME": "no-such-pod"})
    assert run.wait() == 2, run.output
    assert time.monotonic() - started < 5
    assert job.condition()["reason"] == "ReporterConfigInvalid"  # type: ignore[index]
    # The watch's initial events ended with no Pod: known without a GET.
    requests = verbs(plane, job)
    assert requests[:2] == ["create selfsubjectrulesreviews 201", "watch pods 200"]
    assert not any(v.startswith("get pods") for v in requests)


def test_invalid_configuration_is_recorded_on_the_job(job: AdapterJob, reporter: Reporter) -> None:
    run = reporter(job, {"MAX_WAIT_TIME_SECONDS": "soon", "CONDITION_TYPE": "AdapterDone"})
    assert run.wait() == 2, run.output
    assert summary(job.condition("AdapterDone")) == (
        "False",
        "ReporterConfigInvalid",
        'invalid configuration: MAX_WAIT_TIME_SECONDS="soon": '
        "must be an integer greater than 0 and at most 604800 (7 days)",
    )


def test_named_adapter_is_watched(make_job: Callable[..., AdapterJob], reporter: Reporter) -> None:
    job = make_job(adapter="dns", extra_containers=("metrics",))
    job.set_container("metrics", {"terminated": {"exitCode": 9, "reason": "Error"}})
    run = reporter(job, {"ADAPTER_CONTAINER_NAME": "dns"})
    eventually(lambda: "monitoring adapter" in run.output)
    job.terminated(4, "Error")
    assert run.wait() == 1, run.output
    assert job.condition()["message"] == "Adapter container exited with code 4: Error"  # type: ignore[index]


# --- native sidecar ------------------------------------------------------------------


def test_native_sidecar_stays_until_sigterm(
    make_job: Callable[..., AdapterJob], reporter: Reporter
) -> None:
    job = make_job(native_sidecar=True)
    job.running()
    run = reporter(job)
    job.write_result(SUCCESS)
    eventually(job.condition)
    time.sleep(2)
    assert run.running, run.output
    run.signal(signal.SIGTERM)
    assert run.wait() == 0, run.output
    assert summary(job.condition()) == ("True", "ValidationPassed", "GCP environment validated")


def test_native_sidecar_adapter_problem_still_exits_zero_on_sigterm(
    make_job: Callable[..., AdapterJob], reporter: Reporter
) -> None:
    job = make_job(native_sidecar=True)
    job.running()
    run = reporter(job)
    job.terminated(1, "Error")
    eventually(job.condition)
    assert run.running
    run.signal(signal.SIGTERM)
    assert run.wait() == 0, run.output
    assert job.condition()["reason"] == "AdapterExitedWithError"  # type: ignore[index]


# --- what the API server accepts in a condition -----------------------------------------------


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        pytest.param("Reason With Spaces", "message", id="spaces"),
        pytest.param("Grüße✓Prüfung", "Überprüfung abgeschlossen ✓ 検証", id="unicode"),
        pytest.param("R" * 128, "M" * 1024, id="exact-limits"),
        pytest.param("é" * 64, "😀" * 256, id="multibyte-limits"),
        pytest.param("a:b/c.d-e_f", "line one\nline two\ttabbed", id="punctuation-newlines"),
    ],
)
def test_api_accepts_what_the_contract_allows(
    job: AdapterJob, reporter: Reporter, reason: str, message: str
) -> None:
    job.running()
    job.write_result({"status": "failure", "reason": reason, "message": message})
    run = reporter(job)
    assert run.wait() == 0, run.output
    assert summary(job.condition()) == ("False", reason, message)
