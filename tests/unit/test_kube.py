"""SPEC §5 and §7 at the HTTP level: what the client sends and how it handles answers.

The real lightkube client runs over an httpx2 MockTransport; the clock is fake,
so backoff is checked without sleeping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from lightkube.resources.core_v1 import Pod

from status_reporter.decision import Condition
from status_reporter.kube import KubeError, RetryPolicy, _backoff, is_transient, retry_after
from tests.unit.fakes import (
    PROJECT_RULES,
    FakeClock,
    job,
    json_body,
    make_cluster,
    pod,
    rules_review,
    running,
    status,
    terminated,
)

WANTED = Condition("True", "ValidationPassed", "all good")
JOB_PATH = "/apis/batch/v1/namespaces/ns-a/jobs/job-a"
STATUS_PATH = JOB_PATH + "/status"


class Api:
    """Answers requests from a script of responses per (method, path)."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.script: dict[tuple[str, str], list[Callable[[httpx2.Request], httpx2.Response]]] = {}

    def on(
        self,
        method: str,
        path: str,
        *responses: httpx2.Response | Callable[[httpx2.Request], httpx2.Response],
    ) -> None:
        self.script.setdefault((method, path), []).extend(
            r if callable(r) else (lambda _req, r=r: r)  # type: ignore[misc]
            for r in responses
        )

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        queue = self.script.get((request.method, request.url.path))
        if not queue:
            return status(500, "Unexpected", f"unscripted {request.method} {request.url.path}")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(request)

    def calls(self, method: str, path: str) -> list[httpx2.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]


def ok(body: dict[str, Any]) -> httpx2.Response:
    return httpx2.Response(200, json=body)


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(autojump=True)


# --- writing the condition ------------------------------------------------------------


async def test_patch_is_strategic_merge_on_status_with_resource_version(
    api: Api, clock: FakeClock
) -> None:
    api.on("GET", JOB_PATH, ok(job("100", [{"type": "Complete", "status": "True"}])))
    api.on("PATCH", STATUS_PATH, ok(job("101")))
    assert await make_cluster(api, clock).write_condition(WANTED) is True
    (patch,) = api.calls("PATCH", STATUS_PATH)
    assert patch.headers["content-type"] == "application/strategic-merge-patch+json"
    body = json_body(patch)
    assert body["metadata"] == {"resourceVersion": "100"}
    (condition,) = body["status"]["conditions"]
    assert {k: condition[k] for k in ("type", "status", "reason", "message")} == {
        "type": "Available",
        "status": "True",
        "reason": "ValidationPassed",
        "message": "all good",
    }
    assert condition["lastTransitionTime"].endswith("Z")
    assert patch.headers["authorization"] == "Bearer secret-token"
    assert not api.calls("PUT", JOB_PATH)
    assert not api.calls("PUT", STATUS_PATH)


