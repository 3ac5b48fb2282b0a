"""The pure policies at the edges: retries and backoff, permission rules, TCP keepalive and
watch lengths, the ticker, termination messages, and what a Pod says about a stop."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from status_reporter.api.access import rule_allows
from status_reporter.api.protocol import ApiError, Operation, Operations, Unreachable
from status_reporter.api.retry import (
    KubeError,
    RetryPolicy,
    backoff,
    call,
    final_error,
    is_transient,
)
from status_reporter.base import logs
from status_reporter.base.clock import ticks
from status_reporter.core.conditions import Condition
from status_reporter.core.decision import Stop
from status_reporter.core.models import ObjectMeta, Pod, ResourceRule
from status_reporter.core.pods import deletion, unix_time
from status_reporter.monitors.podwatch import WATCH_MAX_SECONDS, keepalive_for, watch_seconds
from status_reporter.shell import termination
from tests.unit.fakes import FakeClock, settle

OPS = Operations.of("job-a", "pod-a", "ns-a")

# --- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [409, 429, 500, 502, 503, 504])
def test_transient_statuses(status: int) -> None:
    assert is_transient(ApiError(status, "x"))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_final_statuses(status: int) -> None:
    assert not is_transient(ApiError(status, "x"))


def test_no_answer_is_transient() -> None:
    assert is_transient(Unreachable("refused"))
    assert not is_transient(ValueError("bug"))


def test_backoff_doubles_to_a_five_second_cap_with_jitter() -> None:
    policy = RetryPolicy()
    highest = [backoff(policy, n, rng=lambda: 1.0) for n in range(1, 8)]
    lowest = [backoff(policy, n, rng=lambda: 0.0) for n in range(1, 8)]
    assert highest == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert lowest == [0.25, 0.5, 1.0, 2.0, 2.5, 2.5, 2.5]


def test_backoff_honours_retry_after() -> None:
    assert backoff(RetryPolicy(), 1, server_wait=7.0, rng=lambda: 1.0) == 7.0
    assert backoff(RetryPolicy(), 5, server_wait=1.0, rng=lambda: 1.0) == 5.0


async def test_call_retries_until_success() -> None:
    clock = FakeClock(autojump=True)
    failures = [Unreachable("refused"), ApiError(503, "busy", retry_after=3.0)]
    timeouts: list[float] = []

    async def attempt(timeout: float) -> str:
        timeouts.append(timeout)
        if failures:
            raise failures.pop(0)
        return "ok"

    result = await call(
        OPS.get_job, attempt, clock=clock, deadline=clock.now() + 60, log=logs.get_logger()
    )
    assert result == "ok"
    assert timeouts == [10.0, 10.0, 10.0]
    assert clock.sleeps[1] >= 3.0  # Retry-After


async def test_call_logs_each_retry_and_waits_less_than_a_second_at_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure()
    clock = FakeClock(autojump=True)
    failures = [Unreachable("connection refused")]

    async def attempt(timeout: float) -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    await call(OPS.get_job, attempt, clock=clock, deadline=clock.now() + 60, log=logs.get_logger())
    assert 0.25 <= clock.sleeps[0] <= 0.5
    (line,) = capsys.readouterr().out.splitlines()
    assert " WARN  " in line
    message = line.split("] ", 3)[3]  # after timestamp, level, component, version, hostname
    assert message == (
        'API call failed, retrying operation="get jobs \\"job-a\\" in namespace \\"ns-a\\"" '
        f'attempt=1 error="connection refused" retry_in={round(clock.sleeps[0], 3)}'
    )


async def test_call_never_waits_past_the_deadline() -> None:
    clock = FakeClock(autojump=True)
    start = clock.now()

    async def attempt(timeout: float) -> str:
        await clock.sleep_until(clock.now() + 0.1)
        raise ApiError(503, "busy", retry_after=30.0)

    with pytest.raises(KubeError):
        await call(OPS.get_job, attempt, clock=clock, deadline=start + 10, log=logs.get_logger())
    # Retry-After asked for 30 s: the wait is cut to leave one attempt before the deadline.
    assert clock.sleeps[1] <= 10 - 0.1
    assert clock.now() - start <= 10


async def test_call_cuts_the_last_attempt_to_the_deadline() -> None:
    clock = FakeClock(autojump=True)
    start = clock.now()
    timeouts: list[float] = []

    async def attempt(timeout: float) -> str:
        timeouts.append(timeout)
        await clock.sleep_until(clock.now() + timeout)
        raise Unreachable("no response")

    with pytest.raises(KubeError) as info:
        await call(OPS.get_job, attempt, clock=clock, deadline=start + 25, log=logs.get_logger())
    assert clock.now() - start <= 25
    assert timeouts[0] == 10.0
    assert timeouts[-1] < 10.0
    assert "API server unreachable: no response" in str(info.value)


@pytest.mark.parametrize(
    ("status", "start"),
    [(403, "forbidden: cannot get jobs"), (404, "not found: cannot get jobs"), (422, "cannot get")],
)
async def test_final_failures_name_the_verb_and_resource(status: int, start: str) -> None:
    clock = FakeClock(autojump=True)
    calls = 0

    async def attempt(timeout: float) -> str:
        nonlocal calls
        calls += 1
        raise ApiError(status, f"HTTP {status}: no")

    with pytest.raises(KubeError) as info:
        await call(
            OPS.get_job, attempt, clock=clock, deadline=clock.now() + 60, log=logs.get_logger()
        )
    assert calls == 1
    assert str(info.value).startswith(start)
    assert info.value.status == status
    if status == 403:
        assert "needs 'get' on 'jobs' (API group 'batch') in namespace 'ns-a'" in str(info.value)


async def test_call_makes_another_attempt_while_one_still_fits() -> None:
    # After a failure with 0.5 s left, one more attempt of at least 0.2 s still fits.
    clock = FakeClock(autojump=True)
    attempts = 0

    async def attempt(timeout: float) -> str:
        nonlocal attempts
        attempts += 1
        raise Unreachable("refused")

    with pytest.raises(KubeError):
        await call(
            OPS.get_job, attempt, clock=clock, deadline=clock.now() + 0.5, log=logs.get_logger()
        )
    assert attempts == 2


def test_a_core_resource_names_its_api_group() -> None:
    error = final_error(OPS.get_pod, ApiError(403, "HTTP 403: forbidden"))
    assert str(error) == (
        'forbidden: cannot get pods "pod-a" in namespace "ns-a": HTTP 403: forbidden; '
        "the Pod's service account needs 'get' on 'pods' (API group 'core') "
        "in namespace 'ns-a'"
    )


# --- permissions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "allowed"),
    [
        (ResourceRule(["patch"], ["batch"], ["jobs/status"]), True),
        (ResourceRule(["*"], ["batch"], ["jobs/status"]), True),
        (ResourceRule(["patch"], ["*"], ["*"]), True),
        (ResourceRule(["patch"], ["batch"], ["*/status"]), True),
        (ResourceRule(["patch"], ["batch"], ["jobs/status"], ["job-a"]), True),
        (ResourceRule(["patch"], ["batch"], ["jobs/status"], ["job-b"]), False),
        (ResourceRule(["update"], ["batch"], ["jobs/status"]), False),
        (ResourceRule(["patch"], [""], ["jobs/status"]), False),
        (ResourceRule(["patch"], ["batch"], ["jobs"]), False),
        (ResourceRule(["patch"], ["batch"], ["*/scale"]), False),
    ],
)
def test_rule_allows(rule: ResourceRule, allowed: bool) -> None:
    assert rule_allows(rule, OPS.patch_status) is allowed


def test_subresource_wildcards_do_not_grant_the_resource() -> None:
    watch = Operation("watch", "", "pods", "pod-a", "ns-a")
    assert not rule_allows(ResourceRule(["watch"], [""], ["*/status"]), watch)


# --- dead watches ----------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=3600))
def test_keepalive_declares_a_dead_connection_within_two_intervals(interval: int) -> None:
    keepalive = keepalive_for(interval)
    assert keepalive.idle >= 1
    assert keepalive.interval >= 1
    assert keepalive.count >= 1
    assert keepalive.idle + keepalive.interval * keepalive.count <= 2 * interval
    assert keepalive.idle <= 32767  # the kernel's limit for TCP_KEEPIDLE


def test_keepalive_default() -> None:
    keepalive = keepalive_for(10)
    assert (keepalive.idle, keepalive.interval, keepalive.count) == (5, 3, 4)


@pytest.mark.parametrize(
    ("left", "seconds"), [(0.0, 30), (-5.0, 30), (299.2, 330), (1e9, WATCH_MAX_SECONDS)]
)
def test_watch_lasts_until_after_the_deadline_within_bounds(left: float, seconds: int) -> None:
    assert watch_seconds(left) == seconds


# --- the ticker ---------------------------------------------------------------------------------


async def test_ticks_drop_what_a_slow_consumer_missed() -> None:
    clock = FakeClock()
    seen: list[float] = []

    async def consume() -> None:
        async for _ in ticks(clock, 10):
            seen.append(clock.now())
            if len(seen) == 1:
                await clock.sleep_until(clock.now() + 35)  # a slow API read

    task = asyncio.create_task(consume())
    await settle()
    await clock.advance(70)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # 1010, then the read lasts until 1045: 1020, 1030 and 1040 are dropped, not fired at once.
    assert seen == [1010.0, 1050.0, 1060.0, 1070.0]


# --- termination messages -------------------------------------------------------------------------


def test_termination_message_is_one_json_line() -> None:
    line = termination.message("Available", Condition("True", "Ok", "fine"), written=True)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {
        "type": "Available",
        "status": "True",
        "reason": "Ok",
        "message": "fine",
        "written": True,
    }


def test_termination_message_fits_the_kubelet_limit() -> None:
    message = "\x01" * 1024  # six bytes each once escaped
    line = termination.message("Available", Condition("False", "R", message), written=False)
    assert len(line) <= termination.LIMIT_BYTES
    assert json.loads(line)["message"].startswith("\x01")


def test_termination_message_file_is_never_created(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "termination-log"  # type: ignore[operator]
    assert not termination.write(str(path), b"x\n")
    assert not path.exists()
    path.write_bytes(b"old, longer content")
    assert termination.write(str(path), b"x\n")
    assert path.read_bytes() == b"x\n"


# --- Pods ---------------------------------------------------------------------------------------


def test_unix_time() -> None:
    assert unix_time("2026-11-26T10:00:00Z") == 1_795_687_200.0
    assert unix_time(None) is None
    assert unix_time("yesterday") is None


def test_deletion_means_a_stop_when_it_was_requested() -> None:
    meta = ObjectMeta(
        name="p", deletion_timestamp="2026-11-26T10:00:30Z", deletion_grace_period_seconds=30
    )
    # Seen at wall 10:00:10 (monotonic 500): requested at 10:00:00, 10 s ago.
    stop = deletion(Pod(metadata=meta), now=500.0, wall=1_795_687_210.0)
    assert stop == Stop(at=490.0, wall=1_795_687_200.0)
    assert deletion(Pod(), now=500.0, wall=1_795_687_210.0) is None
