"""A small HTTP/1.1 client for the Kubernetes API: h11 over asyncio streams and stdlib ssl.

:class:`HttpClient` sends one request at a time per connection and keeps at most
two idle keep-alive connections for reuse. Each request is bounded as a whole
(connect, TLS handshake, send, whole body). Watches use :meth:`HttpClient.stream`,
which opens a dedicated connection and bounds every wait for data instead.

Every failure to complete an exchange is a :class:`TransportError` with a one-line
message; a connection whose exchange failed, timed out or was cancelled is aborted,
never reused. The only retry is the one HTTP clients need to make keep-alive safe: a
reused connection that the server closed while it sat idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Final, Self

import h11
import msgspec

DEFAULT_MAX_BODY: Final = 16 * 1024 * 1024
_READ_SIZE: Final = 64 * 1024
_MAX_IDLE: Final = 2

_Outgoing = h11.Request | h11.Data | h11.EndOfMessage


class TransportError(Exception):
    """The exchange did not complete: refused, reset, closed early, TLS or protocol
    failure, or a response over the size limit."""


class RequestTimeout(TransportError):
    """A request, or the set-up of a stream, did not complete within its time bound."""


class ReadTimeout(TransportError):
    """A stream received no data within its read timeout."""


class Endpoint(msgspec.Struct, frozen=True):
    """Where the server is: ``tls`` None means plain HTTP.

    ``host`` is an IP address or DNS name (IPv6 without brackets).
    ``server_hostname`` is the TLS SNI and verification name; None means ``host``.
    """

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.host.startswith("["):
            raise ValueError(f"Endpoint host must be given without brackets: {self.host}")

    @property
    def authority(self) -> str:
        """``host:port``, the host in brackets when it is an IPv6 address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class TcpKeepalive(msgspec.Struct, frozen=True):
    """TCP keepalive probing: first probe after ``idle`` seconds of silence, then every
    ``interval`` seconds; the connection is dead after ``count`` unanswered probes."""

    idle: int
    interval: int
    count: int

    def __post_init__(self) -> None:
        # Linux's limits; setsockopt would fail with EINVAL on each connection.
        if not (0 < self.idle <= 32767 and 0 < self.interval <= 32767 and 0 < self.count <= 127):
            raise ValueError(f"TCP keepalive settings out of range: {self}")


class Response(msgspec.Struct, frozen=True):
    """A complete response; header names are lower-case, repeated fields joined by ", "."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


def _reason(exc: OSError) -> str:
    """The useful part of a socket or TLS error, for a one-line message."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return exc.strerror or str(exc) or type(exc).__name__


def _header_map(fields: Iterable[tuple[bytes, bytes]]) -> Mapping[str, str]:
    merged: dict[str, str] = {}
    for raw_name, raw_value in fields:
        name, value = raw_name.decode("ascii"), raw_value.decode("latin-1")
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    return MappingProxyType(merged)


