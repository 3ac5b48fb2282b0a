"""Test doubles for the edges: a manual clock, API objects and a client on a mock transport.

The API client is the real lightkube client; only its HTTP transport is replaced
(httpx2.MockTransport), which is the client's documented test hook.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.config.models import Cluster as ClusterConfig
from lightkube.config.models import User
from lightkube.resources.core_v1 import Pod

from status_reporter import logs
from status_reporter.kube import Access, KubeCluster, RetryPolicy

Handler = (
    Callable[[httpx2.Request], httpx2.Response]
    | Callable[[httpx2.Request], Coroutine[None, None, httpx2.Response]]
)


class FakeClock:
    """A monotonic clock that moves only when told to.

    With ``autojump`` every sleep returns at once with the clock moved to its end
    (for sequential code such as retries); otherwise sleepers wait for
    :meth:`advance`.
    """

    def __init__(self, start: float = 1000.0, autojump: bool = False) -> None:
        self._now = start
        self._autojump = autojump
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        self.sleeps.append(deadline - self._now)
        if self._autojump:
            self._now = max(self._now, deadline)
            await asyncio.sleep(0)
            return
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (deadline, future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    def next_deadline(self) -> float | None:
        pending = [deadline for deadline, future in self._sleepers if not future.done()]
        return min(pending) if pending else None

    def _wake_due(self) -> None:
        for deadline, future in list(self._sleepers):
            if deadline <= self._now and not future.done():
                future.set_result(None)

    async def advance(self, seconds: float) -> None:
        """Move the clock forward, waking every sleeper on the way in order."""
        target = self._now + seconds
        while True:
            await settle()
            upcoming = self.next_deadline()
            if upcoming is None or upcoming > target:
                break
            self._now = max(self._now, upcoming)
            self._wake_due()
        self._now = target
        self._wake_due()
        await settle()


async def settle(rounds: int = 20) -> None:
    """Let every ready task run until the loop is quiet."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def status(
    code: int, reason: str, message: str, headers: dict[str, str] | None = None
) -> httpx2.Response:
    """A Kubernetes Status error response."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    return httpx2.Response(code, json=body, headers=headers)


def job(
    resource_version: str = "100", conditions: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "job-a", "namespace": "ns-a", "resourceVersion": resource_version},
        "spec": {"template": {"spec": {"containers": [{"name": "adapter", "image": "a"}]}}},
        "status": {"conditions": conditions or []},
    }


def container_status(
    name: str, state: dict[str, Any], last_state: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "image": "example/" + name,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": state,
        "lastState": last_state or {},
    }


def pod(
    containers: list[str] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    resource_version: str = "200",
) -> dict[str, Any]:
    names = ["adapter", "status-reporter"] if containers is None else containers
    spec: dict[str, Any] = {"containers": [{"name": n, "image": "example/" + n} for n in names]}
    if init_containers:
        spec["initContainers"] = init_containers
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod-a", "namespace": "ns-a", "resourceVersion": resource_version},
        "spec": spec,
        "status": {"containerStatuses": statuses or []},
    }


def running(name: str = "adapter") -> dict[str, Any]:
    return container_status(name, {"running": {"startedAt": "2026-11-26T10:00:00Z"}})


def terminated(
    name: str = "adapter", exit_code: int = 1, reason: str = "Error", message: str = ""
) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code, "reason": reason}
    if message:
        state["message"] = message
    return container_status(name, {"terminated": state})


def rules_review(rules: list[dict[str, Any]], incomplete: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": "ns-a"},
        "status": {"resourceRules": rules, "nonResourceRules": [], "incomplete": incomplete},
    }


PROJECT_RULES = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]},
    {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch"]},
]


def json_body(request: httpx2.Request) -> Any:
    return json.loads(request.content)


def make_client(handler: Handler) -> AsyncClient:
    config = KubeConfig.from_one(
        cluster=ClusterConfig(server="https://kube.test"),
        user=User(token="secret-token"),
        namespace="ns-a",
    )
    return AsyncClient(config=config, transport=httpx2.MockTransport(handler))


def make_cluster(handler: Handler, clock: FakeClock, budget: float = 60.0) -> KubeCluster:
    return KubeCluster(
        make_client(handler),
        job="job-a",
        namespace="ns-a",
        pod="pod-a",
        condition_type="Available",
        clock=clock,
        log=logs.get_logger(),
        retry=RetryPolicy(budget=budget),
    )


class FakeCluster:
    """An in-memory :class:`status_reporter.kube.Cluster` for engine tests.

    Tests push Pod updates into ``updates``; whether the engine watches or polls,
    the update is delivered the same way, and ``pod_mode`` tells which was used.
    """

    def __init__(
        self,
        pod_object: dict[str, Any],
        *,
        watch_pods: bool = True,
        start_error: Exception | None = None,
        write_error: Exception | None = None,
    ) -> None:
        self._pod = Pod.from_dict(pod_object)
        self._watch_pods = watch_pods
        self._start_error = start_error
        self._write_error = write_error
        self.updates: asyncio.Queue[Any] = asyncio.Queue()
        self.final_pod: Any = None
        self.pod_mode = ""
        self.written: list[Any] = []
        self.config_errors: list[str] = []

    def push(self, pod_object: dict[str, Any]) -> None:
        self.updates.put_nowait(Pod.from_dict(pod_object))

    async def read_job(self) -> Any:
        if self._start_error is not None:
            raise self._start_error
        return None

    async def read_pod(self) -> Any:
        return self._pod

    async def read_pod_once(self) -> Any:
        return self.final_pod

    async def check_access(self) -> Any:
        return Access(watch_pods=self._watch_pods)

    async def _deliver(self, on_pod: Callable[[Any], None]) -> None:
        while True:
            on_pod(await self.updates.get())

    async def watch_pod(self, fallback_interval: float, on_pod: Callable[[Any], None]) -> None:
        self.pod_mode = "watch"
        await self._deliver(on_pod)

    async def poll_pod(self, interval: float, on_pod: Callable[[Any], None]) -> None:
        self.pod_mode = f"poll every {interval:g}s"
        await self._deliver(on_pod)

    async def write_condition(self, condition: Any) -> bool:
        if self._write_error is not None:
            raise self._write_error
        self.written.append(condition)
        return True

    async def report_config_error(self, line: str) -> None:
        self.config_errors.append(line)
