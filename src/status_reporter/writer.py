"""Recording the decided condition on the Job (README "How the condition is written").

The condition is planned from the latest copy of the Job the reporter holds (the
start-up read, then each patch's answer) and written with one strategic-merge
patch of ``jobs/status``, retried within the caller's deadline.
"""

from __future__ import annotations

import msgspec

from status_reporter.api import Api, Operations
from status_reporter.clock import Clock
from status_reporter.conditions import planned_condition, status_patch
from status_reporter.decision import Condition
from status_reporter.logs import Logger
from status_reporter.models import Job, JobCondition
from status_reporter.retry import RetryPolicy, call


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

    def hold(self, job: Job) -> None:
        """Keep ``job`` as the latest known copy to plan from."""
        self._conditions = job.status.conditions

    async def read_job(self, deadline: float) -> None:
        """Read the Job (retrying until ``deadline``) and keep it as the copy to plan from.

        Raises:
            KubeError: it could not be read (a 404 when the Job does not exist).
        """
        job = await call(
            self._ops.get_job,
            lambda timeout: self._api.get_job(timeout=timeout),
            clock=self._clock,
            deadline=deadline,
            log=self._log,
            policy=self._policy,
        )
        self.hold(job)

    async def _known_conditions(self, deadline: float, read_first: bool) -> list[JobCondition]:
        if self._conditions is None and read_first:
            await self.read_job(deadline)
        return self._conditions or []

    async def write(
        self, condition: Condition, *, deadline: float, read_first: bool = True
    ) -> None:
        """Record ``condition`` (nothing is sent when an identical one is already there).

        Without a copy of the Job, one is read first, unless ``read_first`` is False
        (a last attempt with little time: the patch alone, as if no condition existed).

        Raises:
            KubeError: it could not be written before ``deadline``.
        """
        conditions = await self._known_conditions(deadline, read_first)
        planned = planned_condition(conditions, self._type, condition, self._clock.wall())
        if planned is None:
            self._log.info("condition already recorded; nothing to write", type=self._type)
            return
        patch = status_patch(planned)
        job = await call(
            self._ops.patch_status,
            lambda timeout: self._api.patch_job_status(patch, timeout=timeout),
            clock=self._clock,
            deadline=deadline,
            log=self._log,
            policy=self._policy,
        )
        self.hold(job)
        self._log.info(
            "condition written", type=self._type, status=planned["status"], reason=planned["reason"]
        )
