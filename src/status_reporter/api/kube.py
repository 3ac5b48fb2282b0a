"""The Kubernetes REST API over HTTP: :class:`HttpApi` implements
:class:`~status_reporter.api.protocol.Api`.

Requests go through :mod:`status_reporter.api.transport` (HTTP/1.1, TLS) with the
credentials of :mod:`status_reporter.api.credentials`; bodies are JSON, decoded into the
structs of :mod:`status_reporter.core.models`. After a 401 the credentials are read again
once (a rotated service-account token) and the request repeated.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final, TypeVar

import msgspec

from status_reporter.api.auth import Auth, Credentials, CredentialsError
from status_reporter.api.podjson import decode_pod
from status_reporter.api.protocol import (
    ApiError,
    CredentialsUnavailable,
    PodEvent,
    Unreachable,
    WatchSilent,
)
from status_reporter.api.transport import HttpClient, ReadTimeout, Response, TransportError
from status_reporter.core.clocks import ServerTime, parse_http_date
from status_reporter.core.models import (
    Bookmark,
    Job,
    Pod,
    RulesReview,
    RulesReviewStatus,
    Status,
    WatchEvent,
)

_T = TypeVar("_T")

# RFC 3986's unreserved characters: everything else in a path segment or a query value
# is percent-encoded, as urllib.parse.quote(safe="") does; importing urllib.parse would
# cost about 3 % of the reporter's start-up instructions.
_UNRESERVED: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)

FIELD_MANAGER: Final = "status-reporter"
_JSON: Final = "application/json"
_STRATEGIC_MERGE: Final = "application/strategic-merge-patch+json"
# What is left of a request's time once its credentials are had: at least this (the
# request then fails fast as a timeout when it had none left).
_MIN_REQUEST_SECONDS: Final = 0.05
# An error body is a small Status object; anything longer is cut before decoding.
_ERROR_BODY_LIMIT: Final = 64 * 1024
_STATUS: Final = msgspec.json.Decoder(Status)
_EVENT: Final = msgspec.json.Decoder(WatchEvent)
_BOOKMARK: Final = msgspec.json.Decoder(Bookmark)
_JOB: Final = msgspec.json.Decoder(Job)
_REVIEW: Final = msgspec.json.Decoder(RulesReview)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The ``Retry-After`` header in seconds (its delta-seconds form), if usable."""
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error(
    status: int, reason: str, headers: Mapping[str, str], body: bytes | bytearray
) -> ApiError:
    try:
        detail = _STATUS.decode(body)
        message = detail.message or detail.reason or reason
    except msgspec.DecodeError:
        message = reason
    text = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    return ApiError(status, text, retry_after(headers))


def _decode(decoder: msgspec.json.Decoder[_T], body: bytes | bytearray) -> _T:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise Unreachable(f"malformed response from the API server: {exc}") from None


