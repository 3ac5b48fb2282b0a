"""A TLS-terminating HTTP/1.1 proxy in front of kube-apiserver that answers chosen
requests with hostile responses.

The TCP fault proxy (:mod:`harness.faultproxy`) can only break connections: the
reporter speaks TLS to the API server, so what a server *says* can only be changed by a
peer that holds a certificate the reporter trusts. This proxy presents the API server's
own serving certificate (signed by the harness CA, valid for 127.0.0.1), forwards every
request to the real kube-apiserver over HTTPS (the client's ``Authorization`` header
included, so the audit log still names the reporter), and replaces the response of
the requests that match a :class:`Rule`: an empty chunked body, a chunked body followed
by trailer fields that never end, a body of any size; or it forwards them late
(:class:`Delayed`), or forwards them and sends a stray extra response on the idle
connection afterwards (:class:`Stray`). It can also move to another serving certificate
(a rotated CA) and reset every client connection.

It runs its own event loop in a thread, listens on 127.0.0.1 only, and uses nothing
but the standard library.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from harness.controlplane import ControlPlane
from harness.loopthread import LoopThread

# The pieces hostile bodies are sent in, and the size of one batch of trailer fields.
_PIECE = 1024 * 1024
_TRAILER_BATCH = 64 * 1024
# "Endless" trailers stop here, so that a client that never hangs up cannot keep the
# proxy busy for ever (the reporter must hang up after 64 KiB).
_TRAILER_CAP = 256 * 1024 * 1024
_RELAY_READ = 64 * 1024
_BODYLESS = frozenset({204, 304})


@dataclass(frozen=True)
class Request:
    """One request as the client sent it; ``at`` is its arrival (monotonic clock)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    at: float

    @property
    def path(self) -> str:
        """The target's path, without the query."""
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        """The target's query parameters."""
        return parse_qs(urlsplit(self.target).query)

    @property
    def is_watch(self) -> bool:
        """A watch request (``watch=true``)."""
        return self.query.get("watch") == ["true"]


@dataclass(frozen=True)
class Sized:
    """A ``200`` whose ``Content-Length`` body is ``body``."""

    body: bytes


@dataclass(frozen=True)
class Chunked:
    """A ``200`` with a chunked body: ``body`` (in chunks of at most 1 MiB), the last
    chunk, then the end of the trailer section, or, with ``endless_trailers``, trailer
    fields that never end (until the client hangs up)."""

    body: bytes = b""
    endless_trailers: bool = False


@dataclass(frozen=True)
class Delayed:
    """Forward the request ``seconds`` late: a slow API server."""

    seconds: float


@dataclass(frozen=True)
class Stray:
    """Forward the request, then, ``after`` seconds later, send ``response`` (a whole
    HTTP response) on the same connection unasked: a proxy's duplicate, or the tail of
    an answer given up on."""

    response: bytes
    after: float = 0.3


Hostile = Sized | Chunked | Delayed | Stray
Match = Callable[[Request], bool]


@dataclass
class Rule:
    """Answer the requests that ``match`` with ``response``: the next ``times`` of
    them, or all when ``times`` is None. ``served`` counts the answers given."""

    match: Match
    response: Hostile
    times: int | None = None
    served: int = 0


def pod_watch(request: Request) -> bool:
    """Any watch of Pods (the reporter's watch of its own Pod)."""
    return request.method == "GET" and request.path.endswith("/pods") and request.is_watch


def pod_get(name: str) -> Match:
    """A read of the Pod called ``name``."""

    def match(request: Request) -> bool:
        return request.method == "GET" and request.path.endswith(f"/pods/{name}")

    return match


def _response_head(fields: str) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{fields}\r\n".encode("ascii")