async def test_identical_condition_is_not_written(api: Api, clock: FakeClock) -> None:
    current = {
        "type": "Available",
        "status": "True",
        "reason": "ValidationPassed",
        "message": "all good",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    api.on("GET", JOB_PATH, ok(job("100", [current])))
    assert await make_cluster(api, clock).write_condition(WANTED) is False
    assert not api.calls("PATCH", STATUS_PATH)


async def test_same_status_keeps_transition_time(api: Api, clock: FakeClock) -> None:
    current = {
        "type": "Available",
        "status": "True",
        "reason": "Old",
        "message": "m",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    api.on("GET", JOB_PATH, ok(job("100", [current])))
    api.on("PATCH", STATUS_PATH, ok(job("101")))
    await make_cluster(api, clock).write_condition(WANTED)
    (condition,) = json_body(api.calls("PATCH", STATUS_PATH)[0])["status"]["conditions"]
    assert condition["lastTransitionTime"] == "2026-01-01T00:00:00Z"


async def test_conflict_reads_again_and_retries_with_new_version(
    api: Api, clock: FakeClock
) -> None:
    api.on("GET", JOB_PATH, ok(job("100")), ok(job("105")))
    api.on(
        "PATCH",
        STATUS_PATH,
        status(409, "Conflict", "the object has been modified"),
        ok(job("106")),
    )
    assert await make_cluster(api, clock).write_condition(WANTED) is True
    versions = [
        json_body(r)["metadata"]["resourceVersion"] for r in api.calls("PATCH", STATUS_PATH)
    ]
    assert versions == ["100", "105"]
    assert len(api.calls("GET", JOB_PATH)) == 2


async def test_conflict_that_never_ends_gives_up_within_budget(api: Api, clock: FakeClock) -> None:
    api.on("GET", JOB_PATH, ok(job("100")))
    api.on("PATCH", STATUS_PATH, status(409, "Conflict", "modified"))
    start = clock.now()
    with pytest.raises(KubeError) as info:
        await make_cluster(api, clock).write_condition(WANTED)
    assert info.value.status == 409
    assert 60.0 <= clock.now() - start <= 61.0


@pytest.mark.parametrize(
    "failure",
    [
        status(500, "InternalError", "etcd leader changed"),
        status(503, "ServiceUnavailable", "try later"),
        status(429, "TooManyRequests", "slow down"),
        httpx2.Response(502, text="bad gateway", headers={"content-type": "text/plain"}),
    ],
)
async def test_transient_failures_are_retried(
    api: Api, clock: FakeClock, failure: httpx2.Response
) -> None:
    api.on("GET", JOB_PATH, ok(job("100")))
    api.on("PATCH", STATUS_PATH, failure, failure, ok(job("101")))
    assert await make_cluster(api, clock).write_condition(WANTED) is True
    assert len(api.calls("PATCH", STATUS_PATH)) == 3


async def test_connection_errors_are_retried(api: Api, clock: FakeClock) -> None:
    attempts = []

    def flaky(request: httpx2.Request) -> httpx2.Response:
        attempts.append(request)
        if len(attempts) < 3:
            raise httpx2.ConnectError("connection refused", request=request)
        return ok(job("100"))

    api.on("GET", JOB_PATH, flaky)
    api.on("PATCH", STATUS_PATH, ok(job("101")))
    assert await make_cluster(api, clock).write_condition(WANTED) is True
    assert len(attempts) == 3


async def test_retry_after_is_honoured(api: Api, clock: FakeClock) -> None:
    api.on("GET", JOB_PATH, ok(job("100")))
    api.on(
        "PATCH",
        STATUS_PATH,
        status(429, "TooManyRequests", "slow", {"Retry-After": "7"}),
        ok(job("101")),
    )
    await make_cluster(api, clock).write_condition(WANTED)
    assert max(clock.sleeps) >= 7.0


async def test_backoff_grows_exponentially_with_jitter(api: Api, clock: FakeClock) -> None:
    api.on("GET", JOB_PATH, *([status(503, "ServiceUnavailable", "x")] * 6), ok(job("100")))
    api.on("PATCH", STATUS_PATH, ok(job("101")))
    await make_cluster(api, clock).write_condition(WANTED)
    assert len(clock.sleeps) == 6
    for attempt, slept in enumerate(clock.sleeps, start=1):
        ceiling = min(10.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= slept <= ceiling


async def test_transient_failures_give_up_after_the_budget(api: Api, clock: FakeClock) -> None:
    api.on("GET", JOB_PATH, status(503, "ServiceUnavailable", "down"))
    start = clock.now()
    with pytest.raises(KubeError) as info:
        await make_cluster(api, clock).write_condition(WANTED)
    assert info.value.status == 503
    assert clock.now() - start == pytest.approx(60.0)
    assert not api.calls("PATCH", STATUS_PATH)


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
async def test_client_errors_are_not_retried(api: Api, clock: FakeClock, code: int) -> None:
    api.on("GET", JOB_PATH, ok(job("100")))
    api.on("PATCH", STATUS_PATH, status(code, "Refused", "no"))
    with pytest.raises(KubeError) as info:
        await make_cluster(api, clock).write_condition(WANTED)
    assert info.value.status == code
    assert len(api.calls("PATCH", STATUS_PATH)) == 1
    assert clock.sleeps == []


async def test_forbidden_names_verb_and_resource(api: Api, clock: FakeClock) -> None:
    api.on("GET", JOB_PATH, ok(job("100")))
    api.on("PATCH", STATUS_PATH, status(403, "Forbidden", 'jobs.batch "job-a" is forbidden'))
    with pytest.raises(KubeError) as info:
        await make_cluster(api, clock).write_condition(WANTED)
    text = str(info.value)
    assert text.startswith('forbidden: cannot patch jobs/status "job-a" in namespace "ns-a"')
    assert "needs 'patch' on 'jobs/status' (API group 'batch')" in text
    assert "secret-token" not in text


def test_transient_classification() -> None:
    request = httpx2.Request("GET", "https://kube.test/")
    assert is_transient(httpx2.ConnectError("x", request=request))
    assert is_transient(httpx2.ReadTimeout("x", request=request))
    response = httpx2.Response(429, headers={"Retry-After": "2"}, request=request)
    error = httpx2.HTTPStatusError("x", request=request, response=response)
    assert is_transient(error)
    assert retry_after(error) == 2.0
    dated = httpx2.Response(
        503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, request=request
    )
    assert retry_after(httpx2.HTTPStatusError("x", request=request, response=dated)) is None
    assert not is_transient(ValueError("x"))


def test_backoff_never_shorter_than_retry_after() -> None:
    request = httpx2.Request("GET", "https://kube.test/")
    response = httpx2.Response(429, headers={"Retry-After": "30"}, request=request)
    error = httpx2.HTTPStatusError("x", request=request, response=response)
    assert _backoff(RetryPolicy(), 1, error) == 30.0


# --- start-up reads and permission checks --------------------------------------------------


async def test_missing_job_fails_fast(api: Api, clock: FakeClock) -> None:
    api.on("GET", JOB_PATH, status(404, "NotFound", 'jobs.batch "job-a" not found'))
    with pytest.raises(KubeError) as info:
        await make_cluster(api, clock).read_job()
    assert info.value.status == 404
    assert str(info.value).startswith('not found: cannot get jobs "job-a" in namespace "ns-a"')
    assert clock.sleeps == []


async def test_unreachable_api_is_reported_after_the_budget(clock: FakeClock) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    with pytest.raises(KubeError) as info:
        await make_cluster(refuse, clock, budget=5.0).read_pod()
    assert "API server unreachable" in str(info.value)
    assert info.value.status is None


SSRR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"


async def test_access_with_the_project_role(api: Api, clock: FakeClock) -> None:
    api.on("POST", SSRR_PATH, httpx2.Response(201, json=rules_review(PROJECT_RULES)))
    access = await make_cluster(api, clock).check_access()
    assert access.watch_pods is True
    assert json_body(api.requests[0])["spec"] == {"namespace": "ns-a"}


async def test_access_with_the_reference_role_polls(api: Api, clock: FakeClock) -> None:
    rules = [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]},
        {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get", "update", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    ]
    api.on("POST", SSRR_PATH, httpx2.Response(201, json=rules_review(rules)))
    assert (await make_cluster(api, clock).check_access()).watch_pods is False


@pytest.mark.parametrize(
    "rule",
    [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"apiGroups": ["batch"], "resources": ["*/status"], "verbs": ["patch"]},
        {
            "apiGroups": ["batch"],
            "resources": ["jobs/status"],
            "verbs": ["patch"],
            "resourceNames": ["job-a"],
        },
    ],
)
async def test_wildcards_and_resource_names_grant_patch(
    api: Api, clock: FakeClock, rule: dict[str, Any]
) -> None:
    api.on("POST", SSRR_PATH, httpx2.Response(201, json=rules_review([rule])))
    await make_cluster(api, clock).check_access()


@pytest.mark.parametrize(
    "rules",
    [
        [],
        [{"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get", "update"]}],
        [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["patch"]}],
        [{"apiGroups": [""], "resources": ["jobs/status"], "verbs": ["patch"]}],
        [
            {
                "apiGroups": ["batch"],
                "resources": ["jobs/status"],
                "verbs": ["patch"],
                "resourceNames": ["other"],
            }
        ],
    ],
)
async def test_missing_patch_permission_fails_at_start(
    api: Api, clock: FakeClock, rules: list[dict[str, Any]]
) -> None:
    api.on("POST", SSRR_PATH, httpx2.Response(201, json=rules_review(rules)))
    with pytest.raises(KubeError) as info:
        await make_cluster(api, clock).check_access()
    assert str(info.value).startswith('forbidden: missing permission to patch jobs/status "job-a"')


