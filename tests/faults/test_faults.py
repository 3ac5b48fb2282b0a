"""The reporter under faults, on the real API server: outages, a frozen server, a hostile
network (a hung proxy among it), stops in every phase (one that also ends the adapter), a
deleted Pod, revoked credentials, concurrent writers (two reporters on one Job), and
adapters that truncate or regrow their file in a loop.

Each case asserts the condition on the Job, the exit code, the termination message and
a time bound, and records what it measured (printed as a table at the end).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from harness.checks import SUCCESS, eventually, summary, verbs
from harness.cluster import (
    REFERENCE_ROLE,
    AdapterJob,
    create_job,
    create_namespace,
    patch_job_condition,
    service_account_token,
)
from harness.controlplane import ControlPlane
from harness.faultproxy import FaultProxy
from harness.reporter import ReporterRun
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import Pod, Secret, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from tests.faults.conftest import Start, monitoring, record

pytestmark = pytest.mark.faults

# kube-apiserver keeps a token's authentication for 10 s: a revoked token works that long.
TOKEN_CACHE_SECONDS = 11
CRASH = ("False", "AdapterExitedWithError", "Adapter container exited with code 1: Error")
CRASH_CONDITION = {
    "type": "Available",
    "status": "False",
    "reason": "AdapterExitedWithError",
    "message": "Adapter container exited with code 1: Error",
}
PASSED = ("True", "ValidationPassed", "GCP environment validated")
MIB = 1024 * 1024


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


def logged_at(run: ReporterRun, message: str) -> float:
    """When the reporter logged its first line holding ``message`` (epoch seconds, by the
    reporter's own clock)."""
    line = next(line for line in run.output.splitlines() if message in line)
    return datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()


def test_a_hung_proxy_then_a_crash(job: AdapterJob, reporter: Start, proxy: FaultProxy) -> None:
    """A hung L7 proxy: it keeps its established connections open (the watch, and the
    keep-alive connection pooled since start-up) but forwards nothing on them; new
    connections work. MAX_WAIT_TIME_SECONDS=60; then the adapter exits 1.

    Required: AdapterExitedWithError, never AdapterTimeout. Nothing polls the Pod while
    its watch looks up, and a silent watch is given up after min(75 s, time left), so
    the crash is learned at the deadline, from its last read of the Pod. That read goes
    to the stalled pooled connection and, with no byte of answer after max(2 s, half of
    its 5 s), is hedged once on a new connection: the condition is on the Job at most
    3.5 s after the deadline (60 s after start-up; measured 2.5 s). Pins transport's
    hedged read: without it that read waits its whole 5 s (measured 5.0 s; the
    crash is then taken from the poll that the watch's own timeout, 1 s past the
    deadline, starts). Not "well before the deadline": nothing reads the Pod earlier.
    """
    run = monitoring(reporter(job, {"MAX_WAIT_TIME_SECONDS": "60"}, proxy=proxy))
    time.sleep(1)  # the watch is established, the start-up connection idle in the pool
    before = proxy.accepted
    proxy.stall_existing()
    crashed = time.monotonic()
    job.terminated(1, "Error")
    assert run.wait(timeout=90) == 1, run.output
    # Both ends by the reporter's own clock; start-up (before the line) counts as waited.
    past_deadline = logged_at(run, "condition written") - logged_at(run, "monitoring adapter") - 60
    outcome = record(
        "hung proxy (established connections stall), MAX_WAIT 60, adapter exits 1",
        job,
        run,
        crashed,
        f"condition {past_deadline:.1f} s after the deadline; "
        f"{proxy.accepted - before} new connections",
    )
    assert summary(job.condition()) == CRASH
    assert run.last_word() == {**CRASH_CONDITION, "written": True}
    assert "AdapterTimeout" not in run.output
    assert past_deadline <= 3.5, outcome.measured
    assert proxy.accepted > before, "the last read never went to a new connection"


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


def stop_at_a_known_second(
    job: AdapterJob, run: ReporterRun, exit_code: int, later: int = 0
) -> float:
    """SIGTERM to the reporter, then the adapter's terminated state as a kubelet posts it
    for an adapter that exited ``exit_code`` in the stop's own second (plus ``later``).

    Never within 0.3 s of a second's end, so that the reporter handles the signal in the
    same whole second as the test reads it. Returns when the signal was sent (monotonic).
    """
    fraction = time.time() % 1
    if fraction > 0.7:
        time.sleep(1.05 - fraction)
    stopped_wall = time.time()
    stopped = time.monotonic()
    run.signal(signal.SIGTERM)
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(stopped_wall) + later))
    job.set_adapter(
        {"terminated": {"exitCode": exit_code, "reason": "Error", "finishedAt": finished}}
    )
    return stopped


