"""Which failed API calls are worth repeating, how long to wait, and for how long in all
(README "How the condition is written").

Transient failures (no answer, 409, 429, 5xx) are retried with exponential backoff
and jitter, after the server's ``Retry-After`` (plus jitter), until a deadline. Each
attempt's own timeout is cut to the time left, so the deadline is never overrun.
Everything else is final and becomes a :class:`KubeError` naming the verb and resource.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import msgspec

from status_reporter.api.protocol import ApiError, CredentialsUnavailable, Operation, Unreachable
from status_reporter.base.clock import Clock
from status_reporter.base.logs import Logger

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
    all of it; each attempt takes at most ``request_timeout`` seconds.

    ``forbidden_grace`` retries a 403 for that many seconds after the first one: for
    a call whose permission the start-up review confirmed, since an API server that
    has just restarted refuses requests until its authorization caches are filled.
    """

    initial: float = 0.5
    maximum: float = 5.0
    request_timeout: float = 10.0
    forbidden_grace: float = 0.0


def is_transient(exc: BaseException) -> bool:
    """No answer, 409, 429 and 5xx are worth another try."""
    if isinstance(exc, Unreachable):
        return True
    return isinstance(exc, ApiError) and exc.status in TRANSIENT_STATUSES


def backoff(
    policy: RetryPolicy,
    attempt: int,
    server_wait: float | None = None,
    rng: Callable[[], float] | None = None,
) -> float:
    """The wait after failed attempt number ``attempt`` (1-based).

    With the server's ``Retry-After`` the wait is that plus a random part of the
    backoff: many reporters told the same Retry-After at once (a throttled burst of
    results) would otherwise all come back in the same instant, be refused again,
    and be told to wait longer each time.
    """
    if rng is None:
        import random  # noqa: PLC0415 - only a failed call needs jitter

        rng = random.random
    ceiling = min(policy.maximum, policy.initial * 2.0 ** max(0, attempt - 1))
    if server_wait is not None:
        return server_wait + ceiling * rng()
    delay: float = ceiling * (0.5 + 0.5 * rng())
    return delay


def forbidden_hint(op: Operation) -> str:
    """What to grant, for the message of a 403."""
    return (
        f"; the Pod's service account needs '{op.verb}' on '{op.resource}' "
        f"(API group '{op.group or 'core'}') in namespace '{op.namespace}'"
    )


def final_error(op: Operation, exc: ApiError | Unreachable) -> KubeError:
    """A failure that is not retried (any more), as one clear line."""
    if isinstance(exc, CredentialsUnavailable):
        return KubeError(f"cannot {op.describe()}: no credentials: {exc}")
    if isinstance(exc, Unreachable):
        return KubeError(f"cannot {op.describe()}: API server unreachable: {exc}")
    if exc.status == 403:
        return KubeError(f"forbidden: cannot {op.describe()}: {exc}{forbidden_hint(op)}", 403)
    if exc.status == 404:
        return KubeError(f"not found: cannot {op.describe()}: {exc}", 404)
    return KubeError(f"cannot {op.describe()}: {exc}", exc.status)


class _Retries:
    """One call's retry state: the policy applied to attempt ``n`` and its failure."""

    def __init__(
        self, op: Operation, clock: Clock, deadline: float, log: Logger, policy: RetryPolicy
    ) -> None:
        self.op, self.clock, self.deadline, self.log, self.policy = op, clock, deadline, log, policy
        self.first_forbidden: float | None = None

    def retryable(self, exc: BaseException) -> bool:
        """Transient, or a 403 still within the policy's grace for it."""
        if is_transient(exc):
            return True
        if not (isinstance(exc, ApiError) and exc.status == 403 and self.policy.forbidden_grace):
            return False
        now = self.clock.now()
        if self.first_forbidden is None:
            self.first_forbidden = now
        return now - self.first_forbidden < self.policy.forbidden_grace

    def out_of_time(self) -> bool:
        return self.deadline - self.clock.now() < 2 * MIN_ATTEMPT_SECONDS

    def wait(self, attempt: int, exc: BaseException) -> float:
        """The wait after failed attempt ``attempt``, cut to leave one more attempt in time."""
        server = exc.retry_after if isinstance(exc, ApiError) else None
        left = self.deadline - self.clock.now() - MIN_ATTEMPT_SECONDS
        return max(0.0, min(backoff(self.policy, attempt, server), left))

    def announce(self, attempt: int, exc: BaseException, wait: float) -> None:
        self.log.warning(
            "API call failed, retrying",
            operation=self.op.describe(),
            attempt=attempt,
            error=str(exc),
            retry_in=round(wait, 3),
        )

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep_until(self.clock.now() + seconds)

    def timeout(self) -> float:
        """The next attempt's timeout: the policy's, cut to the time left."""
        left = self.deadline - self.clock.now()
        return max(MIN_ATTEMPT_SECONDS, min(self.policy.request_timeout, left))


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

    One plain loop, the shape of client-go's ``retry.OnError``: the policy (what is
    retried, how long to wait, each attempt's timeout) is all in :class:`_Retries`.

    Raises:
        KubeError: the last failure, when it is final or no time is left.
    """
    retries = _Retries(op, clock, deadline, log, policy or RetryPolicy())
    number = 0
    while True:
        number += 1
        try:
            return await attempt(retries.timeout())
        except (ApiError, Unreachable) as exc:
            if not retries.retryable(exc) or retries.out_of_time():
                raise final_error(op, exc) from None
            wait = retries.wait(number, exc)
            retries.announce(number, exc, wait)
            await retries.sleep(wait)