def percent_encode(text: str) -> str:
    """``text`` as one percent-encoded (UTF-8) path segment or query value."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode())


def query_string(params: Mapping[str, str]) -> str:
    """``params`` as a URL query, without the ``?``."""
    return "&".join(
        f"{percent_encode(name)}={percent_encode(value)}" for name, value in params.items()
    )


class HttpApi:
    """The API calls for one Job and its Pod, over one HTTP client."""

    def __init__(
        self, client: HttpClient, credentials: Credentials, *, pod: str, namespace: str
    ) -> None:
        self._client = client
        self._credentials = credentials
        quoted_ns = percent_encode(namespace)
        self._jobs_path = f"/apis/batch/v1/namespaces/{quoted_ns}/jobs"
        self._events_path = f"/apis/events.k8s.io/v1/namespaces/{quoted_ns}/events"
        self._pod_path = f"/api/v1/namespaces/{quoted_ns}/pods/{percent_encode(pod)}"
        self._pods_path = f"/api/v1/namespaces/{quoted_ns}/pods"
        self._pod = pod
        self._namespace = namespace
        self._server_time: ServerTime | None = None

    def _job_path(self, name: str) -> str:
        if not name:
            # An empty name would address the collection, not a Job.
            raise ValueError("a Job name is required")
        return f"{self._jobs_path}/{percent_encode(name)}"

    def server_time(self) -> ServerTime | None:
        """The API server's clock as the last response with a ``Date`` header showed it."""
        return self._server_time

    def _note_date(self, headers: Mapping[str, str]) -> None:
        date = parse_http_date(headers.get("date", ""))
        if date is not None:
            self._server_time = ServerTime(date, asyncio.get_running_loop().time())

    def close(self) -> None:
        """End what still runs to get credentials (a credential plugin): the reporter exits."""
        self._credentials.auth.close()

    async def _headers(
        self, deadline: float, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The request's headers, credentials included, had by ``deadline`` (loop time):
        getting credentials counts against the time of the request they are for."""
        auth = await _by(deadline, self._credentials.auth.headers(), self._credentials.auth)
        return {"Accept": _JSON, **auth, **(extra or {})}

    async def _refresh(self, deadline: float) -> bool:
        """After a 401: read the credentials again by ``deadline``; True when a retry is
        worth it."""
        try:
            return await _by(deadline, self._credentials.auth.refresh(), self._credentials.auth)
        except _NoCredentialInTime as exc:
            # Out of time, not refused: the next attempt waits for the same plugin run.
            raise CredentialsUnavailable(str(exc)) from exc
        except CredentialsError as exc:
            raise ApiError(401, f"HTTP 401: unauthorized, and the credentials: {exc}") from exc

    async def _request(
        self,
        method: str,
        target: str,
        *,
        timeout: float,
        body: bytes | None = None,
        content_type: str | None = None,
        fresh: bool = False,
    ) -> bytes | bytearray:
        extra = {"Content-Type": content_type} if content_type else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        async def send() -> Response:
            with _as_api_errors():
                headers = await self._headers(deadline, extra)
                left = max(_MIN_REQUEST_SECONDS, deadline - loop.time())
                return await self._client.request(
                    method, target, headers=headers, body=body, timeout=left, fresh=fresh
                )

        response = await send()
        if response.status == 401 and await self._refresh(deadline):
            response = await send()
        self._note_date(response.headers)
        if response.status >= 300:
            error_body = response.body[:_ERROR_BODY_LIMIT]
            raise _error(response.status, response.reason, response.headers, error_body)
        return response.body

    async def get_job(self, name: str, *, timeout: float) -> Job:
        """Read the Job called ``name``."""
        return _decode(_JOB, await self._request("GET", self._job_path(name), timeout=timeout))

    async def get_pod(self, *, timeout: float) -> Pod:
        """Read the Pod."""
        body = await self._request("GET", self._pod_path, timeout=timeout)
        try:
            return decode_pod(body)
        except msgspec.DecodeError as exc:
            raise Unreachable(f"malformed response from the API server: {exc}") from None

    async def patch_job_status(
        self, name: str, patch: Mapping[str, Any], *, timeout: float, fresh: bool = False
    ) -> Job:
        """Strategic-merge ``patch`` into the ``jobs/status`` of ``name``; the Job as stored
        (on a new connection when ``fresh``)."""
        query = query_string({"fieldManager": FIELD_MANAGER})
        target = f"{self._job_path(name)}/status?{query}"
        body = await self._request(
            "PATCH",
            target,
            timeout=timeout,
            body=msgspec.json.encode(patch),
            content_type=_STRATEGIC_MERGE,
            fresh=fresh,
        )
        return _decode(_JOB, body)

    async def create_event(self, event: Mapping[str, Any], *, timeout: float) -> None:
        """Create an ``events.k8s.io/v1`` Event in the namespace (the answer is not read)."""
        await self._request(
            "POST",
            self._events_path,
            timeout=timeout,
            body=msgspec.json.encode(event),
            content_type=_JSON,
        )

    async def review_rules(self, *, timeout: float) -> RulesReviewStatus:
        """A SelfSubjectRulesReview for the namespace."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": self._namespace},
        }
        body = await self._request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            timeout=timeout,
            body=msgspec.json.encode(review),
            content_type=_JSON,
        )
        return _decode(_REVIEW, body).status

    @asynccontextmanager
    async def watch_pod(
        self,
        resource_version: str,
        *,
        timeout_seconds: int,
        read_timeout: float,
        initial_events: bool = False,
    ) -> AsyncIterator[AsyncIterator[PodEvent]]:
        """Watch the Pod (a field selector on its name), with bookmarks; with
        ``initial_events``, from its current state (sendInitialEvents)."""
        query = {
            "watch": "true",
            "fieldSelector": f"metadata.name={self._pod}",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if initial_events:
            # Required with sendInitialEvents; without a resourceVersion, the initial
            # state is the current one (a consistent read).
            query["sendInitialEvents"] = "true"
            query["resourceVersionMatch"] = "NotOlderThan"
        if resource_version:
            query["resourceVersion"] = resource_version
        target = f"{self._pods_path}?{query_string(query)}"
        async with self._open_watch(target, read_timeout) as events:
            yield events

    @asynccontextmanager
    async def _open_watch(
        self, target: str, read_timeout: float
    ) -> AsyncIterator[AsyncIterator[PodEvent]]:
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            deadline = loop.time() + read_timeout
            with _as_api_errors():
                headers = await self._headers(deadline)
                async with self._client.stream(
                    "GET",
                    target,
                    headers=headers,
                    connect_timeout=max(_MIN_REQUEST_SECONDS, deadline - loop.time()),
                    read_timeout=read_timeout,
                ) as stream:
                    self._note_date(stream.headers)
                    if stream.status == 401 and attempt == 0 and await self._refresh(deadline):
                        continue
                    if stream.status >= 300:
                        body = await stream.read_body(_ERROR_BODY_LIMIT)
                        raise _error(stream.status, stream.reason, stream.headers, body)
                    yield _events(stream.lines())
                    return


class _NoCredentialInTime(CredentialsError):
    """The credentials were not had within the request's time (transient)."""


async def _by(deadline: float, getting: Awaitable[_T], auth: Auth) -> _T:
    """``getting``'s result, or _NoCredentialInTime once ``deadline`` (loop time) passes."""
    try:
        async with asyncio.timeout_at(deadline):
            return await getting
    except TimeoutError:
        raise _NoCredentialInTime(f"{auth!r}: no credential within the request's time") from None


@contextmanager
def _as_api_errors() -> Iterator[None]:
    """The one place where failures below the Api become its own: no answer from the
    transport, or no request at all because the credentials could not be had (both
    transient, so retried within the caller's budget)."""
    try:
        yield
    except TransportError as exc:
        raise Unreachable(str(exc)) from exc
    except CredentialsError as exc:
        raise CredentialsUnavailable(str(exc)) from exc


async def _events(lines: AsyncIterator[bytes | bytearray]) -> AsyncIterator[PodEvent]:
    with _as_api_errors():
        try:
            async for line in lines:
                yield decode_event(line)
        except ReadTimeout as exc:
            raise WatchSilent(str(exc)) from exc


def decode_event(line: bytes | bytearray) -> PodEvent:
    """One line of a Pod watch as a :class:`PodEvent`.

    Raises:
        Unreachable: the line is not a watch event (the stream is not to be trusted).
    """
    try:
        event = _EVENT.decode(line)
        if event.type == "ERROR":
            return PodEvent(event.type, error=_STATUS.decode(event.object))
        if event.type == "BOOKMARK":
            return PodEvent(event.type, pod=Pod(metadata=_BOOKMARK.decode(event.object).metadata))
        return PodEvent(event.type, pod=decode_pod(event.object))
    except msgspec.DecodeError as exc:
        raise Unreachable(f"malformed watch event: {exc}") from None