class _Connection:
    """One TCP or TLS connection with its h11 state machine."""

    __slots__ = ("_eof", "authority", "h11", "reader", "received", "writer")

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.authority = authority
        self.h11 = h11.Connection(h11.CLIENT)
        # Whether any byte of the current response has arrived: before that, a
        # failure on a reused connection means the server had closed it while idle.
        self.received = False
        self._eof = False

    def abort(self) -> None:
        """Close the socket now: no TLS close_notify, nothing to wait for."""
        self.writer.transport.abort()

    async def send(self, events: Iterable[_Outgoing]) -> None:
        """Write a whole request."""
        self.received = False
        try:
            self.writer.write(b"".join(self.h11.send(event) for event in events))
            await self.writer.drain()
        except OSError as exc:
            raise TransportError(f"connection to {self.authority} lost: {_reason(exc)}") from exc

    async def read_head(self, read_timeout: float | None) -> h11.Response:
        """The response's status line and headers, skipping 1xx responses."""
        while True:
            event = await self._next_event(read_timeout)
            if isinstance(event, h11.Response):
                return event
            # Only 1xx responses can come first; h11 raises on anything else.
            assert isinstance(event, h11.InformationalResponse), event

    async def read_chunk(self, read_timeout: float | None) -> bytes | None:
        """The next piece of the response body, or None at its end."""
        event = await self._next_event(read_timeout)
        if isinstance(event, h11.Data):
            return bytes(event.data)
        # After the head, h11 yields only Data events and then EndOfMessage.
        assert isinstance(event, h11.EndOfMessage), event
        return None

    async def _next_event(self, read_timeout: float | None) -> h11.Event:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self._eof:
                    raise TransportError(
                        f"connection to {self.authority} closed before the response was complete"
                    ) from exc
                raise TransportError(f"invalid HTTP response from {self.authority}: {exc}") from exc
            if event is not h11.NEED_DATA:
                # PAUSED comes only after a complete response, when reading has stopped.
                assert isinstance(event, h11.Event), event
                return event
            self.h11.receive_data(await self._read(read_timeout))

    async def _read(self, read_timeout: float | None) -> bytes:
        try:
            async with asyncio.timeout(read_timeout):
                try:
                    data = await self.reader.read(_READ_SIZE)
                except OSError as exc:
                    # Includes ETIMEDOUT when keepalive probes went unanswered.
                    raise TransportError(
                        f"connection to {self.authority} lost: {_reason(exc)}"
                    ) from exc
        except TimeoutError:
            raise ReadTimeout(f"no data from {self.authority} within {read_timeout} s") from None
        if not data:
            if not self.received:
                raise TransportError(f"connection to {self.authority} closed before a response")
            self._eof = True
        self.received = True
        return data


