"""Small helpers shared by the integration tests."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from harness.cluster import AdapterJob
from harness.controlplane import ControlPlane

_T = TypeVar("_T")

SUCCESS = {
    "status": "success",
    "reason": "ValidationPassed",
    "message": "GCP environment validated",
}
FAILURE = {"status": "failure", "reason": "MissingPermissions", "message": "SA lacks IAM roles"}


def eventually(probe: Callable[[], _T | None], timeout: float = 15.0, every: float = 0.05) -> _T:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


def summary(condition: dict[str, Any] | None) -> tuple[str, str, str] | None:
    """(status, reason, message) of a condition."""
    if condition is None:
        return None
    return condition["status"], condition["reason"], condition["message"]


def reporter_requests(plane: ControlPlane, job: AdapterJob) -> list[dict[str, Any]]:
    """Audit events of requests made by the reporter's ServiceAccount in the Job's
    namespace, one per request, in the order the API server received them.

    A watch's ``ResponseComplete`` is logged only when the server notices that the
    client went away, which on a loaded machine can be after the reporter's later
    requests, or after the reporter has exited: its ``ResponseStarted`` stands in.
    """
    user = f"system:serviceaccount:{job.namespace}:status-reporter"
    by_request: dict[str, dict[str, Any]] = {}
    for event in plane.audit_events():
        if event.get("user", {}).get("username") != user:
            continue
        stage = event.get("stage")
        if stage == "ResponseComplete" or (
            stage == "ResponseStarted" and event["auditID"] not in by_request
        ):
            by_request[event["auditID"]] = event
    return sorted(by_request.values(), key=lambda event: event["requestReceivedTimestamp"])


def verbs(plane: ControlPlane, job: AdapterJob) -> list[str]:
    """``verb resource[/subresource] code`` of each reporter request, in order."""
    out = []
    for event in reporter_requests(plane, job):
        ref = event.get("objectRef", {})
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        out.append(f"{event['verb']} {resource} {event.get('responseStatus', {}).get('code')}")
    return out


def stalled_pipe() -> tuple[int, int]:
    """A pipe whose buffer is already full: a blocking write to it waits until the read
    end is read (a log collector that stopped reading the reporter's stdout)."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"x" * 65536)
    os.set_blocking(write_end, True)
    return read_end, write_end
