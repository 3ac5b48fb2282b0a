"""The reporter under faults, on the real API server: outages, a frozen server, a hostile
network, stops in every phase, a deleted Pod, revoked credentials and concurrent writers.

Each case asserts the condition on the Job, the exit code, the termination message and
a time bound, and records what it measured (printed as a table at the end).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.resources.core_v1 import Pod, Secret

from tests.faults.conftest import Start, monitoring, record
from tests.harness.cluster import (
    REFERENCE_ROLE,
    AdapterJob,
    create_job,
    create_namespace,
    patch_job_condition,
    service_account_token,
)
from tests.harness.controlplane import ControlPlane
from tests.harness.faultproxy import FaultProxy
from tests.integration.helpers import SUCCESS, eventually, summary, verbs

pytestmark = pytest.mark.faults

# kube-apiserver keeps a token's authentication for 10 s: a revoked token works that long.
TOKEN_CACHE_SECONDS = 11
CRASH = ("False", "AdapterExitedWithError", "Adapter container exited with code 1: Error")


# --- the API server goes away, comes back, hangs -----------------------------------------


def test_outage_of_five_seconds_then_a_crash(
    job: AdapterJob, reporter: Start, plane: ControlPlane
) -> None:
    run = monitoring(reporter(job))
    plane.stop_apiserver()
    time.sleep(5)
    plane.start_apiserver()
    crashed = time.monotonic()
    job.terminated(1, "Error")
    assert run.wait(timeout=30) == 1, run.output
    outcome = record("API server down 5 s, then adapter exits 1", job, run, crashed)
    assert summary(job.condition()) == CRASH
    # Re-watching backs off by at most 5 s, and the Pod is polled meanwhile.
    assert outcome.seconds <= 8


def test_outage_of_seventy_five_seconds_after_the_result(
    job: AdapterJob, reporter: Start, plane: ControlPlane
) -> None:
    run = monitoring(reporter(job))
    plane.stop_apiserver()
    job.write_result(SUCCESS)
    time.sleep(75)
    assert run.running, run.output
    plane.start_apiserver()
    back = time.monotonic()
    assert run.wait(timeout=30) == 0, run.output
    outcome = record("API server down 75 s after the result", job, run, back)
    assert summary(job.condition()) == ("True", "ValidationPassed", "GCP environment validated")
    assert run.last_word()["written"] is True
    assert outcome.seconds <= 8


def test_frozen_api_server_during_the_write(
    job: AdapterJob, reporter: Start, plane: ControlPlane
) -> None:
    run = monitoring(reporter(job))
    plane.freeze_apiserver()
    job.write_result(SUCCESS)
    time.sleep(15)
    plane.thaw_apiserver()
    thawed = time.monotonic()
    assert run.wait(timeout=30) == 0, run.output
    outcome = record("API server frozen 15 s during the write", job, run, thawed)
    assert summary(job.condition()) == ("True", "ValidationPassed", "GCP environment validated")
    # Each attempt times out within 10 s; the next one starts after at most 5 s of backoff.
    assert outcome.seconds <= 16


# --- a hostile network --------------------------------------------------------------------


def test_latency_on_every_packet(job: AdapterJob, reporter: Start, proxy: FaultProxy) -> None:
    proxy.latency = 0.3
    run = monitoring(reporter(job, proxy=proxy))
    crashed = time.monotonic()
    job.terminated(1, "Error")
    assert run.wait(timeout=30) == 1, run.output
    outcome = record("300 ms latency per packet, adapter exits 1", job, run, crashed)
    assert summary(job.condition()) == CRASH
    assert outcome.seconds <= 5


def test_connections_reset_and_refused(job: AdapterJob, reporter: Start, proxy: FaultProxy) -> None:
    run = monitoring(reporter(job, proxy=proxy))
    proxy.mode = "refuse"
    proxy.reset_all()
    time.sleep(4)
    proxy.mode = "pass"
    crashed = time.monotonic()
    job.terminated(1, "Error")
    assert run.wait(timeout=30) == 1, run.output
    outcome = record("connections reset, then refused for 4 s; adapter exits 1", job, run, crashed)
    assert summary(job.condition()) == CRASH
    assert outcome.seconds <= 8
    assert "Pod watch broke; polling the Pod until it is back" in run.output


def test_a_half_open_watch_is_detected_and_the_pod_polled(
    job: AdapterJob, reporter: Start, proxy: FaultProxy
) -> None:
    # CONTAINER_STATUS_INTERVAL_SECONDS=3: a dead watch must be noticed within 6 s.
    run = monitoring(reporter(job, proxy=proxy))
    time.sleep(1)
    dropped = proxy.drop_existing_packets()
    assert dropped, "no established connection to drop"
    went_dead = time.monotonic()
    job.terminated(1, "Error")
    assert run.wait(timeout=60) == 1, run.output
    outcome = record("watch half-open (packets dropped), adapter exits 1", job, run, went_dead)
    assert summary(job.condition()) == CRASH
    # Twice the 3 s interval to notice, then a Pod read on a new connection.
    assert outcome.seconds <= 2 * 3 + 3


def test_a_black_hole_at_start_up_and_a_stop(
    job: AdapterJob, reporter: Start, proxy: FaultProxy
) -> None:
    proxy.mode = "blackhole"
    run = reporter(job, proxy=proxy)
    time.sleep(3)
    stopped = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.wait(timeout=30) == 3, run.output
    outcome = record("API black-holed at start-up, SIGTERM", job, run, stopped)
    assert outcome.seconds <= 10
    assert run.last_word()["reason"] == "ReporterInterrupted"
    assert run.last_word()["written"] is False
    assert "condition not recorded on the Job" in run.output


def test_api_down_while_monitoring_and_a_stop(
    job: AdapterJob, reporter: Start, proxy: FaultProxy
) -> None:
    run = monitoring(reporter(job, proxy=proxy))
    proxy.mode = "refuse"
    proxy.reset_all()
    time.sleep(3)
    stopped = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.wait(timeout=30) == 3, run.output
    outcome = record("API refusing while monitoring, SIGTERM", job, run, stopped)
    assert outcome.seconds <= 10
    assert run.last_word() == {
        "type": "Available",
        "status": "False",
        "reason": "ReporterInterrupted",
        "message": "Status reporter was stopped before the adapter produced a result",
        "written": False,
    }


def test_a_stop_during_write_retries_makes_one_last_attempt(
    job: AdapterJob, reporter: Start, proxy: FaultProxy
) -> None:
    run = monitoring(reporter(job, proxy=proxy))
    proxy.mode = "refuse"
    proxy.reset_all()
    job.write_result(SUCCESS)
    eventually(lambda: "API call failed, retrying" in run.output)
    time.sleep(5)
    proxy.mode = "pass"
    stopped = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.wait(timeout=30) == 0, run.output
    outcome = record("write retrying, SIGTERM, API back", job, run, stopped)
    assert outcome.seconds <= 10
    assert summary(job.condition()) == ("True", "ValidationPassed", "GCP environment validated")
    assert run.last_word()["written"] is True


def test_a_second_stop_exits_at_once(job: AdapterJob, reporter: Start, proxy: FaultProxy) -> None:
    run = monitoring(reporter(job, proxy=proxy))
    proxy.mode = "refuse"
    proxy.reset_all()
    job.write_result(SUCCESS)
    eventually(lambda: "API call failed, retrying" in run.output)
    run.signal(signal.SIGTERM)
    time.sleep(0.5)
    second = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.wait(timeout=10) == 3, run.output
    outcome = record("write retrying, SIGTERM twice", job, run, second)
    assert outcome.seconds <= 1
    assert run.last_word()["reason"] == "ValidationPassed"
    assert run.last_word()["written"] is False


# --- stops and the Pod's end -----------------------------------------------------------------


def test_a_stop_fifty_milliseconds_after_exec(job: AdapterJob, reporter: Start) -> None:
    run = reporter(job)
    time.sleep(0.05)
    stopped = time.monotonic()
    run.signal(signal.SIGTERM)
    assert run.wait(timeout=30) == 1, run.output
    outcome = record("SIGTERM 50 ms after exec", job, run, stopped)
    assert job.condition() is not None
    assert job.condition()["reason"] == "ReporterInterrupted"  # type: ignore[index]
    assert outcome.seconds <= 10


def test_native_sidecar_stopped_before_the_adapter_state_is_posted(
    make_job: Callable[..., AdapterJob], reporter: Start
) -> None:
    # As a real kubelet does: SIGTERM to the sidecar first, the adapter's state 1 s later.
    job = make_job(native_sidecar=True)
    job.running()
    run = monitoring(reporter(job))
    finished = job_time_now()
    stopped = time.monotonic()
    run.signal(signal.SIGTERM)
    time.sleep(1)
    job.set_adapter({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": finished}})
    assert run.wait(timeout=30) == 0, run.output
    outcome = record("native sidecar: SIGTERM, terminated state 1 s later", job, run, stopped)
    assert summary(job.condition()) == CRASH
    assert outcome.seconds <= 6


def test_the_pod_deleted_while_monitoring(job: AdapterJob, reporter: Start, admin: Client) -> None:
    run = monitoring(reporter(job))
    deleted = time.monotonic()
    admin.delete(Pod, job.pod, namespace=job.namespace, grace_period=0)
    assert run.wait(timeout=30) == 1, run.output
    outcome = record("Pod deleted while monitoring", job, run, deleted)
    assert job.condition()["reason"] == "ReporterInterrupted"  # type: ignore[index]
    assert outcome.seconds <= 6
    assert "the Pod was deleted" in run.output


# --- credentials and concurrent writers --------------------------------------------------------


def test_a_revoked_token_is_read_again_from_its_file(
    job: AdapterJob, reporter: Start, admin: Client, plane: ControlPlane, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(service_account_token(admin, job.namespace, bound_secret="first"))
    run = monitoring(reporter(job, token_file=token_file))
    token_file.write_text(service_account_token(admin, job.namespace, bound_secret="second"))
    admin.delete(Secret, "first", namespace=job.namespace)  # revokes the first token
    time.sleep(TOKEN_CACHE_SECONDS)
    written = time.monotonic()
    job.write_result(SUCCESS)
    assert run.wait(timeout=30) == 0, run.output
    record("token revoked and rotated in its file", job, run, written)
    assert summary(job.condition()) == ("True", "ValidationPassed", "GCP environment validated")
    # The audit log names no user for the refused attempt; the retry is the one patch.
    assert [v for v in verbs(plane, job) if v.startswith("patch")] == ["patch jobs/status 200"]
    assert any(
        e.get("responseStatus", {}).get("code") == 401 and e.get("verb") == "patch"
        for e in plane.audit_events()
    )


def test_a_token_file_gone_at_a_401_is_a_clear_error(
    job: AdapterJob, reporter: Start, admin: Client, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(service_account_token(admin, job.namespace, bound_secret="only"))
    run = monitoring(reporter(job, token_file=token_file))
    token_file.unlink()
    admin.delete(Secret, "only", namespace=job.namespace)
    time.sleep(TOKEN_CACHE_SECONDS)
    written = time.monotonic()
    job.write_result(SUCCESS)
    assert run.wait(timeout=30) == 3, run.output
    record("token revoked, token file gone", job, run, written)
    assert "internal error" not in run.output
    assert "HTTP 401: unauthorized, and the credentials: token file" in run.output
    assert run.last_word()["written"] is False


def test_sixteen_writers_on_the_job_status(
    job: AdapterJob, reporter: Start, admin: Client, plane: ControlPlane
) -> None:
    stop = threading.Event()

    def bump(kind: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            condition = {"type": kind, "status": "True", "reason": "Writer", "message": str(n)}
            patch_job_condition(admin, job, condition)

    writers = [threading.Thread(target=bump, args=(f"Busy{i}",)) for i in range(16)]
    run = monitoring(reporter(job))
    for writer in writers:
        writer.start()
    try:
        time.sleep(1)
        started = time.monotonic()
        job.write_result(SUCCESS)
        eventually(job.condition, timeout=10, every=0.01)
        outcome = record("16 concurrent writers of the Job's status", job, run, started)
        assert run.wait() == 0, run.output
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert outcome.seconds <= 1.0
    assert summary(job.condition()) == ("True", "ValidationPassed", "GCP environment validated")
    assert all(job.condition(f"Busy{i}") is not None for i in range(16))
    assert [v for v in verbs(plane, job) if v.startswith("patch")] == ["patch jobs/status 200"]


def job_time_now() -> str:
    """The wall clock as the kubelet writes times (RFC 3339, whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- what the reporter does at the deadline, and what a noisy adapter costs ----------------


def test_a_crash_between_polls_is_seen_at_the_deadline(
    admin: Client, plane: ControlPlane, tmp_path: Path, reporter: Start
) -> None:
    # The reference Role: no watch, the Pod is read every 10 s; the deadline comes first.
    namespace = create_namespace(admin, role=REFERENCE_ROLE)
    job = create_job(admin, namespace, tmp_path / "results")
    job.running()
    run = monitoring(
        reporter(job, {"MAX_WAIT_TIME_SECONDS": "5", "CONTAINER_STATUS_INTERVAL_SECONDS": "10"})
    )
    started = time.monotonic()
    time.sleep(0.5)
    job.terminated(1, "Error")
    assert run.wait(timeout=30) == 1, run.output
    outcome = record("reference Role, exit 1 at +0.5 s, MAX_WAIT 5", job, run, started)
    assert summary(job.condition()) == CRASH
    assert outcome.seconds <= 8


def test_an_adapter_rewriting_its_file_in_a_loop(job: AdapterJob, reporter: Start) -> None:
    run = monitoring(reporter(job, {"POLL_INTERVAL_SECONDS": "20", "LOG_LEVEL": "info"}))
    started = time.monotonic()
    count = 0
    while time.monotonic() - started < 10:
        count += 1
        job.write_result(f'{{"status": "working", "step": {count}}}')
        if count % 2:
            job.results_path.unlink()
        time.sleep(0.005)
    job.write_result(SUCCESS)
    assert run.wait(timeout=30) == 0, run.output
    record(f"adapter rewrote its file {count} times in 10 s", job, run, started)
    noisy = [line for line in run.output.splitlines() if "result file is not valid yet" in line]
    # One line, then at most one more per repeat window (10 s) for the same error.
    assert len(noisy) <= 3, len(noisy)
    cpu = float(run.output.rsplit("cpu_seconds=", 1)[1].split()[0])
    print(f"reporter CPU for {count} rewrites in 10 s: {cpu} s")
