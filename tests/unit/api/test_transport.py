"""The HTTP/1.1 client against real loopback servers (plain and TLS) that answer with
hand-written bytes: framing, keep-alive, timeouts, TLS, socket options, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
import tracemalloc
from collections.abc import Awaitable
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from status_reporter.api import transport
from status_reporter.api.auth import load_client_cert
from status_reporter.api.transport import (
    MAX_HEAD,
    Endpoint,
    HttpClient,
    ReadTimeout,
    RequestTimeout,
    ResumingContext,
    Stream,
    TcpKeepalive,
    TransportError,
)
from tests.unit.transport_pki import SERVER_NAME, Pki, make_pki
from tests.unit.transport_server import (
    Handler,
    Peer,
    Server,
    answer_all,
    chunked,
    noting_resumption,
    response,
    send_forever,
    serve,
)

UA = "status-reporter-test/1"
MIB = 1024 * 1024


def client_for(
    server: Server,
    *,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    keepalive: TcpKeepalive | None = None,
    max_body: int = 1024,
) -> HttpClient:
    return HttpClient(
        server.endpoint(tls, server_hostname), keepalive=keepalive, user_agent=UA, max_body=max_body
    )


def default_client(server: Server) -> HttpClient:
    """A client with the default size limits."""
    return HttpClient(server.endpoint(), keepalive=None, user_agent=UA)


def head_fields(request: bytes) -> dict[str, str]:
    head = request.split(b"\r\n\r\n")[0].decode()
    return {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in head.split("\r\n")[1:])
    }


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def silent(peer: Peer) -> None:
    """Read the request, never answer, note when the client closes."""
    await peer.read_request()
    await peer.until_closed()


# --- requests and framing ---------------------------------------------------------


async def test_request_head_and_content_length_response() -> None:
    answer = response(
        b'{"kind":"Job"}', headers=b"X-Multi: a\r\nx-multi: b\r\nContent-Type: json\r\n"
    )
    async with serve(answer_all(answer)) as server, client_for(server) as client:
        result = await client.request(
            "PATCH",
            "/apis/batch/v1/jobs/j?fieldManager=sr",
            headers={
                "Authorization": "Bearer secret",
                "Content-Type": "application/merge-patch+json",
            },
            body=b'{"a":1}',
            timeout=2,
        )
    assert (result.status, result.reason, result.body) == (200, "OK", b'{"kind":"Job"}')
    assert result.headers["x-multi"] == "a, b"
    assert result.headers["content-type"] == "json"
    (request,) = server.requests
    assert request.startswith(b"PATCH /apis/batch/v1/jobs/j?fieldManager=sr HTTP/1.1\r\n")
    assert request.endswith(b'\r\n\r\n{"a":1}')
    assert head_fields(request) == {
        "host": f"127.0.0.1:{server.port}",
        "user-agent": UA,
        "accept-encoding": "identity",
        "authorization": "Bearer secret",
        "content-type": "application/merge-patch+json",
        "content-length": "7",
    }


async def test_caller_headers_replace_the_defaults() -> None:
    async with serve(answer_all(response())) as server, client_for(server) as client:
        await client.request("GET", "/", headers={"User-Agent": "other/2"}, timeout=2)
    assert head_fields(server.requests[0])["user-agent"] == "other/2"
    assert server.requests[0].lower().count(b"user-agent:") == 1


async def test_chunked_response_body_is_reassembled() -> None:
    answer = chunked(b"hel", b"lo wor", b"ld")
    async with serve(answer_all(answer)) as server, client_for(server) as client:
        first = await client.request("GET", "/a", timeout=2)
        second = await client.request("GET", "/b", timeout=2)
    assert first.body == second.body == b"hello world"
    assert server.accepts == 1


async def test_informational_responses_are_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + response(b"final", status=b"201 Created")
    async with serve(answer_all(answer)) as server, client_for(server) as client:
        result = await client.request("POST", "/", body=b"{}", timeout=2)
    assert (result.status, result.body) == (201, b"final")


async def test_keep_alive_reuses_one_connection() -> None:
    async with serve(answer_all(response(b"1"), response(b"2"), response(b"3"))) as server:
        async with client_for(server) as client:
            bodies = [(await client.request("GET", "/", timeout=2)).body for _ in range(3)]
        await server.wait_closed_by_client(1)  # aclose closed the idle connection
    assert bodies == [b"1", b"2", b"3"]
    assert server.accepts == 1


async def test_connection_close_response_is_not_reused() -> None:
    answer = response(b"x", headers=b"Connection: close\r\n")
    async with serve(answer_all(answer)) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        await client.request("GET", "/", timeout=2)
    assert server.accepts == 2


async def test_concurrent_requests_get_own_connections_and_two_stay_idle() -> None:
    all_arrived = asyncio.Event()

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        if len(peer.server.requests) == 3:
            all_arrived.set()
        await all_arrived.wait()  # each request is in flight at once
        await peer.send(response(b"ok"))
        await peer.until_closed()

    async with serve(handler) as server:
        async with client_for(server) as client:
            results = await asyncio.gather(
                *(client.request("GET", "/", timeout=2) for _ in range(3))
            )
            await server.wait_closed_by_client(1)
            await asyncio.sleep(0.05)
            assert server.closed_by_client == 1  # the third connection; two are kept idle
        await server.wait_closed_by_client(3)
    assert [r.body for r in results] == [b"ok"] * 3
    assert server.accepts == 3


# --- stale keep-alive connections ----------------------------------------------------


async def test_idle_connection_closed_by_server_is_replaced() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"x"))  # keep-alive, and yet the server closes it

    async with serve(handler) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        await asyncio.sleep(0.02)  # the client's loop sees the FIN
        result = await client.request("GET", "/", timeout=2)
    assert result.body == b"x"
    assert server.accepts == 2


@pytest.mark.parametrize("method", ["GET", "PATCH"])
async def test_reused_connection_closed_without_answer_is_retried_on_a_new_one(
    method: str,
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"first" if peer.index == 0 else b"retried"))
        if peer.index == 0:
            await peer.read_request()  # the second request: closed without an answer

    async with serve(handler) as server, client_for(server) as client:
        await client.request("GET", "/one", timeout=2)
        result = await client.request(method, "/two", body=b"{}", timeout=2)
    assert result.body == b"retried"
    assert server.accepts == 2
    assert [r.split(b" ")[1] for r in server.requests] == [b"/one", b"/two", b"/two"]


async def test_stale_connection_is_retried_only_once() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        if peer.index == 0:
            await peer.send(response(b"first"))
            await peer.read_request()
        # then close without an answer, on every connection

    async with serve(handler) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        with pytest.raises(TransportError, match=r"closed before a response$") as error:
            await client.request("GET", "/", timeout=2)
    assert str(error.value) == f"connection to 127.0.0.1:{server.port} closed before a response"
    assert server.accepts == 2


@pytest.fixture
def quick_hedge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads hedged after max(0.2 s, half their timeout): the rule, at test speed."""
    monkeypatch.setattr(transport, "HEDGE_AFTER", 0.2)