@pytest.mark.parametrize("later", [0, 1])
def test_an_adapter_killed_by_the_same_stop(job: AdapterJob, reporter: Start, later: int) -> None:
    """A real SIGTERM at T, and the adapter exits 143 on the same stop: its terminated
    state (reason Error) says finishedAt = T's whole second (or the next one), as a
    kubelet posts it for an adapter that exits promptly on SIGTERM.

    Required: ReporterInterrupted (rule 8: the stop ended the adapter; its exit is no
    crash), exit code 1 (classic sidecar), within 10 s of the SIGTERM. Pins
    decision.killed_by_stop's signal rule: with finishedAt within the 1 s tolerance of
    the stop, the adapter counted as having ended on its own (AdapterExitedWithError,
    code 143).
    """
    run = monitoring(reporter(job))
    stopped = stop_at_a_known_second(job, run, 143, later)
    assert run.wait(timeout=30) == 1, run.output
    outcome = record(f"SIGTERM, adapter exits 143 at the stop's second +{later}", job, run, stopped)
    assert summary(job.condition()) == (
        "False",
        "ReporterInterrupted",
        "Status reporter was stopped before the adapter produced a result",
    )
    assert run.last_word()["reason"] == "ReporterInterrupted"
    assert run.last_word()["written"] is True
    assert outcome.seconds <= 10


def test_an_adapter_that_exited_on_its_own_at_the_stop(job: AdapterJob, reporter: Start) -> None:
    """The converse: a real SIGTERM at T, and the adapter exited 1 on its own, its
    finishedAt in T's whole second.

    Required: AdapterExitedWithError (rule 5: exit 1 is no signal's code, and the
    adapter finished within the 1 s tolerance of the stop), exit code 1, within 10 s
    of the SIGTERM. Pins that the signal rule is about 143/137 only.
    """
    run = monitoring(reporter(job))
    stopped = stop_at_a_known_second(job, run, 1)
    assert run.wait(timeout=30) == 1, run.output
    outcome = record("SIGTERM, adapter exited 1 in the stop's second", job, run, stopped)
    assert summary(job.condition()) == CRASH
    assert run.last_word() == {**CRASH_CONDITION, "written": True}
    assert outcome.seconds <= 10


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


def another_pod(admin: Client, job: AdapterJob, results_dir: Path) -> AdapterJob:
    """A second Pod of ``job``'s Job, as the Job controller creates for a retry (same
    spec, owner and labels; a results volume of its own)."""
    pod = admin.get(Pod, job.pod, namespace=job.namespace)
    assert pod.metadata is not None
    assert pod.spec is not None
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{job.name}-",
            "namespace": job.namespace,
            "labels": dict(pod.metadata.labels or {}),
            "ownerReferences": [ref.to_dict() for ref in pod.metadata.ownerReferences or []],
        },
        "spec": pod.spec.to_dict(),
    }
    created = admin.create(cast(Pod, Pod.from_dict(body)))
    assert created.metadata is not None
    assert created.metadata.name is not None
    results_dir.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(job, pod=created.metadata.name, results_dir=results_dir)


def second_account(admin: Client, namespace: str, name: str) -> None:
    """Another ServiceAccount bound to the reporter's Role: its requests are told apart
    from the first one's in the audit log."""
    admin.create(ServiceAccount(metadata=ObjectMeta(name=name)), namespace=namespace)
    binding = RoleBinding(
        metadata=ObjectMeta(name=name),
        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="Role", name="status-reporter"),
        subjects=[Subject(kind="ServiceAccount", name=name, namespace=namespace)],
    )
    admin.create(binding, namespace=namespace)


def test_two_reporters_on_one_job(
    make_job: Callable[..., AdapterJob],
    reporter: Start,
    admin: Client,
    plane: ControlPlane,
    tmp_path: Path,
) -> None:
    """Two reporters on one Job, both real processes. The Job already carries
    AdapterExitedWithError from an earlier run. Reporter B runs for the earlier Pod (as
    a second ServiceAccount, so that the audit log tells the two apart), reporter A for
    this Pod; both read the Job at start-up. The earlier Pod is then deleted, a stop for
    B, which records ReporterInterrupted on the same condition type. Then this Pod's
    adapter exits 1.

    Required: A's copy of the Job shows the very condition it decided, but A reads the
    Job again before concluding "nothing to write", finds ReporterInterrupted and
    writes AdapterExitedWithError: the Job ends with it, A's termination message says
    written: true, and the audit log shows A's `get jobs` twice and one patch. Pins
    ConditionWriter.write's re-read of a held copy: without it A wrote nothing and the
    Job kept B's ReporterInterrupted.
    """
    earlier = make_job()
    earlier.running()
    this = another_pod(admin, earlier, tmp_path / "results-this")
    this.running()
    patch_job_condition(admin, earlier, CRASH_CONDITION)
    second_account(admin, earlier.namespace, "status-reporter-b")
    run_b = monitoring(reporter(earlier, account="status-reporter-b"))
    run_a = monitoring(reporter(this))
    admin.delete(Pod, earlier.pod, namespace=earlier.namespace, grace_period=0)
    assert run_b.wait(timeout=30) == 1, run_b.output
    assert (this.condition() or {}).get("reason") == "ReporterInterrupted"
    crashed = time.monotonic()
    this.terminated(1, "Error")
    assert run_a.wait(timeout=30) == 1, run_a.output
    outcome = record(
        "two reporters: B writes ReporterInterrupted, then A's adapter exits 1",
        this,
        run_a,
        crashed,
    )
    assert summary(this.condition()) == CRASH
    assert run_a.last_word()["written"] is True
    assert run_a.last_word()["reason"] == "AdapterExitedWithError"
    a_calls = verbs(plane, this)  # the status-reporter account: A's requests only
    assert [v for v in a_calls if v.startswith("get jobs")] == ["get jobs 200"] * 2, a_calls
    assert [v for v in a_calls if v.startswith("patch")] == ["patch jobs/status 200"], a_calls
    assert outcome.seconds <= 3


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


