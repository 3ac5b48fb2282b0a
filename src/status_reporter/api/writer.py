"""Recording the decided condition on the Job (README "How the condition is written").

The condition is planned from the latest copy of the Job the reporter holds (the
start-up read, then each patch's answer) and written with one strategic-merge
patch of ``jobs/status``, retried within the caller's deadline. "Nothing to write"
is never concluded from an old copy: it is read again first.
"""

from __future__ import annotations

from typing import Final

import msgspec

from status_reporter.api.protocol import Api, Operations
from status_reporter.api.retry import RetryPolicy, call
from status_reporter.base.clock import Clock
from status_reporter.base.logs import Logger
from status_reporter.core.conditions import Condition, find, planned_condition, status_patch
from status_reporter.core.models import Job, JobCondition

# The write is retried for at least this long (or MAX_WAIT_TIME_SECONDS if longer).
WRITE_BUDGET_SECONDS: Final = 60.0
# A 403 on the write, when start-up confirmed the permission, is retried this long: an
# API server that has just restarted refuses requests until its caches are filled.
FORBIDDEN_GRACE_SECONDS: Final = 10.0
# Configuration errors are reported on the Job on a best-effort basis, this fast.
CONFIG_ERROR_SECONDS: Final = 5.0


def write_budget(max_wait_seconds: int) -> float:
    """How long the decided condition's write is retried: max(60 s, the wait)."""
    return max(WRITE_BUDGET_SECONDS, max_wait_seconds)


class ConditionWriter:
    """Writes conditions of one type on one Job."""

    def __init__(
        self,
        api: Api,
        ops: Operations,
        condition_type: str,
        *,
        clock: Clock,
        log: Logger,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._api = api
        self._ops = ops
        self._type = condition_type
        self._clock = clock
        self._log = log
        self._policy = policy or RetryPolicy()
        self._conditions: list[JobCondition] | None = None

    def trust_permission(self, grace: float) -> None:
        """The permission to patch was confirmed: retry a 403 for ``grace`` seconds."""
        self._policy = msgspec.structs.replace(self._policy, forbidden_grace=grace)

    def plan_from(self, job: Job) -> None:
        """Keep ``job`` as the latest known copy to plan from."""
        self._conditions = job.status.conditions

    async def read_job(self, deadline: float) -> Job:
        """Read the Job (retrying until ``deadline``), keep it as the copy to plan from,
        and return it.

        Raises:
            KubeError: it could not be read (a 404 when the Job does not exist).
        """
        job = await call(
            self._ops.get_job,
            lambda timeout: self._api.get_job(self._ops.job, timeout=timeout),
            clock=self._clock,
            deadline=deadline,
            log=self._log,
            policy=self._policy,
        )
        self.plan_from(job)
        return job

    async def write(
        self, condition: Condition, *, deadline: float, read_first: bool = True
    ) -> None:
        """Record ``condition`` (nothing is sent when an identical one is already there).

        Without a copy of the Job, one is read first, unless ``read_first`` is False
        (a last attempt with little time: the patch alone, as if no condition existed,
        on a new connection, since a pooled one may be dead and there is no time left
        to find out).
        A held copy that already has a condition of this type is read again first:
        another writer may have changed it since (its ``lastTransitionTime`` is planned
        from the fresh copy, and an identical one is never concluded from a stale copy).
        Without one, the held copy is enough: a normal run reads the Job once.

        Raises:
            KubeError: it could not be written before ``deadline``.
        """
        fresh = False
        held = self._conditions
        if read_first and (held is None or find(held, self._type) is not None):
            await self.read_job(deadline)
            fresh = True
        planned = self._plan(condition)
        if planned is None and not fresh:
            await self.read_job(deadline)
            planned = self._plan(condition)
        if planned is None:
            self._log.info("condition already recorded; nothing to write", type=self._type)
            return
        patch = status_patch(planned)
        job = await call(
            self._ops.patch_status,
            lambda timeout: self._api.patch_job_status(
                self._ops.job, patch, timeout=timeout, fresh=not read_first
            ),
            clock=self._clock,
            deadline=deadline,
            log=self._log,
            policy=self._policy,
        )
        self.plan_from(job)
        self._log.info(
            "condition written", type=self._type, status=planned["status"], reason=planned["reason"]
        )

    def _plan(self, condition: Condition) -> dict[str, str] | None:
        return planned_condition(self._conditions or [], self._type, condition, self._clock.wall())