async def test_incomplete_or_unavailable_review_assumes_access(api: Api, clock: FakeClock) -> None:
    api.on("POST", SSRR_PATH, httpx2.Response(201, json=rules_review([], incomplete=True)))
    assert (await make_cluster(api, clock).check_access()).watch_pods is True
    forbidden = Api()
    forbidden.on("POST", SSRR_PATH, status(403, "Forbidden", "no reviews"))
    assert (await make_cluster(forbidden, clock).check_access()).watch_pods is True


# --- the Pod: polling and watching --------------------------------------------------------

POD_PATH = "/api/v1/namespaces/ns-a/pods/pod-a"
PODS_PATH = "/api/v1/namespaces/ns-a/pods"


def watch_stream(*events: tuple[str, dict[str, Any]]) -> httpx2.Response:
    lines = b"".join(
        json.dumps({"type": kind, "object": obj}).encode() + b"\n" for kind, obj in events
    )
    return httpx2.Response(200, content=lines, headers={"content-type": "application/json"})


async def test_watch_uses_field_selector_and_resource_version(api: Api) -> None:
    clock = FakeClock()
    hang: asyncio.Future[httpx2.Response] = asyncio.get_running_loop().create_future()
    calls: list[httpx2.Request] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        if request.url.path == POD_PATH:
            return ok(pod(statuses=[running()], resource_version="200"))
        if len([c for c in calls if c.url.path == PODS_PATH]) == 1:
            return watch_stream(
                ("MODIFIED", pod(statuses=[running()], resource_version="201")),
                ("MODIFIED", pod(statuses=[terminated(exit_code=3)], resource_version="202")),
            )
        return await hang

    cluster = make_cluster(handler, clock)
    await cluster.read_pod()
    seen: list[Pod] = []
    task = asyncio.create_task(cluster.watch_pod(10, seen.append))
    for _ in range(50):
        await asyncio.sleep(0)
        if len(seen) == 2:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    watches = [c for c in calls if c.url.path == PODS_PATH]
    assert watches[0].url.params["fieldSelector"] == "metadata.name=pod-a"
    assert watches[0].url.params["watch"] in ("true", "1")
    assert watches[0].url.params["resourceVersion"] == "200"
    assert int(watches[0].url.params["timeoutSeconds"]) > 0
    # lightkube re-watches from the last version it saw.
    assert watches[1].url.params["resourceVersion"] == "202"
    assert seen[0].status.containerStatuses[0].state.terminated is None  # type: ignore[index,union-attr]
    assert seen[1].status.containerStatuses[0].state.terminated.exitCode == 3  # type: ignore[index,union-attr]


