"""Start-up: the Pod, its Job, the adapter and the permissions, checked before anything
is watched (README "Configuration" and "RBAC").

The permissions are reviewed first: they tell whether the Pod will be watched, and then
its state is taken from that watch rather than from a GET before it. The Pod is read
next (by the Pod monitor, its only reader): it names the Job when ``JOB_NAME`` is unset
(its controller ``ownerReference``), and the condition writer is built once the Job is
named. The Job must exist, and its copy is what the condition is
planned from. A missing Pod or adapter container is a configuration error reported at
once, not after the timeout. When a stop cuts start-up short, a Pod read since may
still teach the adapter.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Final

import msgspec

from status_reporter.api.access import check_access, may_watch_pods, review_rules
from status_reporter.api.protocol import Api, Operations
from status_reporter.api.retry import MIN_ATTEMPT_SECONDS, TRANSIENT_STATUSES, KubeError, call
from status_reporter.api.writer import FORBIDDEN_GRACE_SECONDS, ConditionWriter
from status_reporter.base.clock import Clock
from status_reporter.base.logs import Logger, carried
from status_reporter.base.tasks import Cut, Interrupt
from status_reporter.core.config import Config, ConfigError, MonitorMode
from status_reporter.core.models import Job, Pod, RulesReviewStatus
from status_reporter.core.pods import find_adapter, has_container, is_native_sidecar, owner_job
from status_reporter.monitors.pod import PodMonitor

# Condition types owned by the Job controller (batch/v1 JobConditionType).
JOB_CONTROLLER_CONDITIONS: Final = frozenset(
    {"Complete", "Failed", "Suspended", "FailureTarget", "SuccessCriteriaMet"}
)
# The permission review is optional: do not wait long for it.
REVIEW_SECONDS: Final = 10.0


class StartupFacts(msgspec.Struct, frozen=True):
    """What start-up learned: the Pod and the Job as read, the adapter, the sidecar mode,
    and what the permissions allow."""

    pod: Pod
    job: Job
    adapter: str
    native_sidecar: bool
    watch_pods: bool
    create_events: bool
    patch_confirmed: bool


class Startup:
    """Start-up for one Pod. :attr:`ops` names its Job once that is known, and
    :attr:`writer` writes conditions on it (None until then)."""

    def __init__(
        self, config: Config, api: Api, pods: PodMonitor, *, clock: Clock, log: Logger
    ) -> None:
        self._config = config
        self._api = api
        self._pods = pods
        self._clock = clock
        self._log = log
        # Without JOB_NAME the Job is "" until the Pod has named it.
        self.ops = Operations.of(config.job_name, config.pod_name, config.job_namespace)
        self.writer: ConditionWriter | None = None
        if config.job_name:
            self.writer = self._writer()
        # Whether the reporter is a native sidecar, when a stop cut start-up short.
        self.native_sidecar = False

    def _writer(self) -> ConditionWriter:
        return ConditionWriter(
            self._api, self.ops, self._config.condition_type, clock=self._clock, log=self._log
        )

    async def run(self, deadline: float) -> StartupFacts:
        """Review the permissions, read the Pod (from the watch when it will be watched)
        and the Job, find the adapter, check the permissions.

        Raises:
            ConfigError: no such Pod, no Job to report on, no such adapter container.
            KubeError: the Job is missing, ``patch`` on its status is not granted, or
                the API could not be reached before ``deadline``.
        """
        config = self._config
        # First, since it tells whether the Pod may be watched: a watch that would be
        # refused is never tried.
        review, unanswered = await self._review(deadline)
        watch = config.monitor_mode is MonitorMode.AUTO and may_watch_pods(review, self.ops)
        pod, watch = await self._read_pod(deadline, watch=watch)
        self._name_job(pod)
        # The Job must exist; its copy is what the condition is planned from.
        ops = self.ops
        job = await call(
            ops.get_job,
            lambda timeout: self._api.get_job(ops.job, timeout=timeout),
            clock=self._clock,
            deadline=deadline,
            log=self._log,
        )
        # From here on every line carries the Job's correlation (README "Logs").
        self._log.bind(**carried(config.log_context, job.metadata, pod.metadata))
        adapter = find_adapter(pod, config.adapter_container_name, config.reporter_container_name)
        self._warn_about(pod)
        if unanswered:
            # The API answers now: an outage from the start leaves nothing assumed.
            review, _ = await self._review(deadline)
            watch = watch and may_watch_pods(review, ops)
        access = check_access(review, ops, log=self._log)
        return StartupFacts(
            pod=pod,
            job=job,
            adapter=adapter,
            native_sidecar=is_native_sidecar(pod, config.reporter_container_name),
            watch_pods=watch,
            create_events=access.create_events,
            patch_confirmed=access.patch_confirmed,
        )

    def plan_write(self, facts: StartupFacts) -> None:
        """Plan the write from the Job as start-up read it, and retry a 403 briefly when
        the review confirmed the permission to patch."""
        assert self.writer is not None  # start-up named the Job
        self.writer.plan_from(facts.job)
        if facts.patch_confirmed:
            self.writer.trust_permission(FORBIDDEN_GRACE_SECONDS)

    async def finish(
        self, starting: Awaitable[StartupFacts | Cut], deadline: float, stop: Interrupt
    ) -> StartupFacts | Cut:
        """Start-up's outcome, after a verdict came first: ``starting`` had until the
        wait's end, the write has until ``deadline``; when the API stayed unreachable
        that long, start-up runs once more until ``deadline`` (a stop cuts it short).

        Raises:
            ConfigError: as :meth:`run`.
            KubeError: as :meth:`run`.
        """
        try:
            return await starting
        except KubeError as exc:
            if exc.status is not None and exc.status not in TRANSIENT_STATUSES:
                raise
            if deadline - self._clock.now() < 2 * MIN_ATTEMPT_SECONDS:
                raise
        return await stop.cut(self.run(deadline))

    def learn_after_stop(self, pod: Pod) -> str | None:
        """A stop cut start-up short: what a Pod read since teaches (the Job, the sidecar
        mode); the adapter's name, or None when the Pod does not tell."""
        config = self._config
        self.native_sidecar = is_native_sidecar(pod, config.reporter_container_name)
        try:
            self._name_job(pod)
            return find_adapter(pod, config.adapter_container_name, config.reporter_container_name)
        except ConfigError:
            return None

    async def _review(self, deadline: float) -> tuple[RulesReviewStatus | None, bool]:
        """The permission review (None when unavailable: access is assumed), and whether
        it got no answer at all (worth asking again once the API answers)."""
        try:
            review = await review_rules(
                self._api,
                clock=self._clock,
                deadline=min(deadline, self._clock.now() + REVIEW_SECONDS),
                log=self._log,
            )
        except KubeError as exc:
            self._log.debug("permission review unavailable; assuming access", error=str(exc))
            return None, exc.status is None or exc.status in TRANSIENT_STATUSES
        return review, False

    async def _read_pod(self, deadline: float, *, watch: bool) -> tuple[Pod, bool]:
        config = self._config
        try:
            return await self._pods.read_at_start(deadline, watch=watch)
        except KubeError as exc:
            if exc.status != 404:
                raise
            raise ConfigError(
                "POD_NAME", config.pod_name, f"no such Pod in namespace {config.job_namespace}"
            ) from None

    def _name_job(self, pod: Pod) -> None:
        """Name the Job: ``JOB_NAME``, or else the Pod's owner.

        Raises:
            ConfigError: ``JOB_NAME`` is unset and no Job owns the Pod.
        """
        owner = owner_job(pod)
        configured = self._config.job_name
        if configured:
            if owner is not None and owner != configured:
                self._log.warning(
                    "JOB_NAME differs from the Job that owns this Pod; using JOB_NAME",
                    job_name=configured,
                    owner=owner,
                )
            return
        if owner is None:
            raise ConfigError(
                "JOB_NAME",
                None,
                f"required: Pod {pod.metadata.name} is not owned by a Job to take the name from",
            )
        if self.writer is None:
            config = self._config
            self.ops = Operations.of(owner, config.pod_name, config.job_namespace)
            self.writer = self._writer()
            self._log.bind(job=owner)
            self._log.info("reporting on the Job that owns this Pod")

    def _warn_about(self, pod: Pod) -> None:
        config = self._config
        if not has_container(pod, config.reporter_container_name):
            self._log.warning(
                "REPORTER_CONTAINER_NAME is not a container of this Pod; "
                "set it so the reporter is never taken for the adapter",
                reporter_container=config.reporter_container_name,
            )
        if config.condition_type in JOB_CONTROLLER_CONDITIONS:
            self._log.warning(
                "CONDITION_TYPE is a condition the Job controller itself manages; "
                "writing it can change how the Job ends",
                condition_type=config.condition_type,
            )