async def silent_after_first(peer: Peer) -> None:
    """Answer the first request on each connection, then go silent: a proxy that stopped
    forwarding on its established connections."""
    await peer.read_request()
    await peer.send(response(b"from %d" % peer.index))
    await silent(peer)


@pytest.mark.parametrize(
    ("timeout", "hedged_after"), [(3, 2.0), (5, 2.5)], ids=["2s-floor", "half-the-timeout"]
)
async def test_read_silent_on_a_reused_connection_is_hedged_on_a_new_one(
    timeout: float, hedged_after: float
) -> None:
    async with serve(silent_after_first) as server, client_for(server) as client:
        await asyncio.gather(*(client.request("GET", "/", timeout=2) for _ in range(2)))
        assert len(client._idle) == 2
        started = time.monotonic()
        result = await client.request("GET", "/", timeout=timeout)
        elapsed = time.monotonic() - started
        await server.wait_closed_by_client(2)  # the silent one, abandoned, and the other idle
        assert len(client._idle) == 1
    assert hedged_after <= elapsed < hedged_after + 0.5
    assert result.body == b"from 2"
    assert (server.accepts, len(server.requests)) == (3, 4)


async def test_first_answer_wins_and_the_other_copy_is_abandoned(quick_hedge: None) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 1:
            await silent(peer)  # the copy: slower still
            return
        await peer.read_request()
        await peer.send(response(b"first"))
        await peer.read_request()
        await asyncio.sleep(0.7)  # slow, past the hedge at 0.5 s
        await peer.send(response(b"slow but first"))
        await peer.until_closed()

    async with serve(handler) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        result = await client.request("GET", "/", timeout=1)
        await server.wait_closed_by_client(1)  # the copy's connection, abandoned
    assert result.body == b"slow but first"
    assert (server.accepts, len(server.requests)) == (2, 3)


@pytest.mark.parametrize("method", ["GET", "PATCH"])
async def test_slow_answer_on_a_reused_connection_is_one_request(method: str) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"first"))
        await peer.read_request()
        await asyncio.sleep(0.6)
        await peer.send(response(b"slow"))
        await peer.until_closed()

    async with serve(handler) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        result = await client.request(method, "/", body=b"{}", timeout=1)
    assert result.body == b"slow"
    assert (server.accepts, len(server.requests)) == (1, 2)


async def test_slow_read_answered_within_half_its_timeout_is_not_hedged(quick_hedge: None) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"first"))
        await peer.read_request()
        await asyncio.sleep(0.4)  # past the 0.2 s floor, before half of 1 s
        await peer.send(response(b"slow"))
        await peer.until_closed()

    async with serve(handler) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        assert (await client.request("GET", "/", timeout=1)).body == b"slow"
    assert (server.accepts, len(server.requests)) == (1, 2)


async def test_write_is_never_hedged(quick_hedge: None) -> None:
    async with serve(silent_after_first) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            await client.request("PATCH", "/", body=b"{}", timeout=1)
        assert 1 <= time.monotonic() - started < 1.3
        await server.wait_closed_by_client(1)
    assert (server.accepts, len(server.requests)) == (1, 2)


@pytest.mark.parametrize(
    ("timeout", "accepts", "requests"), [(1, 1, 2), (3, 2, 3)], ids=["not-hedged", "hedged"]
)
async def test_silent_connections_time_out_at_the_whole_timeout(
    timeout: float, accepts: int, requests: int
) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.send(response(b"first"))
        await silent(peer)

    async with serve(handler) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match=rf"within {timeout} s$"):
            await client.request("GET", "/", timeout=timeout)
        assert timeout <= time.monotonic() - started < timeout + 0.3
        await server.wait_closed_by_client(accepts)
    assert (server.accepts, len(server.requests)) == (accepts, requests)


async def test_fresh_request_does_not_use_an_idle_connection() -> None:
    async with serve(answer_all(response(b"ok"))) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        assert len(client._idle) == 1
        await client.request("PATCH", "/", body=b"{}", timeout=2, fresh=True)
    assert server.accepts == 2


@pytest.mark.parametrize("delay", [0.0, 0.05], ids=["same-read", "later"])
async def test_stray_response_on_an_idle_connection_is_never_matched(delay: float) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.send(response(b"first"))
            await asyncio.sleep(delay)
            await peer.send(response(b"STALE-DUP"))  # a proxy's duplicate, say
            await peer.until_closed()
        else:
            await answer_all(response(b"own answer"))(peer)

    async with serve(handler) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        await asyncio.sleep(delay + 0.05)
        result = await client.request("PATCH", "/", body=b"{}", timeout=2)
        assert result.body == b"own answer"
        await server.wait_closed_by_client(1)  # the connection that had the stray bytes
    assert server.accepts == 2
    assert [r.split(b" ")[0] for r in server.requests] == [b"GET", b"PATCH"]


