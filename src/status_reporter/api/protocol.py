"""The thin interface between the reporter and the Kubernetes API.

:class:`Api` is everything the reporter asks of the API server for its one Job and
Pod (the Job is named per call: it may be learned from the Pod).
:mod:`status_reporter.api.kube` implements it over HTTP; unit tests use an in-memory
cluster. Failures are :class:`ApiError` (the server answered with an
error status) or :class:`Unreachable` (no answer: refused, reset, timed out).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Protocol

import msgspec

from status_reporter.core.clocks import ServerTime
from status_reporter.core.models import Job, Pod, RulesReviewStatus, Status

# The annotation of the bookmark that ends a watch's initial events (sendInitialEvents).
INITIAL_EVENTS_END: Final = "k8s.io/initial-events-end"


class ApiError(Exception):
    """The API server answered with an error ``status`` (HTTP code).

    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class Unreachable(Exception):
    """The API server gave no answer: connection refused or reset, TLS failure, timeout."""


class WatchSilent(Unreachable):
    """A watch said nothing (no event, no bookmark) within its read timeout."""


class CredentialsUnavailable(Unreachable):
    """No request could be made: the credentials could not be had (a token file briefly
    missing, an exec plugin failing). Retried like a request that got no answer."""


class PodEvent(msgspec.Struct, frozen=True):
    """One watch event: ``ADDED``, ``MODIFIED``, ``DELETED`` and ``BOOKMARK`` carry the Pod
    (a bookmark only its resourceVersion), ``ERROR`` the server's Status."""

    type: str
    pod: Pod | None = None
    error: Status | None = None


class Operation(msgspec.Struct, frozen=True):
    """One kind of API call, for error messages and permission checks."""

    verb: str
    group: str
    resource: str
    name: str
    namespace: str

    def describe(self) -> str:
        """Like ``get jobs "my-job" in namespace "ns"``."""
        return f'{self.verb} {self.resource} "{self.name}" in namespace "{self.namespace}"'


class Operations(msgspec.Struct, frozen=True):
    """The calls the reporter makes for its Job and Pod."""

    get_job: Operation
    patch_status: Operation
    get_pod: Operation
    watch_pods: Operation
    create_event: Operation

    @classmethod
    def of(cls, job: str, pod: str, namespace: str) -> Operations:
        """The operations on ``job`` and ``pod`` in ``namespace``."""
        return cls(
            get_job=Operation("get", "batch", "jobs", job, namespace),
            patch_status=Operation("patch", "batch", "jobs/status", job, namespace),
            get_pod=Operation("get", "", "pods", pod, namespace),
            watch_pods=Operation("watch", "", "pods", pod, namespace),
            create_event=Operation("create", "events.k8s.io", "events", "", namespace),
        )

    @property
    def job(self) -> str:
        """The Job's name ("" while it is not known yet)."""
        return self.get_job.name


class Api(Protocol):
    """What the reporter needs from the API server. Every call is bounded by its timeout."""

    async def get_job(self, name: str, *, timeout: float) -> Job:
        """Read the Job called ``name``."""
        ...

    async def get_pod(self, *, timeout: float) -> Pod:
        """Read the Pod."""
        ...

    async def patch_job_status(
        self, name: str, patch: Mapping[str, Any], *, timeout: float, fresh: bool = False
    ) -> Job:
        """Strategic-merge ``patch`` into the status of Job ``name``; the Job as stored.

        ``fresh`` sends it on a new connection (a last attempt has no time to find a
        pooled one dead)."""
        ...

    async def create_event(self, event: Mapping[str, Any], *, timeout: float) -> None:
        """Create an ``events.k8s.io/v1`` Event in the namespace."""
        ...

    async def review_rules(self, *, timeout: float) -> RulesReviewStatus:
        """What this identity may do in the namespace (a SelfSubjectRulesReview)."""
        ...

    def server_time(self) -> ServerTime | None:
        """The API server's clock as the last response that carried a ``Date`` showed
        it; None before any did."""
        ...

    def watch_pod(
        self,
        resource_version: str,
        *,
        timeout_seconds: int,
        read_timeout: float,
        initial_events: bool = False,
    ) -> AbstractAsyncContextManager[AsyncIterator[PodEvent]]:
        """Watch the Pod from ``resource_version``.

        The server ends the watch after ``timeout_seconds``; waiting longer than
        ``read_timeout`` for the next event raises :class:`Unreachable`. With
        ``initial_events`` (and no ``resource_version``) the watch starts with the Pod's
        current state, if it exists, then a bookmark annotated :data:`INITIAL_EVENTS_END`
        (a server without the feature refuses the watch with a 4xx).
        """
        ...