class Stream:
    """A streamed response: :attr:`status` and :attr:`headers`, then the body."""

    __slots__ = ("_conn", "_max_line", "_read_timeout", "headers", "reason", "status")

    def __init__(
        self, conn: _Connection, head: h11.Response, read_timeout: float, max_line: int
    ) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self._max_line = max_line
        self.status: int = head.status_code
        self.reason: str = head.reason.decode("latin-1")
        self.headers: Mapping[str, str] = _header_map(head.headers)

    async def read_body(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body (the rest is not read), e.g. the Status
        object of an error response."""
        body = bytearray()
        while len(body) < limit and (chunk := await self._chunk()) is not None:
            body += chunk
        return bytes(body[:limit])

    async def lines(self) -> AsyncIterator[bytes]:
        r"""The body's newline-delimited lines, without the newline (nor a trailing
        ``\r``); blank lines are skipped. Ends at the clean end of the body.

        Raises :class:`ReadTimeout` when no data arrives within the read timeout,
        and :class:`TransportError` for a line longer than the size limit or a
        connection closed before the end of the body.
        """
        pending = bytearray()
        while (chunk := await self._chunk()) is not None:
            pending += chunk
            if b"\n" in chunk:
                *complete, rest = pending.split(b"\n")
                pending = rest
                for line in complete:
                    self._check_length(line)
                    if line.strip():
                        yield bytes(line.removesuffix(b"\r"))
            self._check_length(pending)
        # The body ended cleanly, so an unterminated last line is complete too.
        if pending.strip():
            yield bytes(pending.removesuffix(b"\r"))

    def _check_length(self, line: bytearray) -> None:
        if len(line) > self._max_line:
            raise TransportError(
                f"line from {self._conn.authority} is longer than {self._max_line} bytes"
            )

    async def _chunk(self) -> bytes | None:
        return await self._conn.read_chunk(self._read_timeout)


class HttpClient:
    """HTTP/1.1 client for one endpoint. Close it with :meth:`aclose` (or ``async with``)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        keepalive: TcpKeepalive | None,
        user_agent: str,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._endpoint = endpoint
        self._keepalive = keepalive
        self._user_agent = user_agent
        self._max_body = max_body
        self._idle: list[_Connection] = []
        self._closed = False

    @property
    def endpoint(self) -> Endpoint:
        """The server this client talks to."""
        return self._endpoint

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float,
    ) -> Response:
        """Send one request and read the whole response, all within ``timeout`` seconds.

        ``target`` is the path and query, already encoded. Raises
        :class:`RequestTimeout` when the time is up, :class:`TransportError` when the
        exchange fails, and ValueError for a malformed method, target or header.
        """
        events = self._request_events(method, target, headers, body)
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(events)
        except TimeoutError:
            raise RequestTimeout(
                f"no response from {self._endpoint.authority} within {timeout} s"
            ) from None

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float,
        read_timeout: float,
    ) -> AsyncIterator[Stream]:
        """Send a request on a dedicated connection and yield its response as a
        :class:`Stream` once the headers have arrived. The connection is closed when
        the context exits, whichever way.

        Connecting (with the TLS handshake) is bounded by ``connect_timeout``, else
        :class:`RequestTimeout`; every wait for response data by ``read_timeout``,
        else :class:`ReadTimeout`.
        """
        events = self._request_events(method, target, headers, None)
        self._check_open()
        try:
            async with asyncio.timeout(connect_timeout):
                conn = await self._connect()
        except TimeoutError:
            raise RequestTimeout(
                f"could not connect to {self._endpoint.authority} within {connect_timeout} s"
            ) from None
        try:
            # A request without a body stays far below the write buffer's limit:
            # sending it does not wait.
            await conn.send(events)
            head = await conn.read_head(read_timeout)
            yield Stream(conn, head, read_timeout, self._max_body)
        finally:
            conn.abort()

    async def aclose(self) -> None:
        """Close the idle connections; requests after this raise RuntimeError."""
        self._closed = True
        while self._idle:
            self._idle.pop().abort()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the HTTP client for {self._endpoint.authority} is closed")

    def _request_events(
        self, method: str, target: str, headers: Mapping[str, str] | None, body: bytes | None
    ) -> list[_Outgoing]:
        fields = {
            "host": self._endpoint.authority,
            "user-agent": self._user_agent,
            "accept-encoding": "identity",
        }
        fields.update((name.lower(), value) for name, value in (headers or {}).items())
        if body is not None:
            fields["content-length"] = str(len(body))
        try:
            request = h11.Request(method=method, target=target, headers=list(fields.items()))
        except h11.LocalProtocolError as exc:
            raise ValueError(f"invalid request {method} {target}: {exc}") from None
        if body:
            return [request, h11.Data(data=body), h11.EndOfMessage()]
        return [request, h11.EndOfMessage()]

    async def _exchange(self, events: list[_Outgoing]) -> Response:
        self._check_open()
        conn = self._idle.pop() if self._idle else None
        if conn is not None:
            try:
                return await self._roundtrip(conn, events)
            except TransportError:
                if conn.received:
                    raise
                # Nothing came back: the server most likely closed the idle connection
                # as the request went out, so it never saw the request. Retry once.
        return await self._roundtrip(await self._connect(), events)

    async def _roundtrip(self, conn: _Connection, events: list[_Outgoing]) -> Response:
        try:
            await conn.send(events)
            head = await conn.read_head(None)
            body = bytearray()
            while (chunk := await conn.read_chunk(None)) is not None:
                body += chunk
                if len(body) > self._max_body:
                    raise TransportError(
                        f"response from {conn.authority} is larger than {self._max_body} bytes"
                    )
        except BaseException:
            conn.abort()
            raise
        self._release(conn)
        return Response(
            head.status_code, head.reason.decode("latin-1"), _header_map(head.headers), bytes(body)
        )

    def _release(self, conn: _Connection) -> None:
        keep_alive = conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
        if keep_alive and not self._closed and len(self._idle) < _MAX_IDLE:
            conn.h11.start_next_cycle()
            self._idle.append(conn)
        else:
            conn.abort()

    async def _connect(self) -> _Connection:
        endpoint = self._endpoint
        authority = endpoint.authority
        try:
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        except ConnectionRefusedError:
            raise TransportError(f"connection to {authority} refused") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {authority}: {_reason(exc)}") from exc
        # asyncio sets TCP_NODELAY on every TCP transport: small requests never wait.
        if self._keepalive is not None:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, self._keepalive.idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, self._keepalive.interval)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, self._keepalive.count)
        if endpoint.tls is not None:
            try:
                await writer.start_tls(
                    endpoint.tls, server_hostname=endpoint.server_hostname or endpoint.host
                )
            except OSError as exc:
                # loop.start_tls has closed the socket, as it does when cancelled.
                raise TransportError(
                    f"TLS handshake with {authority} failed: {_reason(exc)}"
                ) from exc
        return _Connection(reader, writer, authority)