async def test_reused_connection_that_started_answering_is_not_retried() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(b"first"))
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\n")  # and nothing more
        await peer.until_closed()

    async with serve(handler) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        with pytest.raises(RequestTimeout):
            await client.request("GET", "/", timeout=0.4)
    assert server.accepts == 1


async def test_new_connection_closed_without_answer_is_not_retried() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()

    async with serve(handler) as server, client_for(server) as client:
        with pytest.raises(TransportError, match="closed before a response"):
            await client.request("GET", "/", timeout=2)
    assert server.accepts == 1


async def test_response_cut_short_is_an_error_and_not_retried() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")

    async with serve(handler) as server, client_for(server) as client:
        with pytest.raises(TransportError, match="closed before the response was complete"):
            await client.request("GET", "/", timeout=2)
    assert server.accepts == 1


async def test_chunked_response_cut_short_is_an_error() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(chunked(b"partial", end=False))

    async with serve(handler) as server, client_for(server) as client:
        with pytest.raises(TransportError, match="closed before the response was complete"):
            await client.request("GET", "/", timeout=2)


async def test_malformed_response_is_a_protocol_error() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"SPDY/3 200 OK\r\n\r\n")
        await peer.until_closed()

    async with serve(handler) as server, client_for(server) as client:
        with pytest.raises(TransportError, match=r"^invalid HTTP response from 127\.0\.0\.1:\d+: "):
            await client.request("GET", "/", timeout=2)


@pytest.mark.parametrize(
    "answer",
    [response(b"x" * 11), chunked(b"x" * 6, b"x" * 5)],
    ids=["content-length", "chunked"],
)
async def test_body_over_the_limit_is_an_error(answer: bytes) -> None:
    async with serve(answer_all(answer)) as server, client_for(server, max_body=10) as client:
        with pytest.raises(TransportError, match=r"is larger than 10 bytes$"):
            await client.request("GET", "/", timeout=2)


async def test_body_at_the_limit_is_accepted() -> None:
    async with (
        serve(answer_all(response(b"x" * 10))) as server,
        client_for(server, max_body=10) as client,
    ):
        assert (await client.request("GET", "/", timeout=2)).body == b"x" * 10


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("GET", "/", {"X-Bad": "a\r\nb"}),
        ("GET", "/", {"X-Bad": "a\x00b"}),
        ("GET", "/", {"X Bad": "a"}),
        ("GET", "/", {"X-Bad:": "a"}),
        ("GET", "/", {"X-Bad": "caf\u00e9"}),
        ("GET", "/a b", {}),
        ("GET", "/a\r\nX-Smuggled: 1", {}),
        ("GET", "", {}),
        ("GE T", "/", {}),
        ("", "/", {}),
    ],
    ids=[
        "crlf-in-value",
        "nul-in-value",
        "space-in-name",
        "colon-in-name",
        "non-ascii-value",
        "space-in-target",
        "crlf-in-target",
        "empty-target",
        "space-in-method",
        "empty-method",
    ],
)
async def test_malformed_request_is_refused_before_connecting(
    method: str, target: str, headers: dict[str, str]
) -> None:
    async with serve(answer_all(response())) as server, client_for(server) as client:
        with pytest.raises(ValueError, match=r"^invalid request "):
            await client.request(method, target, headers=headers, timeout=2)
    assert server.accepts == 0


async def test_header_values_are_sent_without_surrounding_whitespace() -> None:
    async with serve(answer_all(response())) as server, client_for(server) as client:
        await client.request("GET", "/", headers={"X-Padded": " \tv a l\t "}, timeout=2)
    assert b"\r\nx-padded: v a l\r\n" in server.requests[0]


async def test_response_head_over_the_limit_is_an_error() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * MAX_HEAD)
        await peer.until_closed()

    async with serve(handler) as server, client_for(server) as client:
        with pytest.raises(
            TransportError, match=rf"head and trailers from .* exceed {MAX_HEAD} bytes$"
        ):
            await client.request("GET", "/", timeout=2)
        await server.wait_closed_by_client(1)


UNTIL_TRAILERS = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nline1\n\r\n0\r\n"
# A response's start and what the server then sends over and over.
ENDLESS = {
    "trailer-fields": (UNTIL_TRAILERS, b"X-Trailer: %s\r\n" % (b"t" * 50) * 256),
    "one-trailer-field": (UNTIL_TRAILERS + b"X-Trailer: ", b"t" * 16384),
    "header-fields": (b"HTTP/1.1 200 OK\r\n", b"X-Header: %s\r\n" % (b"h" * 50) * 256),
    "informational": (b"", b"HTTP/1.1 100 \r\n\r\n" * 1000),
}
TOO_LARGE = rf"^response head and trailers from 127\.0\.0\.1:\d+ exceed {MAX_HEAD} bytes$"