async def test_forbidden_watch_falls_back_to_polling() -> None:
    clock = FakeClock()
    gets: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == PODS_PATH:
            return status(403, "Forbidden", "cannot watch pods")
        gets.append(request)
        return ok(pod(statuses=[running()]))

    cluster = make_cluster(handler, clock)
    seen: list[Pod] = []
    task = asyncio.create_task(cluster.watch_pod(10, seen.append))
    await clock.advance(35)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(gets) == 3  # at 10 s, 20 s and 30 s
    assert len(seen) == 3


async def test_broken_watch_reads_the_pod_and_watches_again() -> None:
    clock = FakeClock()
    watches: list[httpx2.Request] = []
    gets: list[httpx2.Request] = []
    hang: asyncio.Future[httpx2.Response] = asyncio.get_running_loop().create_future()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == POD_PATH:
            gets.append(request)
            return ok(
                pod(statuses=[terminated(exit_code=0, reason="Completed")], resource_version="300")
            )
        watches.append(request)
        if len(watches) == 1:
            return status(500, "InternalError", "boom")
        return await hang

    cluster = make_cluster(handler, clock)
    seen: list[Pod] = []
    task = asyncio.create_task(cluster.watch_pod(10, seen.append))
    await clock.advance(1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(gets) == 1
    assert len(seen) == 1
    assert len(watches) == 2
    assert watches[1].url.params["resourceVersion"] == "300"


async def test_poll_pod_survives_errors() -> None:
    clock = FakeClock()
    answers = [status(500, "InternalError", "x"), ok(pod(statuses=[running()]))]

    def handler(request: httpx2.Request) -> httpx2.Response:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    cluster = make_cluster(handler, clock)
    seen: list[Pod] = []
    task = asyncio.create_task(cluster.poll_pod(10, seen.append))
    await clock.advance(20)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(seen) == 1


async def test_conflicts_are_retried_sooner_than_server_errors(api: Api, clock: FakeClock) -> None:
    api.on("GET", JOB_PATH, ok(job("100")), ok(job("101")), ok(job("102")))
    api.on("PATCH", STATUS_PATH, *([status(409, "Conflict", "modified")] * 2), ok(job("103")))
    await make_cluster(api, clock).write_condition(WANTED)
    assert len(clock.sleeps) == 2
    assert 0.025 <= clock.sleeps[0] <= 0.05
    assert 0.05 <= clock.sleeps[1] <= 0.1
