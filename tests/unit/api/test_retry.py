"""Which failed API calls are retried, the backoff, and the deadline-bounded call."""

from __future__ import annotations

import pytest

from status_reporter.api.protocol import ApiError, Operations, Unreachable
from status_reporter.api.retry import (
    KubeError,
    RetryPolicy,
    backoff,
    call,
    final_error,
    is_transient,
)
from status_reporter.base import logs
from tests.unit.fakes import FakeClock

OPS = Operations.of("job-a", "pod-a", "ns-a")


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


def test_backoff_honours_retry_after_and_spreads_who_was_told_it() -> None:
    # Never sooner than Retry-After; then a random part of the backoff, so that many
    # clients refused at once do not all return at once.
    assert backoff(RetryPolicy(), 1, server_wait=7.0, rng=lambda: 0.0) == 7.0
    assert backoff(RetryPolicy(), 1, server_wait=7.0, rng=lambda: 1.0) == 7.5
    assert backoff(RetryPolicy(), 5, server_wait=1.0, rng=lambda: 0.0) == 1.0
    assert backoff(RetryPolicy(), 5, server_wait=1.0, rng=lambda: 1.0) == 6.0


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