async def traced_peak(operation: Awaitable[object]) -> int:
    """Await ``operation``, which must fail for a head and trailers over MAX_HEAD, and
    return the peak of the memory allocated meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(TransportError, match=TOO_LARGE):
            async with asyncio.timeout(2):  # else a regression reads trailers for good
                await operation
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("shape", ENDLESS)
async def test_endless_head_or_trailers_fail_fast_in_bounded_memory(shape: str) -> None:
    async with serve(send_forever(*ENDLESS[shape])) as server, client_for(server) as client:
        started = time.monotonic()
        peak = await traced_peak(client.request("GET", "/", timeout=1))
        assert time.monotonic() - started < 0.5
    assert peak < 2 * MIB


@pytest.mark.parametrize("shape", ["trailer-fields", "one-trailer-field"])
async def test_endless_trailers_end_a_stream_fast_in_bounded_memory(shape: str) -> None:
    lines: list[bytes | bytearray] = []
    async with (
        serve(send_forever(*ENDLESS[shape])) as server,
        client_for(server) as client,
        client.stream("GET", "/", connect_timeout=2, read_timeout=1) as stream,
    ):
        started = time.monotonic()
        peak = await traced_peak(collect(stream, lines))
        assert time.monotonic() - started < 0.5
    assert lines == [b"line1"]
    assert peak < 2 * MIB


async def test_default_body_limit_is_5_mib() -> None:
    answers = answer_all(response(b"x" * 5 * MIB), response(b"x" * (5 * MIB + 1)))
    async with serve(answers) as server, default_client(server) as client:
        assert len((await client.request("GET", "/", timeout=5)).body) == 5 * MIB
        with pytest.raises(TransportError, match=rf"is larger than {5 * MIB} bytes$"):
            await client.request("GET", "/", timeout=5)


async def test_default_watch_line_limit_is_5_mib() -> None:
    at_limit = b"a" * 5 * MIB
    answer = chunked(at_limit + b"\n", b"b" * (5 * MIB + 1))
    lines: list[bytes | bytearray] = []
    async with (
        serve(answer_all(answer)) as server,
        default_client(server) as client,
        client.stream("GET", "/", connect_timeout=2, read_timeout=5) as stream,
    ):
        with pytest.raises(TransportError, match=rf"is longer than {5 * MIB} bytes$"):
            await collect(stream, lines)
    assert lines == [at_limit]


async def test_body_delimited_by_close_is_complete_and_not_reused() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")

    async with serve(handler) as server, client_for(server) as client:
        first = await client.request("GET", "/", timeout=2)
        second = await client.request("GET", "/", timeout=2)
    assert first.body == second.body == b"until the end"
    assert server.accepts == 2


@pytest.mark.parametrize(
    "after",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo", b"garbage\r\n"],
    ids=["a-second-response", "garbage"],
)
async def test_bytes_after_the_response_keep_the_connection_from_reuse(after: bytes) -> None:
    answer = response(b"one") + after
    async with serve(answer_all(answer)) as server, client_for(server) as client:
        bodies = [(await client.request("GET", "/", timeout=2)).body for _ in range(2)]
    assert bodies == [b"one", b"one"]
    assert server.accepts == 2


async def test_connection_refused() -> None:
    port = unused_port()
    client = HttpClient(Endpoint("127.0.0.1", port), keepalive=None, user_agent=UA)
    with pytest.raises(TransportError) as error:
        await client.request("GET", "/", timeout=2)
    assert str(error.value) == f"connection to 127.0.0.1:{port} refused"


async def test_closed_client_refuses_requests() -> None:
    async with serve(answer_all(response())) as server:
        client = client_for(server)
        await client.request("GET", "/", timeout=2)
        (idle,) = client._idle
        await client.aclose()
        assert idle.transport.is_closing()
        await server.wait_closed_by_client(1)
        with pytest.raises(RuntimeError, match="is closed"):
            await client.request("GET", "/", timeout=2)


@pytest.mark.parametrize(
    ("idle", "interval", "count"), [(0, 5, 3), (30, 0, 3), (30, 5, 0), (30, 5, 128), (40000, 5, 3)]
)
def test_keepalive_settings_out_of_range_are_refused(idle: int, interval: int, count: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        TcpKeepalive(idle, interval, count)


def test_endpoint_authority_brackets_ipv6() -> None:
    assert Endpoint("fd00::1", 6443).authority == "[fd00::1]:6443"
    assert Endpoint("10.0.0.1", 443).authority == "10.0.0.1:443"
    with pytest.raises(ValueError, match="without brackets"):
        Endpoint("[fd00::1]", 6443)


# --- timeouts --------------------------------------------------------------------


async def test_unanswered_request_times_out_within_the_bound_and_is_not_reused() -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await silent(peer)
        else:
            await answer_all(response(b"later"))(peer)

    async with serve(handler) as server, client_for(server) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeout) as error:
            await client.request("GET", "/", timeout=0.3)
        assert time.monotonic() - started < 0.3 + 0.5
        assert str(error.value) == f"no response from 127.0.0.1:{server.port} within 0.3 s"
        await server.wait_closed_by_client(1)
        assert (await client.request("GET", "/", timeout=2)).body == b"later"
    assert server.accepts == 2


async def test_tls_handshake_that_never_completes_is_bounded(pki: Pki) -> None:
    async with serve(silent) as server:  # plain TCP: it never answers the ClientHello
        client = client_for(server, tls=pki.client_context())
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            await client.request("GET", "/", timeout=0.3)
        with pytest.raises(RequestTimeout, match=r"within 0\.3 s$"):
            async with client.stream("GET", "/", connect_timeout=0.3, read_timeout=5):
                pass
        assert time.monotonic() - started < 2 * 0.3 + 0.5
        await server.wait_closed_by_client(2)


# --- TLS -------------------------------------------------------------------------


async def test_tls_request_with_server_hostname_as_sni(pki: Pki, tmp_path: Path) -> None:
    server_tls = pki.server_context(tmp_path)
    sni: list[str | None] = []
    server_tls.sni_callback = lambda _sock, name, _ctx: sni.append(name)
    async with serve(answer_all(response(b"secure")), server_tls) as server:
        async with client_for(
            server, tls=pki.client_context(), server_hostname=SERVER_NAME
        ) as client:
            assert (await client.request("GET", "/", timeout=2)).body == b"secure"
        async with client_for(server, tls=pki.client_context()) as client:  # verified as 127.0.0.1
            assert (await client.request("GET", "/", timeout=2)).body == b"secure"
    assert sni == [SERVER_NAME, None]  # no SNI for an IP address
    assert head_fields(server.requests[0])["host"] == f"127.0.0.1:{server.port}"


async def test_tls_with_the_wrong_ca_fails_verification(pki: Pki, tmp_path: Path) -> None:
    async with serve(answer_all(response()), pki.server_context(tmp_path)) as server:
        client = client_for(server, tls=pki.client_context(ca_pem=pki.other_ca_pem))
        with pytest.raises(TransportError) as error:
            await client.request("GET", "/", timeout=2)
    assert str(error.value).startswith(
        f"TLS handshake with 127.0.0.1:{server.port} failed: certificate verify failed: "
    )
    assert server.accepts == 0


async def test_tls_with_a_name_not_in_the_certificate_fails(pki: Pki, tmp_path: Path) -> None:
    async with serve(answer_all(response()), pki.server_context(tmp_path)) as server:
        client = client_for(server, tls=pki.client_context(), server_hostname="other.test")
        with pytest.raises(TransportError, match="certificate verify failed: Hostname mismatch"):
            await client.request("GET", "/", timeout=2)


# --- TLS session resumption --------------------------------------------------------


def resuming(pki: Pki) -> ResumingContext:
    return ResumingContext.verifying(cadata=pki.ca_pem.decode())


def idle_resumed(client: HttpClient) -> list[bool]:
    """Whether each idle connection's handshake resumed a session, as the client saw it."""
    return [conn.transport.get_extra_info("ssl_object").session_reused for conn in client._idle]


