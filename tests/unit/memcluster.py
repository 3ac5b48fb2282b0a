"""A stateful in-memory cluster behind the reporter's :class:`~status_reporter.api.protocol.Api`.

It keeps one Job and one Pod the way the API server does for what the reporter
uses: every change bumps ``resourceVersion``; a status patch merges conditions by
``type``; a watch delivers the Pod's changes after a resourceVersion; a deleted Pod
is ``DELETED`` on the watch and 404 on a read. On command it fails: every call
(``down``), one operation a number of times (``fail``), or every call hangs until
its timeout (``hang``, a black hole). Time is the test's clock.

It stands in for the API server in unit tests of the reporter's logic only; the
HTTP layer and the real server's behaviour are tested against a real
kube-apiserver in ``tests/integration``.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from status_reporter.api.protocol import (
    INITIAL_EVENTS_END,
    ApiError,
    PodEvent,
    Unreachable,
    WatchSilent,
)
from status_reporter.core.clocks import ServerTime
from status_reporter.core.models import (
    Container,
    ContainerState,
    ContainerStatus,
    Job,
    JobCondition,
    JobSpec,
    JobStatus,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodSpec,
    ResourceRule,
    RulesReviewStatus,
    Status,
)
from tests.unit.fakes import FakeClock

PROJECT_RULES = [
    ResourceRule(verbs=["get"], api_groups=["batch"], resources=["jobs"]),
    ResourceRule(verbs=["patch"], api_groups=["batch"], resources=["jobs/status"]),
    ResourceRule(verbs=["get", "watch"], api_groups=[""], resources=["pods"]),
    ResourceRule(verbs=["create"], api_groups=["events.k8s.io"], resources=["events"]),
]
REFERENCE_RULES = [
    ResourceRule(verbs=["get"], api_groups=["batch"], resources=["jobs"]),
    ResourceRule(verbs=["get", "update", "patch"], api_groups=["batch"], resources=["jobs/status"]),
    ResourceRule(verbs=["get", "list"], api_groups=[""], resources=["pods"]),
]


JOB_OWNER = OwnerReference(kind="Job", name="job-a", api_version="batch/v1", controller=True)


def make_pod(
    containers: tuple[str, ...] = ("adapter", "status-reporter"),
    init_containers: tuple[Container, ...] = (),
    owners: tuple[OwnerReference, ...] = (JOB_OWNER,),
) -> Pod:
    """A Pod with these containers, owned by Job job-a (as the Job controller makes it),
    and no status yet."""
    return Pod(
        metadata=ObjectMeta(name="pod-a", owner_references=list(owners)),
        spec=PodSpec(
            containers=[Container(name=name) for name in containers],
            init_containers=list(init_containers),
        ),
    )


class MemoryCluster:
    """One Job and its Pod, stored and changed as the API server would."""

    def __init__(
        self,
        clock: FakeClock,
        pod: Pod | None = None,
        *,
        rules: list[ResourceRule] | None = None,
        conditions: list[JobCondition] | None = None,
        active_deadline_seconds: int | None = None,
        start_time: str | None = None,
    ) -> None:
        self.clock = clock
        self._version = 100
        self.job = Job(
            metadata=ObjectMeta(name="job-a", uid="uid-job-a", resource_version=self._bump()),
            spec=JobSpec(active_deadline_seconds=active_deadline_seconds),
            status=JobStatus(conditions=list(conditions or []), start_time=start_time),
        )
        pod = pod or make_pod()
        self.pod: Pod | None = msgspec.structs.replace(
            pod, metadata=msgspec.structs.replace(pod.metadata, resource_version=self._bump())
        )
        self.rules = PROJECT_RULES if rules is None else rules
        self.review_incomplete = False
        self.calls: Counter[str] = Counter()
        # Per patch: whether it asked for a new connection.
        self.fresh_patches: list[bool] = []
        self.watch_versions: list[str] = []
        self.watch_timeouts: list[float] = []
        self.watch_initial_events: list[bool] = []
        # Watches asking for sendInitialEvents are refused (an older API server).
        self.no_initial_events = False
        # Watches opened without a resourceVersion send no initial event (a slow server).
        self.quiet_start = False
        # Every watch ends at once, with no event (a hostile server or proxy).
        self.empty_watches = False
        # Watches send events but never a bookmark (an API server without watch cache):
        # with nothing to send, one ends silent after its read timeout.
        self.silent_watches = False
        self.patches: list[Mapping[str, Any]] = []
        self.events: list[Mapping[str, Any]] = []
        self.down = False
        self.hang = False
        # How far the API server's clock is ahead of the node's (None: no Date header).
        self.server_skew: float | None = 0.0
        self.while_reading: Callable[[], Awaitable[None]] | None = None
        self._failures: dict[str, list[Exception]] = {}
        self._history: list[tuple[int, PodEvent]] = []
        self._watchers: list[asyncio.Queue[PodEvent | Exception]] = []

    # --- commands ---------------------------------------------------------------------

    def _bump(self) -> str:
        self._version += 1
        return str(self._version)

    def fail(self, operation: str, *errors: Exception) -> None:
        """The next calls of ``operation`` (get_job, get_pod, patch, review, watch) fail."""
        self._failures.setdefault(operation, []).extend(errors)

    def set_container(
        self, name: str, state: ContainerState, *, init: bool = False, notify: bool = True
    ) -> None:
        """A kubelet reports a container's state (a watch sees MODIFIED unless not ``notify``)."""
        assert self.pod is not None
        status = self.pod.status
        statuses = status.init_container_statuses if init else status.container_statuses
        others = [s for s in statuses if s.name != name]
        entry = ContainerStatus(name=name, state=state)
        new_status = (
            msgspec.structs.replace(status, init_container_statuses=[*others, entry])
            if init
            else msgspec.structs.replace(status, container_statuses=[*others, entry])
        )
        changed = msgspec.structs.replace(self.pod, status=new_status)
        if notify:
            self._change_pod(changed, "MODIFIED")
        else:
            self.pod = changed

    def delete_pod(self, *, requested_at: str | None = None) -> None:
        """The Pod is removed: DELETED on the watch, 404 on reads."""
        assert self.pod is not None
        meta = msgspec.structs.replace(
            self.pod.metadata, deletion_timestamp=requested_at, deletion_grace_period_seconds=0
        )
        self._change_pod(msgspec.structs.replace(self.pod, metadata=meta), "DELETED")
        self.pod = None

    def send_watch_event(self, event: PodEvent) -> None:
        """Every open watch receives ``event`` (an ERROR, say)."""
        for queue in self._watchers:
            queue.put_nowait(event)

    def break_watches(self, error: Exception | None = None) -> None:
        """Every open watch fails (a connection reset)."""
        for queue in self._watchers:
            queue.put_nowait(error or Unreachable("connection reset by peer"))

    def _change_pod(self, pod: Pod, kind: str) -> None:
        meta = msgspec.structs.replace(pod.metadata, resource_version=self._bump())
        self.pod = msgspec.structs.replace(pod, metadata=meta)
        event = PodEvent(kind, pod=self.pod)
        self._history.append((self._version, event))
        for queue in self._watchers:
            queue.put_nowait(event)

    def condition(self, condition_type: str = "Available") -> JobCondition | None:
        """The stored condition of ``condition_type``."""
        return next((c for c in self.job.status.conditions if c.type == condition_type), None)

    # --- the Api ----------------------------------------------------------------------

    def server_time(self) -> ServerTime | None:
        """The server's clock, ``server_skew`` ahead of the node's, in whole seconds as a
        Date header has it."""
        if self.server_skew is None:
            return None
        return ServerTime(math.floor(self.clock.wall() + self.server_skew), self.clock.now())

    async def _enter(self, operation: str, timeout: float) -> None:
        self.calls[operation] += 1
        await asyncio.sleep(0)
        if self.hang:
            await self.clock.sleep_until(self.clock.now() + timeout)
            raise Unreachable(f"no response within {timeout:g} s")
        if self.down:
            raise Unreachable("connection refused")
        pending = self._failures.get(operation)
        if pending:
            raise pending.pop(0)

    def _check_job(self, name: str) -> None:
        if name != self.job.metadata.name:
            raise ApiError(404, f'HTTP 404: jobs "{name}" not found')

    async def get_job(self, name: str, *, timeout: float) -> Job:
        """The stored Job."""
        await self._enter("get_job", timeout)
        self._check_job(name)
        return self.job

    async def get_pod(self, *, timeout: float) -> Pod:
        """The stored Pod, 404 once deleted; with ``while_reading`` set, the Pod as it was
        when the read began, after that hook ran (a read that raced a change)."""
        await self._enter("get_pod", timeout)
        if self.pod is None:
            raise ApiError(404, 'HTTP 404: pods "pod-a" not found')
        pod = self.pod
        hook, self.while_reading = self.while_reading, None
        if hook is not None:
            await hook()
        return pod

    async def patch_job_status(
        self, name: str, patch: Mapping[str, Any], *, timeout: float, fresh: bool = False
    ) -> Job:
        """Merge the patch's conditions by type, as the strategic merge does."""
        await self._enter("patch", timeout)
        self.fresh_patches.append(fresh)
        self._check_job(name)
        self.patches.append(patch)
        conditions = list(self.job.status.conditions)
        for entry in patch["status"]["conditions"]:
            new = msgspec.convert(entry, JobCondition)
            index = next((i for i, c in enumerate(conditions) if c.type == new.type), None)
            if index is None:
                conditions.append(new)
            else:
                conditions[index] = new
        self.set_conditions(conditions)
        return self.job

    def set_conditions(self, conditions: list[JobCondition]) -> None:
        """Another writer (or this one) changes the Job's conditions."""
        meta = msgspec.structs.replace(self.job.metadata, resource_version=self._bump())
        status = msgspec.structs.replace(self.job.status, conditions=conditions)
        self.job = msgspec.structs.replace(self.job, metadata=meta, status=status)

    async def create_event(self, event: Mapping[str, Any], *, timeout: float) -> None:
        """Keep the Event (refused without ``create`` on events.k8s.io events)."""
        await self._enter("event", timeout)
        allowed = any(
            ("create" in r.verbs or "*" in r.verbs)
            and ("events.k8s.io" in r.api_groups or "*" in r.api_groups)
            and ("events" in r.resources or "*" in r.resources)
            for r in self.rules
        )
        if not allowed:
            raise ApiError(403, "HTTP 403: events.events.k8s.io is forbidden")
        self.events.append(event)

    async def review_rules(self, *, timeout: float) -> RulesReviewStatus:
        """The configured rules."""
        await self._enter("review", timeout)
        return RulesReviewStatus(resource_rules=self.rules, incomplete=self.review_incomplete)

    @asynccontextmanager
    async def watch_pod(
        self,
        resource_version: str,
        *,
        timeout_seconds: int,
        read_timeout: float,
        initial_events: bool = False,
    ) -> AsyncIterator[AsyncIterator[PodEvent]]:
        """Events after ``resource_version`` (the current Pod as ADDED without one, then
        with ``initial_events`` the bookmark that ends them, unless ``no_initial_events``:
        a server that refuses the parameter)."""
        self.watch_versions.append(resource_version)
        self.watch_timeouts.append(read_timeout)
        self.watch_initial_events.append(initial_events)
        await self._enter("watch", read_timeout)
        if initial_events and self.no_initial_events:
            raise ApiError(422, "HTTP 422: sendInitialEvents is forbidden for watch")
        if self.empty_watches:
            # 200 and an empty body: the watch ends as soon as it opened.
            yield _nothing()
            return
        if not any(r for r in self.rules if "watch" in r.verbs or "*" in r.verbs):
            raise ApiError(403, 'HTTP 403: pods is forbidden: cannot watch resource "pods"')
        queue: asyncio.Queue[PodEvent | Exception] = asyncio.Queue()
        if resource_version:
            since = int(resource_version)
            if self._history and since < self._history[0][0] - 1:
                queue.put_nowait(PodEvent("ERROR", error=Status(code=410, message="too old")))
            for version, event in self._history:
                if version > since:
                    queue.put_nowait(event)
        elif not self.quiet_start:
            if self.pod is not None:
                queue.put_nowait(PodEvent("ADDED", pod=self.pod))
            if initial_events:
                end = ObjectMeta(
                    resource_version=str(self._version),
                    annotations={INITIAL_EVENTS_END: "true"},
                )
                queue.put_nowait(PodEvent("BOOKMARK", pod=Pod(metadata=end)))
        self._watchers.append(queue)
        try:
            yield _drain(queue, self._silence(read_timeout) if self.silent_watches else None)
        finally:
            self._watchers.remove(queue)

    def _silence(self, read_timeout: float) -> Callable[[], Awaitable[None]]:
        async def silent() -> None:
            await self.clock.sleep_until(self.clock.now() + read_timeout)
            raise WatchSilent(f"no watch event within {read_timeout:g} s")

        return silent


async def _nothing() -> AsyncIterator[PodEvent]:
    return
    yield  # an async generator that yields nothing


async def _drain(
    queue: asyncio.Queue[PodEvent | Exception],
    silence: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[PodEvent]:
    while True:
        if silence is not None and queue.empty():
            # The next item, or the silence's end (it raises), whichever comes first.
            waiting = asyncio.ensure_future(queue.get())
            silent = asyncio.ensure_future(silence())
            try:
                await asyncio.wait({waiting, silent}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                silent.cancel()
            if not waiting.done():
                waiting.cancel()
                silent.result()  # raises WatchSilent
            item = waiting.result()
        else:
            item = await queue.get()
        if isinstance(item, Exception):
            raise item
        yield item
