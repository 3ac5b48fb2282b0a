"""The Kubernetes API edge: reading the Job and Pod, watching the Pod, writing the
condition (SPEC §5, §7).

All API traffic goes through :class:`KubeCluster`, which wraps a lightkube
``AsyncClient``. Transient failures (connection errors, 429, 5xx) are retried with
exponential backoff and jitter, honouring ``Retry-After``, within a time budget;
other failures become a :class:`KubeError` that names the verb and resource.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar

import httpx2
import tenacity
from lightkube import ApiError, AsyncClient, ConfigError, KubeConfig
from lightkube.models.authorization_v1 import ResourceRule, SelfSubjectRulesReviewSpec
from lightkube.resources.authorization_v1 import SelfSubjectRulesReview
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from status_reporter.conditions import planned_condition, status_patch
from status_reporter.decision import Condition
from status_reporter.logs import Logger
from status_reporter.watch import Clock, ticks

_T = TypeVar("_T")

FIELD_MANAGER: Final = "status-reporter"
# Statuses that a retry can fix; everything else (400, 401, 403, 404, 409, 422...) is final.
_TRANSIENT: Final = frozenset({429, 500, 502, 503, 504})
_WATCH_BACKOFF_MAX: Final = 30.0


class KubeError(Exception):
    """An API call failed for good. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Operation:
    """One kind of API call, for error messages and permission checks."""

    verb: str
    group: str
    resource: str
    name: str
    namespace: str

    def describe(self) -> str:
        """Like ``get jobs/status "my-job" in namespace "ns"``."""
        return f'{self.verb} {self.resource} "{self.name}" in namespace "{self.namespace}"'


@dataclass(frozen=True, slots=True)
class Access:
    """What start-up learned about optional permissions."""

    watch_pods: bool


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff for failed API calls, for at most ``budget`` seconds in all.

    Transient failures wait ``initial`` doubling up to ``maximum`` seconds; a 409
    Conflict only means another writer won a race, so it is retried sooner
    (``conflict_initial`` doubling up to ``conflict_maximum``). Each wait is jittered
    between half and all of its value.
    """

    budget: float = 60.0
    initial: float = 0.5
    maximum: float = 10.0
    conflict_initial: float = 0.05
    conflict_maximum: float = 1.0


class Cluster(Protocol):
    """What the engine needs from the Kubernetes API."""

    async def read_job(self) -> Job:
        """Read the Job (fails fast when it is missing or forbidden)."""
        ...

    async def read_pod(self) -> Pod:
        """Read the Pod (fails fast when it is missing or forbidden)."""
        ...

    async def read_pod_once(self) -> Pod | None:
        """One quick read of the Pod, None on any failure."""
        ...

    async def check_access(self) -> Access:
        """Check the required permissions and learn the optional ones."""
        ...

    async def watch_pod(self, fallback_interval: float, on_pod: Callable[[Pod], None]) -> None:
        """Report every change of the Pod until cancelled (falls back to polling)."""
        ...

    async def poll_pod(self, interval: float, on_pod: Callable[[Pod], None]) -> None:
        """Read the Pod every ``interval`` seconds until cancelled."""
        ...

    async def write_condition(self, condition: Condition) -> bool:
        """Record ``condition`` on the Job; False when an identical one was there already."""
        ...

    async def report_config_error(self, line: str) -> None:
        """Best effort: record a ReporterConfigInvalid condition within a few seconds."""
        ...


def load_client(timeout: float = 10.0) -> AsyncClient:
    """Build the API client: in-cluster service account, else ``KUBECONFIG`` / ``~/.kube/config``.

    Raises:
        KubeError: no usable credentials were found.
    """
    try:
        config = KubeConfig.from_env()
        return AsyncClient(
            config=config, timeout=httpx2.Timeout(timeout), field_manager=FIELD_MANAGER
        )
    except (ConfigError, KeyError, OSError, ValueError) as exc:
        raise KubeError(f"cannot load Kubernetes credentials: {exc!r}") from None


def _status_code(exc: BaseException) -> int | None:
    if isinstance(exc, ApiError) and exc.status.code:
        return int(exc.status.code)
    if isinstance(exc, httpx2.HTTPStatusError):
        return exc.response.status_code
    return None


def _server_message(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        return str(exc.status.message or exc.status.reason or exc)
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code} {exc.response.reason_phrase}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """Connection problems, timeouts, 429 and 5xx are worth retrying."""
    if isinstance(exc, httpx2.TransportError):
        return True
    return _status_code(exc) in _TRANSIENT


def retry_after(exc: BaseException) -> float | None:
    """The server's ``Retry-After`` in seconds, when it sent one (delta-seconds form)."""
    response = exc.response if isinstance(exc, httpx2.HTTPStatusError) else None
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _backoff(policy: RetryPolicy, attempt: int, exc: BaseException | None) -> float:
    return _jittered(policy.initial, policy.maximum, attempt, exc)