async def test_new_connections_resume_the_tls_session_of_an_earlier_one(
    pki: Pki, tmp_path: Path
) -> None:
    resumed: list[bool] = []
    async with (
        serve(noting_resumption(resumed), pki.server_context(tmp_path)) as server,
        client_for(server, tls=resuming(pki), server_hostname=SERVER_NAME) as client,
    ):
        await client.request("GET", "/", timeout=2)
        # The watch's own connection, and a request's while it lasts.
        async with client.stream("GET", "/w", connect_timeout=2, read_timeout=2):
            await client.request("GET", "/", timeout=2, fresh=True)
        assert idle_resumed(client) == [False, True]
    assert resumed == [False, True, True]


async def test_a_server_that_refuses_resumption_gets_full_handshakes(
    pki: Pki, tmp_path: Path
) -> None:
    resumed: list[bool] = []
    server_tls = pki.server_context(tmp_path)
    tls = resuming(pki)
    async with (
        serve(noting_resumption(resumed), server_tls) as server,
        client_for(server, tls=tls) as client,
    ):
        for _ in range(2):
            await client.request("GET", "/", timeout=2, fresh=True)
        # From now on the server neither accepts the tickets it issued (as after a
        # restart, with new ticket keys) nor issues any.
        server_tls.options |= ssl.OP_NO_TICKET
        server_tls.num_tickets = 0
        for _ in range(2):
            assert (await client.request("GET", "/", timeout=2, fresh=True)).body == b"ok"
        # The refused session is not offered again.
        assert tls.session(("127.0.0.1", server.port, "127.0.0.1")) is None
    assert resumed == [False, True, False, False]


async def test_a_changed_ca_file_makes_the_next_handshake_a_full_one(
    pki: Pki, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(pki.ca_pem)
    resumed: list[bool] = []
    async with serve(noting_resumption(resumed), pki.server_context(tmp_path)) as server:
        tls = ResumingContext.verifying(cafile=str(ca_file))
        endpoint = Endpoint("127.0.0.1", server.port, tls, ca_file=str(ca_file))
        async with HttpClient(endpoint, keepalive=None, user_agent=UA) as client:
            for _ in range(2):
                await client.request("GET", "/", timeout=2, fresh=True)
            replace_file(ca_file, pki.ca_pem + pki.other_ca_pem)  # a CA rotation begins
            for _ in range(2):
                await client.request("GET", "/", timeout=2, fresh=True)
    assert resumed == [False, True, False, True]


async def test_a_new_client_certificate_makes_the_next_handshake_a_full_one(
    pki: Pki, tmp_path: Path
) -> None:
    # A resumed handshake presents no certificate: the server would go on seeing the
    # one of the session's full handshake.
    resumed: list[bool] = []
    tls = resuming(pki)
    load_client_cert(tls, pki.client_cert_pem, pki.client_key_pem, "test")
    server_tls = pki.server_context(tmp_path, client_ca=True)
    async with (
        serve(noting_resumption(resumed), server_tls) as server,
        client_for(server, tls=tls) as client,
    ):
        for _ in range(2):
            await client.request("GET", "/", timeout=2, fresh=True)
        # As a credential plugin's new certificate is loaded.
        load_client_cert(tls, pki.client_cert_pem, pki.client_key_pem, "test")
        for _ in range(2):
            await client.request("GET", "/", timeout=2, fresh=True)
    assert resumed == [False, True, False, True]


async def test_a_session_from_before_a_change_is_not_kept(pki: Pki, tmp_path: Path) -> None:
    # A request on a connection made before the client certificate changed is answered
    # after the change: its session is not offered.
    answered = asyncio.Event()

    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await answered.wait()
            await peer.send(response(b"late"))
        await answer_all(response(b"ok"))(peer)

    resumed: list[bool] = []
    tls = resuming(pki)
    async with (
        serve(noting_resumption(resumed, handler), pki.server_context(tmp_path)) as server,
        client_for(server, tls=tls) as client,
    ):
        late = asyncio.create_task(client.request("GET", "/", timeout=2))
        await server.wait_requests(1)
        load_client_cert(tls, pki.client_cert_pem, pki.client_key_pem, "test")
        answered.set()
        assert (await late).body == b"late"
        await client.request("GET", "/", timeout=2, fresh=True)
    assert resumed == [False, False]


@pytest.mark.parametrize("ca", ["file", "data", "system"])
def test_a_resuming_context_is_set_up_as_the_default_one(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ca: str
) -> None:
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "keys.log"))
    (tmp_path / "ca.crt").write_bytes(pki.ca_pem)
    cafile, cadata = {
        "file": (str(tmp_path / "ca.crt"), None),
        "data": (None, pki.ca_pem.decode()),
        "system": (None, None),
    }[ca]
    ours = ResumingContext.verifying(cafile=cafile, cadata=cadata)
    default = ssl.create_default_context(cafile=cafile, cadata=cadata)

    def settings(tls: ssl.SSLContext) -> object:
        return (
            tls.protocol,
            tls.verify_mode,
            tls.check_hostname,
            tls.verify_flags,
            tls.options,
            tls.minimum_version,
            tls.maximum_version,
            tls.keylog_filename,
            tls.get_ca_certs(),
            tls.cert_store_stats(),
        )

    assert settings(ours) == settings(default)