def _pieces(body: bytes) -> list[bytes]:
    return [body[i : i + _PIECE] for i in range(0, len(body), _PIECE)]


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The first line and the fields of a message head (which ends in a blank line)."""
    first, *lines = head.decode("latin-1").split("\r\n")
    fields = []
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            fields.append((name.strip(), value.strip()))
    return first, fields


def _field(fields: list[tuple[str, str]], name: str) -> str | None:
    values = [value for key, value in fields if key.lower() == name]
    return ", ".join(values) if values else None


class HttpProxy:
    """Serves HTTPS on 127.0.0.1:``port`` and forwards to the API server at ``upstream``
    (``host``, ``port``), unless a rule answers first."""

    def __init__(
        self, upstream: tuple[str, int], ca_file: Path, cert_file: Path, key_file: Path
    ) -> None:
        self.upstream = upstream
        self.port = 0
        self.requests: list[Request] = []
        self.trailer_bytes = 0
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_tls.load_cert_chain(cert_file, key_file)
        self._client_tls = ssl.create_default_context(cafile=str(ca_file))
        self._writers: set[asyncio.StreamWriter] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        self._runner = LoopThread()
        self._server: asyncio.Server | None = None

    @classmethod
    def in_front_of(cls, plane: ControlPlane) -> HttpProxy:
        """A proxy for ``plane``'s API server. It presents the API server's own serving
        certificate: the harness keeps no CA key, and that certificate is already
        signed by the CA the reporter trusts, for 127.0.0.1."""
        address = urlsplit(plane.url)
        assert address.hostname is not None
        assert address.port is not None
        return cls(
            (address.hostname, address.port),
            plane.ca_file,
            plane.workdir / "serving.crt",
            plane.workdir / "serving.key",
        )

    @property
    def url(self) -> str:
        """Where clients reach the proxy."""
        return f"https://127.0.0.1:{self.port}"

    def rotate(self, cert_file: Path, key_file: Path) -> None:
        """Present ``cert_file`` from the next handshake on, and reset every client
        connection, so that each client must make a new one."""

        async def rotate() -> None:
            self._server_tls.load_cert_chain(cert_file, key_file)
            for writer in list(self._clients):
                writer.transport.abort()

        self._runner.call(rotate())

    def start(self) -> HttpProxy:
        """Listen on a free loopback port."""
        self._server, self.port = self._runner.serve(
            self._serve, ssl=self._server_tls, ssl_handshake_timeout=10
        )
        return self

    def stop(self) -> None:
        """Close every connection and stop the loop."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            # Connections still being served (a delayed answer, say) end here, not as
            # tasks destroyed pending when the loop stops.
            others = asyncio.all_tasks() - {asyncio.current_task()}
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        self._runner.call(close())
        self._runner.stop()

    # --- rules ---------------------------------------------------------------------------

    def answer(self, match: Match, response: Hostile, times: int | None = None) -> Rule:
        """From now on, answer the requests that ``match`` with ``response`` (rules are
        tried in the order they were added)."""
        rule = Rule(match, response, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def seen(self, match: Match) -> list[Request]:
        """The requests so far that ``match`` (answered by a rule or forwarded)."""
        with self._lock:
            return [request for request in self.requests if match(request)]

    def _rule_for(self, request: Request) -> Hostile | None:
        with self._lock:
            self.requests.append(request)
            for rule in self._rules:
                if (rule.times is None or rule.served < rule.times) and rule.match(request):
                    rule.served += 1
                    return rule.response
        return None

    # --- serving -------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self._clients.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while (request := await _read_request(reader)) is not None:
                hostile = self._rule_for(request)
                stray = None
                if isinstance(hostile, Delayed):
                    await asyncio.sleep(hostile.seconds)
                    hostile = None
                elif isinstance(hostile, Stray):
                    stray, hostile = hostile, None
                if hostile is not None:
                    if not await self._send(writer, hostile):
                        break
                    continue
                if upstream is None:
                    upstream = await asyncio.open_connection(
                        *self.upstream, ssl=self._client_tls, server_hostname=self.upstream[0]
                    )
                    self._writers.add(upstream[1])
                if not await _forward(request, upstream, writer):
                    break
                if stray is not None:
                    # Later, on the connection as it then is: idle, most likely.
                    self._runner.loop.call_later(
                        stray.after, _write_unless_closed, writer, stray.response
                    )
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError):
            pass  # the client or the API server went away, or spoke no HTTP
        finally:
            self._clients.discard(writer)
            for side in (writer, upstream[1] if upstream else None):
                if side is not None:
                    self._writers.discard(side)
                    side.transport.abort()

    async def _send(self, writer: asyncio.StreamWriter, response: Sized | Chunked) -> bool:
        """Send a hostile response; whether the connection can serve another request."""
        if isinstance(response, Sized):
            writer.write(_response_head(f"Content-Length: {len(response.body)}\r\n"))
            for piece in _pieces(response.body):
                writer.write(piece)
                await _yield(writer)
            return True
        writer.write(_response_head("Transfer-Encoding: chunked\r\n"))
        for piece in _pieces(response.body):
            writer.write(f"{len(piece):x}\r\n".encode("ascii") + piece + b"\r\n")
            await _yield(writer)
        writer.write(b"0\r\n")
        if not response.endless_trailers:
            writer.write(b"\r\n")
            await writer.drain()
            return True
        field_line = b"X-Trailer: " + b"t" * 100 + b"\r\n"
        batch = field_line * (_TRAILER_BATCH // len(field_line))
        sent = 0
        while sent < _TRAILER_CAP and not writer.is_closing():
            writer.write(batch)
            await _yield(writer)
            sent += len(batch)
            self.trailer_bytes += len(batch)
        return False


def _write_unless_closed(writer: asyncio.StreamWriter, data: bytes) -> None:
    if not writer.is_closing():
        writer.write(data)


async def _yield(writer: asyncio.StreamWriter) -> None:
    """Wait for room in the send buffer, and let the loop run: once the client is gone, a
    TLS transport drops writes without a word and its drain no longer waits, so only the
    loop's turn (which delivers connection_lost) makes ``is_closing()`` true."""
    await writer.drain()
    await asyncio.sleep(0)
    if writer.is_closing():
        raise ConnectionResetError("the client went away")


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    """The client's next request, or None when it closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise EOFError("connection closed inside a request head") from None
        return None
    first, fields = _parse_head(head)
    method, target, _ = first.split(" ", 2)
    length = int(_field(fields, "content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    return Request(method, target, tuple(fields), body, time.monotonic())


async def _forward(
    request: Request,
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    client: asyncio.StreamWriter,
) -> bool:
    """Send ``request`` to the API server and relay its response as it arrives (a watch
    event by event); whether both connections can serve another request."""
    up_reader, up_writer = upstream
    head = f"{request.method} {request.target} HTTP/1.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in request.headers) + "\r\n"
    up_writer.write(head.encode("latin-1") + request.body)
    await up_writer.drain()
    response_head = await up_reader.readuntil(b"\r\n\r\n")
    client.write(response_head)
    status_line, fields = _parse_head(response_head)
    status = int(status_line.split(" ", 2)[1])
    keep = "close" not in (_field(fields, "connection") or "").lower()
    if request.method == "HEAD" or status in _BODYLESS:
        await client.drain()
        return keep
    if "chunked" in (_field(fields, "transfer-encoding") or "").lower():
        while True:
            size_line = await up_reader.readuntil(b"\r\n")
            client.write(size_line)
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                while (trailer := await up_reader.readuntil(b"\r\n")) != b"\r\n":
                    client.write(trailer)
                client.write(b"\r\n")
                break
            client.write(await up_reader.readexactly(size + 2))
            await client.drain()
    elif (length := _field(fields, "content-length")) is not None:
        left = int(length)
        while left:
            data = await up_reader.read(min(left, _RELAY_READ))
            if not data:
                raise EOFError("the API server closed the connection inside a body")
            client.write(data)
            left -= len(data)
    else:
        while data := await up_reader.read(_RELAY_READ):
            client.write(data)
            await client.drain()
        keep = False
    await client.drain()
    return keep
