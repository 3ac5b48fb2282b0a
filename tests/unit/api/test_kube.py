"""Decoding Pod watch events as kube-apiserver v1.37.2 sends them (lines captured from it),
and the encoding of names and query values into request targets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from status_reporter.api.auth import Auth, Credentials, CredentialsError
from status_reporter.api.kube import HttpApi, decode_event, percent_encode, query_string
from status_reporter.api.protocol import CredentialsUnavailable, Unreachable, WatchSilent
from status_reporter.api.retry import is_transient
from status_reporter.api.transport import Endpoint, HttpClient
from tests.unit.transport_server import answer_all, chunked, response, serve

SAMPLES = Path(__file__).parents[2] / "samples" / "watch"


def lines(name: str) -> list[bytes]:
    return (SAMPLES / name).read_bytes().splitlines()


def test_bookmarks_carry_only_a_resource_version() -> None:
    # A bookmark's object is an empty Pod whose containers are null, not a list.
    first, second = (decode_event(line) for line in lines("bookmarks.jsonl"))
    assert first.type == second.type == "BOOKMARK"
    assert first.pod is not None
    assert second.pod is not None
    assert (first.pod.metadata.resource_version, second.pod.metadata.resource_version) == (
        "2169",
        "2180",
    )


def test_a_pod_event() -> None:
    (line,) = lines("added.jsonl")
    event = decode_event(line)
    assert event.type == "ADDED"
    assert event.pod is not None
    assert event.pod.metadata.resource_version == "222"
    assert [c.name for c in event.pod.spec.containers] == ["adapter", "status-reporter"]


def test_an_error_event() -> None:
    line = (
        b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},'
        b'"status":"Failure","message":"too old resource version: 5 (2169)",'
        b'"reason":"Expired","code":410}}'
    )
    event = decode_event(line)
    assert event.type == "ERROR"
    assert event.error is not None
    assert (event.error.code, event.error.reason) == (410, "Expired")


@pytest.mark.parametrize("line", [b"{", b'{"type":"MODIFIED","object":[]}', b"[]"])
def test_a_line_that_is_not_an_event_breaks_the_watch(line: bytes) -> None:
    with pytest.raises(Unreachable, match="malformed watch event"):
        decode_event(line)


@given(st.text())
def test_percent_encoding_matches_the_standard_librarys_quote(text: str) -> None:
    assert percent_encode(text) == quote(text, safe="")
    assert unquote(percent_encode(text)) == text


def test_percent_encoding_leaves_kubernetes_names_alone_and_encodes_the_rest() -> None:
    assert percent_encode("job-1.a_b~c") == "job-1.a_b~c"
    assert percent_encode("a/b c?d=é") == "a%2Fb%20c%3Fd%3D%C3%A9"


@given(st.dictionaries(st.text(min_size=1), st.text()))
def test_query_string_round_trips(params: dict[str, str]) -> None:
    assert dict(parse_qsl(query_string(params), keep_blank_values=True)) == params


def test_query_string_of_a_watch() -> None:
    query = {"fieldSelector": "metadata.name=pod-1", "resourceVersion": "12&x=1"}
    assert query_string(query) == "fieldSelector=metadata.name%3Dpod-1&resourceVersion=12%26x%3D1"


def _client_and_api(port: int, auth: Auth) -> tuple[HttpClient, HttpApi]:
    """An HttpApi on a client of the test server at ``port``, with ``auth``."""
    client = HttpClient(Endpoint("127.0.0.1", port), keepalive=None, user_agent="t")
    credentials = Credentials(Endpoint("127.0.0.1", port), auth, "test")
    return client, HttpApi(client, credentials, pod="p", namespace="n")


class _FailingAuth:
    """Credentials that cannot be had (a token file missing, a plugin failing)."""

    def __init__(self) -> None:
        self.calls = 0

    async def headers(self) -> dict[str, str]:
        self.calls += 1
        raise CredentialsError("token file /t: No such file or directory")

    async def refresh(self) -> bool:
        return False

    def close(self) -> None:
        pass


class _SlowAuth:
    """Credentials that take longer than a request may (a slow credential plugin)."""

    delay = 30.0

    async def headers(self) -> dict[str, str]:
        await asyncio.sleep(self.delay)
        return {}

    async def refresh(self) -> bool:
        return False

    def close(self) -> None:
        pass


async def test_getting_credentials_counts_against_the_requests_time() -> None:
    async with serve(answer_all(response(b"{}"))) as server:
        client, api = _client_and_api(server.port, _SlowAuth())
        async with client:
            started = time.monotonic()
            with pytest.raises(CredentialsUnavailable, match="no credential within") as info:
                await api.get_job("j", timeout=0.5)
            assert time.monotonic() - started < 1.5
            assert is_transient(info.value)
            started = time.monotonic()
            with pytest.raises(CredentialsUnavailable):
                async with api.watch_pod("", timeout_seconds=10, read_timeout=0.5):
                    pass
            assert time.monotonic() - started < 1.5
        assert server.requests == []


class _SlowRefreshAuth(_SlowAuth):
    """Credentials at once, then a refresh after a 401 that takes longer than the request
    may (a plugin run again for a rotated credential)."""

    delay = 0.0

    async def refresh(self) -> bool:
        await asyncio.sleep(30)
        return True


async def test_a_refresh_that_runs_out_of_the_requests_time_is_retried_not_refused() -> None:
    unauthorized = response(b"{}", status=b"401 Unauthorized")
    async with serve(answer_all(unauthorized)) as server:
        client, api = _client_and_api(server.port, _SlowRefreshAuth())
        async with client:
            started = time.monotonic()
            with pytest.raises(CredentialsUnavailable, match="no credential within") as info:
                await api.get_job("j", timeout=0.5)
            assert time.monotonic() - started < 1.5
            assert is_transient(info.value)


async def test_the_api_servers_date_is_noted_with_the_moment_it_came() -> None:
    date = b"Date: Mon, 07 Dec 2026 20:52:56 GMT\r\n"
    async with serve(answer_all(response(b"{}", headers=date))) as server:
        auth = _SlowAuth()
        client, api = _client_and_api(server.port, auth)
        assert api.server_time() is None
        async with client:
            auth.delay = 0
            await api.get_job("j", timeout=5)
            noted = api.server_time()
            assert noted is not None
            assert noted.date == 1796676776.0  # 2026-12-07T20:52:56Z
            assert 0 <= asyncio.get_running_loop().time() - noted.at < 1


async def _drain_watch(api: HttpApi) -> None:
    async with api.watch_pod("", timeout_seconds=10, read_timeout=0.3) as events:
        async for _ in events:
            pass


async def test_a_watch_that_says_nothing_within_its_read_timeout_is_silent() -> None:
    """Distinct from other failures: a server without bookmarks leaves a watch silent."""
    async with serve(answer_all(chunked(end=False))) as server:
        auth = _SlowAuth()
        auth.delay = 0
        client, api = _client_and_api(server.port, auth)
        async with client:
            with pytest.raises(WatchSilent):
                await _drain_watch(api)


async def test_credentials_that_cannot_be_had_are_a_transient_api_failure() -> None:
    """Mapped in one place: no request is sent, and the failure is retried like a
    request that got no answer (never an internal error)."""
    async with serve(answer_all(response(b"{}"))) as server:
        auth = _FailingAuth()
        client, api = _client_and_api(server.port, auth)
        async with client:
            with pytest.raises(CredentialsUnavailable, match="token file /t") as info:
                await api.get_job("j", timeout=1)
            assert is_transient(info.value)
            with pytest.raises(CredentialsUnavailable):
                async with api.watch_pod("", timeout_seconds=10, read_timeout=1):
                    pass
        assert auth.calls == 2
        assert server.requests == []