# --- socket options --------------------------------------------------------------


def client_socket(client: HttpClient) -> socket.socket:
    (conn,) = client._idle
    sock: socket.socket = conn.transport.get_extra_info("socket")
    return sock


async def test_keepalive_and_nodelay_are_set_on_the_socket(pki: Pki, tmp_path: Path) -> None:
    keepalive = TcpKeepalive(idle=11, interval=7, count=3)
    async with (
        serve(answer_all(response()), pki.server_context(tmp_path)) as server,
        client_for(server, tls=pki.client_context(), keepalive=keepalive) as client,
    ):
        await client.request("GET", "/", timeout=2)
        sock = client_socket(client)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 11
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 7
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


async def test_no_keepalive_when_none_is_asked() -> None:
    async with serve(answer_all(response())) as server, client_for(server) as client:
        await client.request("GET", "/", timeout=2)
        assert client_socket(client).getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


# --- cancellation ----------------------------------------------------------------


def leftover_tasks(server: Server) -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - server.tasks - {asyncio.current_task()}


async def test_cancelled_request_closes_its_socket_and_leaves_no_task() -> None:
    async with serve(silent) as server, client_for(server) as client:
        task = asyncio.create_task(client.request("GET", "/", timeout=10))
        await server.wait_requests(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.wait_closed_by_client(1, timeout=1)
        assert not leftover_tasks(server)
        assert not client._idle


async def test_cancelled_stream_closes_its_socket_and_leaves_no_task() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(chunked(b'{"n":1}\n', end=False))
        await peer.until_closed()

    lines: list[bytes | bytearray] = []
    first_line = asyncio.Event()

    async def watch(client: HttpClient) -> None:
        async with client.stream("GET", "/w", connect_timeout=2, read_timeout=10) as stream:
            async for line in stream.lines():
                lines.append(line)
                first_line.set()

    async with serve(handler) as server, client_for(server) as client:
        task = asyncio.create_task(watch(client))
        await first_line.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.wait_closed_by_client(1, timeout=1)
        assert not leftover_tasks(server)
    assert lines == [b'{"n":1}']


# --- streams ---------------------------------------------------------------------

WATCH_BODY = (
    b'{"type":"ADDED","n":1}\n'
    b"\n"
    b'{"type":"MODIFIED","n":2}\r\n'
    b"   \n"
    b'{"type":"MODIFIED","n":3,"pad":"' + b"p" * 40 + b'"}\n'
    b'{"type":"DELETED","n":4}'  # the body ends without a newline
)
WATCH_LINES = [
    b'{"type":"ADDED","n":1}',
    b'{"type":"MODIFIED","n":2}',
    b'{"type":"MODIFIED","n":3,"pad":"' + b"p" * 40 + b'"}',
    b'{"type":"DELETED","n":4}',
]


async def collect(stream: Stream, into: list[bytes | bytearray]) -> None:
    async for line in stream.lines():
        into.append(line)


@pytest.mark.parametrize("size", [1, 2, 5, 7, 23, len(WATCH_BODY)])
async def test_stream_lines_are_reassembled_across_chunks(size: int) -> None:
    pieces = [WATCH_BODY[i : i + size] for i in range(0, len(WATCH_BODY), size)]

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(chunked(*pieces))
        await peer.until_closed()

    async with serve(handler) as server, client_for(server) as client:
        async with client.stream(
            "GET",
            "/api/v1/pods?watch=1",
            headers={"Authorization": "Bearer t"},
            connect_timeout=2,
            read_timeout=2,
        ) as stream:
            assert stream.status == 200
            assert stream.headers["transfer-encoding"] == "chunked"
            lines = [line async for line in stream.lines()]
        await server.wait_closed_by_client(1)  # the stream's connection is never pooled
    assert lines == WATCH_LINES
    assert head_fields(server.requests[0])["authorization"] == "Bearer t"


async def test_stream_lines_arriving_over_time() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b'{"a":', b'1}\n{"b"', b":2}\n"):
            await asyncio.sleep(0.01)
            await peer.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        await peer.send(b"0\r\n\r\n")
        await peer.until_closed()

    async with (
        serve(handler) as server,
        client_for(server) as client,
        client.stream("GET", "/", connect_timeout=2, read_timeout=2) as stream,
    ):
        lines = [line async for line in stream.lines()]
    assert lines == [b'{"a":1}', b'{"b":2}']


async def test_silent_stream_raises_read_timeout() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(chunked(b"first\n", end=False))
        await peer.until_closed()

    lines: list[bytes | bytearray] = []
    async with (
        serve(handler) as server,
        client_for(server) as client,
        client.stream("GET", "/", connect_timeout=2, read_timeout=0.2) as stream,
    ):
        started = time.monotonic()
        with pytest.raises(ReadTimeout) as error:
            await collect(stream, lines)
        assert 0.2 <= time.monotonic() - started < 0.2 + 0.5
    assert lines == [b"first"]
    assert str(error.value) == f"no non-blank line from 127.0.0.1:{server.port} within 0.2 s"