def test_an_adapter_truncating_then_writing_a_valid_result_in_a_loop(
    job: AdapterJob, reporter: Start
) -> None:
    """An adapter that, every 5 ms for 10 s, opens its file with ``open(path, "w")``
    (truncating it), works out its result, writes a VALID one, closes it and unlinks it.
    Its file is therefore empty nearly all the time, valid for an instant, then gone;
    in the end it leaves the valid result in place.

    Required: the valid result is reported (True, ValidationPassed, exit 0), as soon as
    it is read and at the latest within 2 s of the last write, never
    "InvalidResultFormat: file is empty". Pins observe.Observations.record_result: an
    empty (or missing) read is a file being written; it used to keep one settle window
    running across reads, so an empty file "unchanged" for POLL_INTERVAL_SECONDS was
    reported invalid while the adapter was still at work.
    """
    run = monitoring(reporter(job))
    text = json.dumps(SUCCESS).encode()
    stop = threading.Event()
    cycles = 0

    def adapter() -> None:
        nonlocal cycles
        path = job.results_path
        while not stop.is_set():
            # open(path, "w") as system calls: no Python between the close and the unlink,
            # so the valid content is there for microseconds and a read almost never
            # finds it; the reads find the file empty (or missing), as they can in life.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            time.sleep(0.005)  # the adapter works out its result
            os.write(fd, text)
            os.close(fd)
            os.unlink(path)
            cycles += 1
        path.write_bytes(text)  # the last one stays

    writer = threading.Thread(target=adapter)
    started = time.monotonic()
    writer.start()
    try:
        time.sleep(10)  # not polling meanwhile: the writer never waits for the GIL
    finally:
        stop.set()
        writer.join()
    last_write = time.time()
    assert run.wait(timeout=30) == 0, run.output
    # Negative when a read caught the valid content while the loop still ran.
    after_last = logged_at(run, "condition written") - last_write
    outcome = record(
        "adapter truncates, writes a valid result, unlinks, every 5 ms for 10 s",
        job,
        run,
        started,
        f"{cycles} cycles; condition {after_last:+.2f} s from the last write",
    )
    assert summary(job.condition()) == PASSED
    assert run.last_word()["written"] is True
    assert "InvalidResultFormat" not in run.output
    assert after_last <= 2, outcome.measured


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_adapter_regrowing_its_file_to_100_mib(job: AdapterJob, reporter: Start) -> None:
    """An adapter that rewrites its file from scratch and regrows it to 100 MiB, opening,
    appending 1 MiB and closing it each time (thousands of close-write events a second),
    then truncates it and starts again, for 10 s while it runs; then it writes a valid
    result.

    Required: the reporter's CPU over those 10 s stays within 10 % of one core (a file
    over 1 MiB costs a stat, never a read; re-reads back off while every read finds new
    invalid content; file events after one that concerned the file wait in the kernel's
    queue, which merges them), nothing is decided while the file keeps changing, and the
    valid result then wins within 2 s. Before the event gap this cost 23.6 % of a core.
    """
    run = monitoring(reporter(job))
    opening = b'{"status": "success", "reason": "Growing", "log": "'
    chunk = opening + b"x" * (MIB - len(opening))
    stop = threading.Event()
    cycles = 0

    def adapter() -> None:
        nonlocal cycles
        while not stop.is_set():
            job.results_path.write_bytes(b"")  # truncated: from scratch
            for _ in range(100):
                if stop.is_set():
                    return
                with job.results_path.open("ab") as handle:
                    handle.write(chunk)
            cycles += 1

    writer = threading.Thread(target=adapter)
    cpu_before = cpu_seconds(run.process.pid)
    started = time.monotonic()
    writer.start()
    try:
        time.sleep(10)
    finally:
        stop.set()
        writer.join()
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(run.process.pid) - cpu_before
    assert run.running, run.output  # nothing decided on a file that never settled
    written = time.monotonic()
    job.write_result(SUCCESS)  # truncates the big file: nothing large is left behind
    assert run.wait(timeout=30) == 0, run.output
    outcome = record(
        "adapter regrows its file to 100 MiB, opening and closing it per 1 MiB, for 10 s",
        job,
        run,
        written,
        f"reporter CPU {cpu:.2f} s in {elapsed:.1f} s ({100 * cpu / elapsed:.1f} %), "
        f"{cycles} regrowths",
    )
    assert summary(job.condition()) == PASSED
    assert run.last_word()["written"] is True
    assert cpu <= 0.1 * elapsed, outcome.measured
    assert outcome.seconds <= 2