def _conflict_backoff(policy: RetryPolicy, attempt: int) -> float:
    return _jittered(policy.conflict_initial, policy.conflict_maximum, attempt, None)


def _jittered(initial: float, maximum: float, attempt: int, exc: BaseException | None) -> float:
    ceiling = min(maximum, initial * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
    server = retry_after(exc) if exc is not None else None
    return max(delay, server) if server is not None else delay


def _forbidden_hint(op: Operation) -> str:
    return (
        f"; the Pod's service account needs '{op.verb}' on '{op.resource}' "
        f"(API group '{op.group or 'core'}') in namespace '{op.namespace}'"
    )


def _rule_allows(rule: ResourceRule, op: Operation) -> bool:
    resources = set(rule.resources or [])
    subresource = op.resource.partition("/")[2]
    resource_ok = (
        op.resource in resources
        or "*" in resources
        or (bool(subresource) and f"*/{subresource}" in resources)
    )
    names = rule.resourceNames or []
    groups = rule.apiGroups or []
    return (
        resource_ok
        and (op.group in groups or "*" in groups)
        and (op.verb in rule.verbs or "*" in rule.verbs)
        and (not names or op.name in names)
    )


class KubeCluster:
    """:class:`Cluster` over a lightkube ``AsyncClient``, for one Job and its Pod."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        job: str,
        namespace: str,
        pod: str,
        condition_type: str,
        clock: Clock,
        log: Logger,
        retry: RetryPolicy | None = None,
        watch_timeout: int = 600,
    ) -> None:
        self._client = client
        self._job = job
        self._namespace = namespace
        self._pod = pod
        self._condition_type = condition_type
        self._clock = clock
        self._log = log
        self._retry = retry or RetryPolicy()
        self._watch_timeout = watch_timeout
        self._pod_version: str | None = None
        self.get_job = Operation("get", "batch", "jobs", job, namespace)
        self.patch_status = Operation("patch", "batch", "jobs/status", job, namespace)
        self.get_pod = Operation("get", "", "pods", pod, namespace)
        self.watch_pods = Operation("watch", "", "pods", pod, namespace)

    async def _call(
        self, op: Operation, call: Callable[[], Awaitable[_T]], budget: float | None = None
    ) -> _T:
        """Run ``call``, retrying transient failures within the budget; raise KubeError."""
        start = self._clock.now()
        limit = self._retry.budget if budget is None else budget

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            remaining = limit - (self._clock.now() - start)
            return max(0.0, min(_backoff(self._retry, state.attempt_number, exc), remaining))

        def stop(state: tenacity.RetryCallState) -> bool:
            return self._clock.now() - start >= limit

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self._log.warning(
                "API call failed, retrying",
                operation=op.describe(),
                attempt=state.attempt_number,
                error=_server_message(exc) if exc else "",
                retry_in=round(state.upcoming_sleep, 3),
            )

        async def sleep(seconds: float) -> None:
            await self._clock.sleep_until(self._clock.now() + seconds)

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(is_transient),
            wait=wait,
            stop=stop,
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await call()
        except (httpx2.HTTPError, ApiError) as exc:
            raise self._error(op, exc) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _error(self, op: Operation, exc: BaseException) -> KubeError:
        status = _status_code(exc)
        detail = _server_message(exc)
        if status == 403:
            return KubeError(
                f"forbidden: cannot {op.describe()}: {detail}{_forbidden_hint(op)}", 403
            )
        if status == 404:
            return KubeError(f"not found: cannot {op.describe()}: {detail}", 404)
        if status is None:
            return KubeError(f"cannot {op.describe()}: API server unreachable: {detail}")
        return KubeError(f"cannot {op.describe()}: HTTP {status}: {detail}", status)

    async def read_job(self) -> Job:
        """Read the Job, retrying transient failures."""
        return await self._call(
            self.get_job, lambda: self._client.get(Job, self._job, namespace=self._namespace)
        )

    async def read_pod(self) -> Pod:
        """Read the Pod, retrying transient failures; remembers its resourceVersion."""
        pod = await self._call(
            self.get_pod, lambda: self._client.get(Pod, self._pod, namespace=self._namespace)
        )
        self._pod_version = pod.metadata.resourceVersion if pod.metadata else None
        return pod

    async def read_pod_once(self) -> Pod | None:
        """One read of the Pod with a short deadline; None on any failure."""
        try:
            return await asyncio.wait_for(
                self._client.get(Pod, self._pod, namespace=self._namespace), timeout=2.0
            )
        except (TimeoutError, httpx2.HTTPError, ApiError) as exc:
            self._log.debug("final Pod read failed", error=_server_message(exc))
            return None

    async def check_access(self) -> Access:
        """Check ``patch jobs/status`` (required) and ``watch pods`` (optional) with one
        SelfSubjectRulesReview. When the review is unavailable or incomplete, permissions
        are assumed and the calls themselves will tell."""
        review = SelfSubjectRulesReview(spec=SelfSubjectRulesReviewSpec(namespace=self._namespace))
        op = Operation("create", "authorization.k8s.io", "selfsubjectrulesreviews", "", "")
        try:
            result = await self._call(op, lambda: self._client.create(review))
        except KubeError as exc:
            self._log.debug("permission review unavailable; assuming access", error=str(exc))
            return Access(watch_pods=True)
        status = result.status
        rules: Sequence[ResourceRule] = status.resourceRules if status else []
        incomplete = bool(status.incomplete) if status else True

        def allowed(op: Operation) -> bool:
            return incomplete or any(_rule_allows(rule, op) for rule in rules)

        if not allowed(self.patch_status):
            raise KubeError(
                f"forbidden: missing permission to {self.patch_status.describe()}"
                f"{_forbidden_hint(self.patch_status)}",
                403,
            )
        watch = allowed(self.watch_pods)
        if not watch:
            self._log.debug("no 'watch' on pods: polling the Pod instead")
        return Access(watch_pods=watch)

    async def poll_pod(self, interval: float, on_pod: Callable[[Pod], None]) -> None:
        """Read the Pod every ``interval`` seconds until cancelled; failures are logged."""
        async for _ in ticks(self._clock, interval):
            try:
                pod = await self._client.get(Pod, self._pod, namespace=self._namespace)
            except (httpx2.HTTPError, ApiError) as exc:
                self._log.warning(
                    "cannot read the Pod",
                    operation=self.get_pod.describe(),
                    error=_server_message(exc),
                )
                continue
            on_pod(pod)

    async def watch_pod(self, fallback_interval: float, on_pod: Callable[[Pod], None]) -> None:
        """Watch the Pod (field selector on its name) until cancelled.

        A broken watch is re-established after a backoff, with a Pod read in between
        so no change is missed; a forbidden watch turns into polling every
        ``fallback_interval`` seconds for good.
        """
        failures = 0
        while True:
            try:
                async for _, pod in self._client.watch(
                    Pod,
                    namespace=self._namespace,
                    fields={"metadata.name": self._pod},
                    resource_version=self._pod_version,
                    server_timeout=self._watch_timeout,
                ):
                    failures = 0
                    if pod.metadata is not None:
                        self._pod_version = pod.metadata.resourceVersion
                    on_pod(pod)
            except (httpx2.HTTPError, ApiError) as exc:
                status = _status_code(exc)
                if status in (401, 403):
                    self._log.debug(
                        "cannot watch the Pod, polling it instead", error=_server_message(exc)
                    )
                    await self.poll_pod(fallback_interval, on_pod)
                    return
                failures += 1
                if status == 410:
                    self._pod_version = None
                delay = min(_WATCH_BACKOFF_MAX, 0.5 * 2 ** (failures - 1))
                self._log.warning(
                    "Pod watch broke; reading the Pod and watching again",
                    error=_server_message(exc),
                    retry_in=delay,
                )
                await self._clock.sleep_until(self._clock.now() + delay)
                pod_now = await self.read_pod_once()
                if pod_now is not None:
                    if pod_now.metadata is not None:
                        self._pod_version = pod_now.metadata.resourceVersion
                    on_pod(pod_now)

    async def write_condition(self, condition: Condition, budget: float | None = None) -> bool:
        """Record ``condition`` with a strategic-merge patch of ``jobs/status``.

        The patch carries the resourceVersion just read, so a concurrent writer makes
        it fail with 409; then the Job is read again and the patch retried. Returns
        False when an identical condition is already present (nothing written).

        Raises:
            KubeError: the condition could not be written within the budget.
        """
        limit = self._retry.budget if budget is None else budget
        start = self._clock.now()
        attempt = 0
        while True:
            remaining = max(0.0, limit - (self._clock.now() - start))
            job = await self._call(
                self.get_job,
                lambda: self._client.get(Job, self._job, namespace=self._namespace),
                remaining,
            )
            conditions = _conditions(job)
            planned = planned_condition(
                conditions, self._condition_type, condition, datetime.now(UTC)
            )
            if planned is None:
                self._log.info(
                    "condition already recorded; nothing to write", type=self._condition_type
                )
                return False
            version = job.metadata.resourceVersion if job.metadata else None
            body = status_patch(version or "", planned)
            remaining = max(0.0, limit - (self._clock.now() - start))
            try:
                await self._call(
                    self.patch_status,
                    functools.partial(
                        self._client.patch,
                        Job.Status,
                        self._job,
                        body,
                        namespace=self._namespace,
                        patch_type=PatchType.STRATEGIC,
                    ),
                    remaining,
                )
            except KubeError as exc:
                attempt += 1
                remaining = limit - (self._clock.now() - start)
                if exc.status != 409 or remaining <= 0:
                    raise
                self._log.info("the Job changed while writing; reading it again", attempt=attempt)
                delay = min(_conflict_backoff(self._retry, attempt), remaining)
                await self._clock.sleep_until(self._clock.now() + delay)
                continue
            self._log.info(
                "condition written",
                type=self._condition_type,
                status=planned["status"],
                reason=planned["reason"],
            )
            return True

    async def report_config_error(self, line: str) -> None:
        """Best effort, within 5 seconds: record ``ReporterConfigInvalid`` with ``line``."""
        condition = Condition("False", "ReporterConfigInvalid", line)
        try:
            await asyncio.wait_for(self.write_condition(condition, budget=4.0), timeout=5.0)
        except (KubeError, TimeoutError) as exc:
            self._log.warning("could not record the configuration error on the Job", error=str(exc))


def _conditions(job: Job) -> list[Mapping[str, Any]]:
    if job.status is None or not job.status.conditions:
        return []
    return [c.to_dict() for c in job.status.conditions]