@pytest.mark.parametrize("trickle", [b"\n", b"x"], ids=["blank-lines", "a-line-that-never-ends"])
async def test_trickled_bytes_do_not_keep_a_stream_up(trickle: bytes) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(chunked(b"first\n", end=False))
        with contextlib.suppress(ConnectionError):
            while True:
                await asyncio.sleep(0.1)
                await peer.send(b"1\r\n%s\r\n" % trickle)

    lines: list[bytes | bytearray] = []
    async with (
        serve(handler) as server,
        client_for(server) as client,
        client.stream("GET", "/", connect_timeout=2, read_timeout=0.5) as stream,
    ):
        started = time.monotonic()
        with pytest.raises(ReadTimeout, match=r"^no non-blank line from .* within 0\.5 s$"):
            async with asyncio.timeout(3):  # else a regression keeps the test waiting
                await collect(stream, lines)
        assert 0.5 <= time.monotonic() - started < 1
    assert lines == [b"first"]


async def test_stream_with_a_line_within_each_read_timeout_stays_up() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for n in range(5):
            await asyncio.sleep(0.3)
            await peer.send(b'9\r\n{"n":%d}\n\n\r\n' % n)
        await peer.send(b"0\r\n\r\n")
        await peer.until_closed()

    async with (
        serve(handler) as server,
        client_for(server) as client,
        client.stream("GET", "/", connect_timeout=2, read_timeout=0.5) as stream,
    ):
        lines = [line async for line in stream.lines()]
    assert lines == [b'{"n":%d}' % n for n in range(5)]


async def test_stream_without_response_head_raises_read_timeout() -> None:
    async with serve(silent) as server, client_for(server) as client:
        with pytest.raises(ReadTimeout):
            async with client.stream("GET", "/", connect_timeout=2, read_timeout=0.2):
                pass
        await server.wait_closed_by_client(1)


async def test_stream_closed_mid_body_is_an_error() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(chunked(b"one\ntw", end=False))

    lines: list[bytes | bytearray] = []
    async with (
        serve(handler) as server,
        client_for(server) as client,
        client.stream("GET", "/", connect_timeout=2, read_timeout=2) as stream,
    ):
        with pytest.raises(TransportError, match="closed before the response was complete"):
            await collect(stream, lines)
    assert lines == [b"one"]


async def test_stream_line_over_the_limit_is_an_error() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(chunked(b"x" * 16 + b"\n", b"y" * 9, b"y" * 8, end=False))
        await peer.until_closed()

    lines: list[bytes | bytearray] = []
    async with (
        serve(handler) as server,
        client_for(server, max_body=16) as client,
        client.stream("GET", "/", connect_timeout=2, read_timeout=2) as stream,
    ):
        with pytest.raises(TransportError, match=r"line from .* is longer than 16 bytes"):
            await collect(stream, lines)
    assert lines == [b"x" * 16]


async def test_stream_error_status_body_is_read_up_to_the_limit() -> None:
    status = b'{"kind":"Status","code":410,"reason":"Expired"}'
    answer = response(status, status=b"410 Gone", headers=b"Content-Type: application/json\r\n")
    async with serve(answer_all(answer)) as server, client_for(server) as client:
        async with client.stream("GET", "/", connect_timeout=2, read_timeout=2) as stream:
            assert (stream.status, stream.reason) == (410, "Gone")
            assert stream.headers["content-type"] == "application/json"
            assert await stream.read_body(1000) == status
        async with client.stream("GET", "/", connect_timeout=2, read_timeout=2) as stream:
            assert await stream.read_body(8) == status[:8]
    assert server.accepts == 2


# --- TCP keepalive: a silent connection declared dead in time ---------------------------


@given(st.integers(min_value=1, max_value=3600))
def test_keepalive_declares_a_dead_connection_within_two_intervals(interval: int) -> None:
    keepalive = TcpKeepalive.dead_within(2 * interval)
    assert keepalive.idle >= 1
    assert keepalive.interval >= 1
    assert keepalive.count >= 1
    assert keepalive.idle + keepalive.interval * keepalive.count <= 2 * interval
    assert keepalive.idle <= 32767  # the kernel's limit for TCP_KEEPIDLE


def test_keepalive_default() -> None:
    keepalive = TcpKeepalive.dead_within(2 * 10)
    assert (keepalive.idle, keepalive.interval, keepalive.count) == (5, 3, 4)


# --- what Go's net/http accepts ---------------------------------------------------


async def test_content_length_beside_chunked_chunked_wins_and_the_connection_is_not_reused() -> (
    None
):
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    async with serve(answer_all(answer)) as server, client_for(server) as client:
        bodies = [(await client.request("GET", "/", timeout=2)).body for _ in range(2)]
    assert bodies == [b"hello", b"hello"]
    assert server.accepts == 2


async def test_bare_lf_line_ends_are_accepted() -> None:
    answer = b"HTTP/1.1 200 OK\nContent-Length: 5\nX-Kind: lf\n\nhello"
    async with serve(answer_all(answer)) as server, client_for(server) as client:
        result = await client.request("GET", "/", timeout=2)
        assert (await client.request("GET", "/", timeout=2)).body == b"hello"
    assert (result.body, result.headers["x-kind"]) == (b"hello", "lf")
    assert server.accepts == 1


async def test_obs_folded_header_fields_are_joined() -> None:
    answer = b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n two\r\nContent-Length: 2\r\n\r\nok"
    async with serve(answer_all(answer)) as server, client_for(server) as client:
        result = await client.request("GET", "/", timeout=2)
    assert (result.body, result.headers["x-folded"]) == (b"ok", "one two")


@pytest.mark.parametrize(
    "field", [b"X-Bad: a\x01b", b"Bad Name: x", b"X-Bad: a\x7fb"], ids=["ctl", "space", "del"]
)
async def test_fields_go_refuses_are_refused(field: bytes) -> None:
    answer = b"HTTP/1.1 200 OK\r\n%s\r\nContent-Length: 2\r\n\r\nok" % field
    async with serve(answer_all(answer)) as server, client_for(server) as client:
        with pytest.raises(TransportError, match=r"^invalid HTTP response from 127\.0\.0\.1:"):
            await client.request("GET", "/", timeout=2)


