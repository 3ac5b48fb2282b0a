"""Which failed API calls are worth repeating, how long to wait, and for how long in all
(README "How the condition is written").

Transient failures (no answer, 409, 429, 5xx) are retried with exponential backoff
and jitter, never sooner than the server's ``Retry-After``, until a deadline. Each
attempt's own timeout is cut to the time left, so the deadline is never overrun.
Everything else is final and becomes a :class:`KubeError` naming the verb and resource.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import msgspec
import tenacity

from status_reporter.api import ApiError, Operation, Unreachable
from status_reporter.clock import Clock
from status_reporter.logs import Logger

_T = TypeVar("_T")

# 409 cannot come from a precondition (none is sent); the server returns it when its
# own optimistic-concurrency retries ran out, which another try can fix.
TRANSIENT_STATUSES: Final = frozenset({409, 429, 500, 502, 503, 504})
# An attempt needs at least this long to have a chance; less time left ends the retries.
MIN_ATTEMPT_SECONDS: Final = 0.2


class KubeError(Exception):
    """An API call failed for good. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryPolicy(msgspec.Struct, frozen=True):
    """Backoff ``initial`` doubling up to ``maximum`` seconds, jittered between half and
    all of it; each attempt takes at most ``request_timeout`` seconds."""

    initial: float = 0.5
    maximum: float = 5.0
    request_timeout: float = 10.0


def is_transient(exc: BaseException) -> bool:
    """No answer, 409, 429 and 5xx are worth another try."""
    if isinstance(exc, Unreachable):
        return True
    return isinstance(exc, ApiError) and exc.status in TRANSIENT_STATUSES


def backoff(
    policy: RetryPolicy,
    attempt: int,
    server_wait: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """The wait after failed attempt number ``attempt`` (1-based)."""
    ceiling = min(policy.maximum, policy.initial * 2.0 ** max(0, attempt - 1))
    delay: float = ceiling * (0.5 + 0.5 * rng())
    return delay if server_wait is None else max(delay, server_wait)


def forbidden_hint(op: Operation) -> str:
    """What to grant, for the message of a 403."""
    return (
        f"; the Pod's service account needs '{op.verb}' on '{op.resource}' "
        f"(API group '{op.group or 'core'}') in namespace '{op.namespace}'"
    )


def final_error(op: Operation, exc: ApiError | Unreachable) -> KubeError:
    """A failure that is not retried (any more), as one clear line."""
    if isinstance(exc, Unreachable):
        return KubeError(f"cannot {op.describe()}: API server unreachable: {exc}")
    if exc.status == 403:
        return KubeError(f"forbidden: cannot {op.describe()}: {exc}{forbidden_hint(op)}", 403)
    if exc.status == 404:
        return KubeError(f"not found: cannot {op.describe()}: {exc}", 404)
    return KubeError(f"cannot {op.describe()}: {exc}", exc.status)


async def call(
    op: Operation,
    attempt: Callable[[float], Awaitable[_T]],
    *,
    clock: Clock,
    deadline: float,
    log: Logger,
    policy: RetryPolicy | None = None,
) -> _T:
    """Run ``attempt(timeout)`` until it succeeds, fails for good or ``deadline`` passes.

    Raises:
        KubeError: the last failure, when it is final or no time is left.
    """
    policy = policy or RetryPolicy()

    def server_wait(state: tenacity.RetryCallState) -> float | None:
        exc = state.outcome.exception() if state.outcome else None
        return exc.retry_after if isinstance(exc, ApiError) else None

    def wait(state: tenacity.RetryCallState) -> float:
        left = deadline - clock.now() - MIN_ATTEMPT_SECONDS
        return max(0.0, min(backoff(policy, state.attempt_number, server_wait(state)), left))

    def stop(state: tenacity.RetryCallState) -> bool:
        return deadline - clock.now() < 2 * MIN_ATTEMPT_SECONDS

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "API call failed, retrying",
            operation=op.describe(),
            attempt=state.attempt_number,
            error=str(exc),
            retry_in=round(state.upcoming_sleep, 3),
        )

    async def sleep(seconds: float) -> None:
        await clock.sleep_until(clock.now() + seconds)

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=wait,
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )

    async def bounded_attempt() -> _T:
        timeout = min(policy.request_timeout, deadline - clock.now())
        return await attempt(max(MIN_ATTEMPT_SECONDS, timeout))

    try:
        return await retrying(bounded_attempt)
    except (ApiError, Unreachable) as exc:
        raise final_error(op, exc) from None