def redirecting(location: bytes, status: bytes = b"307 Temporary Redirect") -> Handler:
    """Redirect requests for /old to ``location``; answer the others with their target."""

    async def handler(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            target = request.split(b" ")[1]
            if target == b"/old":
                await peer.send(response(status=status, headers=b"Location: %s\r\n" % location))
            else:
                await peer.send(response(b"at " + target))

    return handler


@pytest.mark.parametrize("status", [b"307 Temporary Redirect", b"308 Permanent Redirect"])
@pytest.mark.parametrize("absolute", [False, True], ids=["path", "absolute"])
async def test_same_host_redirects_are_followed_with_method_and_body(
    status: bytes, absolute: bool
) -> None:
    async with serve(redirecting(b"")) as server:
        prefix = b"http://127.0.0.1:%d" % server.port if absolute else b""
        server.handler = redirecting(prefix + b"/new?x=1", status)
        async with client_for(server) as client:
            result = await client.request("PATCH", "/old", body=b'{"a":1}', timeout=2)
    assert result.body == b"at /new?x=1"
    assert [r.split(b" ")[:2] for r in server.requests] == [
        [b"PATCH", b"/old"],
        [b"PATCH", b"/new?x=1"],
    ]
    assert server.requests[1].endswith(b'\r\n\r\n{"a":1}')


@pytest.mark.parametrize(
    "location",
    [b"http://other.test/new", b"https://127.0.0.1:%d/new", b"//other.test/new", b""],
    ids=["other-host", "other-scheme", "scheme-relative", "none"],
)
async def test_redirects_elsewhere_are_returned_as_they_are(location: bytes) -> None:
    async with serve(redirecting(b"")) as server:
        server.handler = redirecting(location.replace(b"%d", b"%d" % server.port))
        async with client_for(server) as client:
            result = await client.request("GET", "/old", timeout=2)
    assert result.status == 307
    assert len(server.requests) == 1


async def test_a_redirect_loop_ends() -> None:
    async with serve(redirecting(b"/old")) as server, client_for(server) as client:
        result = await client.request("GET", "/old", timeout=2)
    assert result.status == 307
    assert len(server.requests) == transport.MAX_REDIRECTS + 1


async def test_redirects_stay_within_the_request_timeout() -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await asyncio.sleep(0.2)
            await peer.send(response(status=b"307 Temporary Redirect", headers=b"Location: /a\r\n"))

    async with serve(handler) as server, client_for(server) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            await client.request("GET", "/", timeout=0.5)
        assert time.monotonic() - started < 0.8


# --- a rotated CA ----------------------------------------------------------------


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` at once, as the kubelet updates a projected volume."""
    staged = path.with_suffix(".new")
    staged.write_bytes(data)
    os.replace(staged, path)


async def test_a_rotated_ca_file_is_trusted_by_new_connections(pki: Pki, tmp_path: Path) -> None:
    rotated = make_pki.__wrapped__()  # another CA, and a server certificate it signed
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(pki.ca_pem)
    server_tls = pki.server_context(tmp_path)
    endpoint = Endpoint(
        "127.0.0.1", 0, ssl.create_default_context(cafile=str(ca_file)), ca_file=str(ca_file)
    )
    async with serve(answer_all(response(b"ok")), server_tls) as server:
        endpoint = msgspec.structs.replace(endpoint, port=server.port)
        async with HttpClient(endpoint, keepalive=None, user_agent=UA) as client:
            assert (await client.request("GET", "/", timeout=2)).body == b"ok"
            # The server moves to the new CA's certificate; a half-written CA file is
            # not loaded (the connection fails, the next one tries again).
            (tmp_path / "rotated").mkdir()
            rotated_chain = tmp_path / "rotated" / "server.pem"
            rotated_chain.write_bytes(rotated.server_cert_pem + rotated.server_key_pem)
            server_tls.load_cert_chain(rotated_chain)
            client._drop_idle()
            replace_file(ca_file, rotated.ca_pem[:100])
            with pytest.raises(TransportError, match="certificate verify failed"):
                await client.request("GET", "/", timeout=2)
            replace_file(ca_file, rotated.ca_pem)
            assert (await client.request("GET", "/", timeout=2)).body == b"ok"
    assert server.accepts == 2  # the failed handshake never reached the handler


# --- no extra copies of a large body ---------------------------------------------


def sending_in_pieces(body: bytes) -> Handler:
    """Answer one request with ``body`` in 64 KiB chunks, each written once the previous
    one left: the server holds no copy of its own."""

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(body), 64 * 1024):
            piece = body[start : start + 64 * 1024]
            await peer.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        await peer.send(b"0\r\n\r\n")
        await peer.until_closed()

    return handler


async def allocated_peak(operation: Awaitable[object]) -> int:
    """The peak of the memory allocated while ``operation`` runs."""
    tracemalloc.start()
    try:
        await operation
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_a_3_mib_body_is_kept_once() -> None:
    body = b"x" * (3 * MIB - 100)
    results: list[bytes | bytearray] = []
    async with serve(sending_in_pieces(body)) as server, default_client(server) as client:

        async def get() -> None:
            results.append((await client.request("GET", "/", timeout=10)).body)

        peak = await allocated_peak(get())
    assert results == [body]
    # The body and its buffer's slack; a second copy would double it.
    assert peak < 4.5 * MIB, peak / MIB


async def test_a_3_mib_watch_line_is_kept_once() -> None:
    line = b"y" * (3 * MIB - 100) + b"\n"
    lines: list[bytes | bytearray] = []
    async with serve(sending_in_pieces(line)) as server, default_client(server) as client:

        async def watch() -> None:
            async with client.stream("GET", "/", connect_timeout=2, read_timeout=5) as stream:
                async for received in stream.lines():
                    lines.append(received)

        peak = await allocated_peak(watch())
    assert lines == [line[:-1]]
    assert peak < 4.5 * MIB, peak / MIB
