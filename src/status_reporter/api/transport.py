"""A small HTTP/1.1 client for the Kubernetes API: httptools over asyncio streams and
stdlib ssl.

:class:`HttpClient` sends one request at a time per connection and keeps at most
two idle keep-alive connections for reuse. Each request is bounded as a whole
(connect, TLS handshake, send, whole body). Watches use :meth:`HttpClient.stream`,
which opens a dedicated connection and bounds the wait for the head and then for each
non-blank line instead.

Responses are parsed by httptools (the llhttp parser): status line, headers,
Content-Length and chunked bodies, keep-alive rules. This module writes the request
head itself, after checking every part of it, and owns the socket loop.

Every failure to complete an exchange is a :class:`TransportError` with a one-line
message; a connection whose exchange failed, timed out or was cancelled is aborted,
never reused. A response's status line, header and trailer fields may hold
:data:`MAX_HEAD` bytes in all, its body (or a watch line) ``max_body``.

The only retries are the ones that make keep-alive safe, each on a new connection and
only while no byte of the response has arrived: a reused connection that the server
closed while it sat idle, and one that gave no answer within half the time left (a
proxy that stopped forwarding on its established connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Final, Self

import httptools
import msgspec

# A response body or a watch line: twice etcd's limit on a stored object (1.5 MiB).
DEFAULT_MAX_BODY: Final = 3 * 1024 * 1024
# Status lines, header and trailer fields of one response in all; the API server's are
# a few hundred bytes.
MAX_HEAD: Final = 64 * 1024
# What a status line and a field line hold besides the reason and the name and value:
# "HTTP/1.1 200 ", its CRLF and the blank line ending the head; ": " and CRLF.
_STATUS_LINE_FRAMING: Final = 17
_FIELD_FRAMING: Final = 4
_READ_SIZE: Final = 64 * 1024
_MAX_IDLE: Final = 2

# RFC 9110: a method and a field name are tokens; the target is visible ASCII (the
# caller percent-encodes); a field value is visible ASCII, spaces and tabs.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET: Final = re.compile(r"[\x21-\x7e]+")
_FIELD_VALUE: Final = re.compile(r"[\t\x20-\x7e]*")


class TransportError(Exception):
    """The exchange did not complete: refused, reset, closed early, TLS or protocol
    failure, or a response over the size limit."""


class RequestTimeout(TransportError):
    """A request, or the set-up of a stream, did not complete within its time bound."""


class ReadTimeout(TransportError):
    """A stream's head, or its next non-blank line, did not arrive within its read
    timeout."""


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

    @classmethod
    def dead_within(cls, seconds: int) -> TcpKeepalive:
        """Keepalive that declares a silent connection dead within ``seconds`` (at least 2).

        The first probe goes out after a quarter of them; the rest are shared by up to
        four probes (more probes tolerate a lost one).
        """
        idle = max(1, seconds // 4)
        probe = max(1, (seconds - idle) // 4)
        count = max(1, min(4, (seconds - idle) // probe))
        return cls(idle=idle, interval=probe, count=count)


class Response(msgspec.Struct, frozen=True):
    """A complete response; header names are lower-case, repeated fields joined by ", "."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


class _Head(msgspec.Struct, frozen=True):
    status: int
    reason: str
    headers: Mapping[str, str]


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
        name, value = raw_name.decode("ascii").lower(), raw_value.decode("latin-1")
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    return MappingProxyType(merged)


def _request_head(method: str, target: str, fields: Mapping[str, str]) -> bytes:
    """The request line and header fields, checked: a malformed part could split the
    request or smuggle another one."""
    if not (_TOKEN.fullmatch(method) and _TARGET.fullmatch(target)):
        raise ValueError(f"invalid request {method} {target}: bad method or target")
    lines = [f"{method} {target} HTTP/1.1"]
    for name, raw in fields.items():
        value = raw.strip(" \t")
        if not (_TOKEN.fullmatch(name) and _FIELD_VALUE.fullmatch(value)):
            raise ValueError(f"invalid request {method} {target}: bad header field {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


class _Receiver:
    """The parser of one response and what its callbacks delivered so far."""

    __slots__ = (
        "_fields",
        "_informational",
        "_progress",
        "_reason",
        "body",
        "complete",
        "extra",
        "head",
        "head_size",
        "keep_alive",
        "parser",
        "stalled",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.head: _Head | None = None
        self.body: list[bytes] = []
        self.complete = False
        self.keep_alive = False
        # Bytes after the response: the connection is out of step, never reuse it.
        self.extra = False
        # The bytes of the status lines and header and trailer fields so far, and those
        # of the reads in a row that completed no field nor any body: httptools is
        # still collecting a field from them. Both count against MAX_HEAD.
        self.head_size = 0
        self.stalled = 0
        self._progress = False
        self._reason = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._informational = False

    @property
    def head_too_large(self) -> bool:
        """The response's head and trailers so far exceed :data:`MAX_HEAD`."""
        return not self.complete and self.head_size + self.stalled > MAX_HEAD

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises httptools' errors for a malformed response."""
        self._progress = False
        self.parser.feed_data(data)
        self.stalled = 0 if self._progress else self.stalled + len(data)

    def finish(self) -> bool:
        """The peer closed the connection: whether the response is complete. A body
        framed by neither Content-Length nor chunked coding ends here."""
        if self.head is not None and not self.complete:
            headers = self.head.headers
            if "content-length" not in headers and "transfer-encoding" not in headers:
                self.complete = True
        self.keep_alive = False
        return self.complete

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True
        self.head_size += _STATUS_LINE_FRAMING

    def on_status(self, reason: bytes) -> None:
        self.head_size += len(reason)
        self._reason += reason  # may arrive in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + _FIELD_FRAMING
        self._progress = True
        if self.head is None:  # not trailers: nothing reads those
            self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        self._progress = True
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            # An interim response (100 Continue): the final one follows.
            self._informational = True
        elif not self.complete:
            self.head = _Head(status, self._reason.decode("latin-1"), _header_map(self._fields))
        self._reason, self._fields = b"", []

    def on_body(self, body: bytes) -> None:
        self._progress = True
        if not self.complete:
            self.body.append(bytes(body))

    def on_message_complete(self) -> None:
        self._progress = True
        if self._informational:
            self._informational = False
        elif not self.complete:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()


class _Connection:
    """One TCP or TLS connection and the receiver of its current response."""

    __slots__ = ("_eof", "_receiver", "authority", "reader", "received", "writer")

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authority: str
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.authority = authority
        self._receiver = _Receiver()
        # Whether any byte of the current response has arrived: before that, a
        # failure on a reused connection means the server had closed it while idle.
        self.received = False
        self._eof = False

    @property
    def reusable(self) -> bool:
        """The response is complete, the server keeps the connection open, and nothing
        arrived after the response."""
        receiver = self._receiver
        return receiver.complete and receiver.keep_alive and not receiver.extra

    def abort(self) -> None:
        """Close the socket now: no TLS close_notify, nothing to wait for."""
        self.writer.transport.abort()

    async def send(self, request: bytes) -> None:
        """Write a whole request and get ready for its response."""
        self.received = False
        self._receiver = _Receiver()
        try:
            self.writer.write(request)
            await self.writer.drain()
        except OSError as exc:
            raise TransportError(f"connection to {self.authority} lost: {_reason(exc)}") from exc

    async def wait_response(self) -> None:
        """Wait until the first bytes of the response arrive."""
        await self._receive(None)

    async def read_head(self, deadline: float | None) -> _Head:
        """The response's status line and headers, skipping 1xx responses.

        Raises TimeoutError at ``deadline`` (loop time; None waits without bound).
        """
        while (head := self._receiver.head) is None:
            await self._receive(deadline)
        return head

    async def read_chunk(self, deadline: float | None) -> bytes | None:
        """The next piece of the response body, or None at its end.

        Raises TimeoutError at ``deadline`` (loop time; None waits without bound).
        """
        receiver = self._receiver
        while not receiver.body:
            if receiver.complete:
                return None
            await self._receive(deadline)
        chunk = b"".join(receiver.body)
        receiver.body.clear()
        return chunk

    async def _receive(self, deadline: float | None) -> None:
        receiver = self._receiver
        if self._eof:
            raise TransportError(
                f"connection to {self.authority} closed before the response was complete"
            )
        data = await self._read(deadline)
        if not data:
            if not receiver.finish():
                raise TransportError(
                    f"connection to {self.authority} closed before the response was complete"
                )
            return
        try:
            receiver.feed(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if not receiver.complete:
                raise TransportError(f"invalid HTTP response from {self.authority}: {exc}") from exc
            receiver.extra = True  # garbage after a complete response
        if receiver.head_too_large:
            raise TransportError(
                f"response head and trailers from {self.authority} exceed {MAX_HEAD} bytes"
            )

    async def _read(self, deadline: float | None) -> bytes:
        async with asyncio.timeout_at(deadline):
            try:
                data = await self.reader.read(_READ_SIZE)
            except OSError as exc:
                # Includes ETIMEDOUT when keepalive probes went unanswered.
                raise TransportError(
                    f"connection to {self.authority} lost: {_reason(exc)}"
                ) from exc
        if not data:
            if not self.received:
                raise TransportError(f"connection to {self.authority} closed before a response")
            self._eof = True
        self.received = True
        return data


class Stream:
    """A streamed response: :attr:`status` and :attr:`headers`, then the body."""

    __slots__ = ("_conn", "_max_line", "_read_timeout", "headers", "reason", "status")

    def __init__(self, conn: _Connection, head: _Head, read_timeout: float, max_line: int) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self._max_line = max_line
        self.status: int = head.status
        self.reason: str = head.reason
        self.headers: Mapping[str, str] = head.headers

    async def read_body(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body (the rest is not read), e.g. the Status
        object of an error response. They must arrive within the read timeout, else
        :class:`ReadTimeout`."""
        deadline = self._deadline()
        body = bytearray()
        while len(body) < limit and (chunk := await self._chunk(deadline, "body")) is not None:
            body += chunk
        return bytes(body[:limit])

    async def lines(self) -> AsyncIterator[bytes]:
        r"""The body's newline-delimited lines, without the newline (nor a trailing
        ``\r``); blank lines are skipped. Ends at the clean end of the body.

        Raises :class:`ReadTimeout` when no non-blank line is complete within the read
        timeout of the previous one being taken (or of the call): bytes that trickle
        in without making one, such as blank lines from a proxy that keeps a dead
        watch open, do not count. Raises :class:`TransportError` for a line longer
        than the size limit or a connection closed before the end of the body.
        """
        deadline = self._deadline()
        pending = bytearray()
        while (chunk := await self._chunk(deadline, "non-blank line")) is not None:
            pending += chunk
            if b"\n" in chunk:
                *complete, rest = pending.split(b"\n")
                pending = rest
                for line in complete:
                    self._check_length(line)
                    if line.strip():
                        yield bytes(line.removesuffix(b"\r"))
                        deadline = self._deadline()
            self._check_length(pending)
        # The body ended cleanly, so an unterminated last line is complete too.
        if pending.strip():
            yield bytes(pending.removesuffix(b"\r"))

    def _check_length(self, line: bytearray) -> None:
        if len(line) > self._max_line:
            raise TransportError(
                f"line from {self._conn.authority} is longer than {self._max_line} bytes"
            )

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self._read_timeout

    async def _chunk(self, deadline: float, awaited: str) -> bytes | None:
        try:
            return await self._conn.read_chunk(deadline)
        except TimeoutError:
            raise ReadTimeout(
                f"no {awaited} from {self._conn.authority} within {self._read_timeout} s"
            ) from None


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
        request = self._request(method, target, headers, body)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                return await self._exchange(request, deadline)
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
        :class:`RequestTimeout`; the response head, and then each non-blank line of
        :meth:`Stream.lines` (or the body of :meth:`Stream.read_body`), by
        ``read_timeout``, else :class:`ReadTimeout`.
        """
        request = self._request(method, target, headers, None)
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
            await conn.send(request)
            try:
                head = await conn.read_head(asyncio.get_running_loop().time() + read_timeout)
            except TimeoutError:
                raise ReadTimeout(
                    f"no response head from {conn.authority} within {read_timeout} s"
                ) from None
            yield Stream(conn, head, read_timeout, self._max_body)
        finally:
            conn.abort()

    async def aclose(self) -> None:
        """Close the idle connections; requests after this raise RuntimeError."""
        self._closed = True
        self._drop_idle()

    def _drop_idle(self) -> None:
        while self._idle:
            self._idle.pop().abort()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the HTTP client for {self._endpoint.authority} is closed")

    def _request(
        self, method: str, target: str, headers: Mapping[str, str] | None, body: bytes | None
    ) -> bytes:
        fields = {
            "host": self._endpoint.authority,
            "user-agent": self._user_agent,
            "accept-encoding": "identity",
        }
        fields.update((name.lower(), value) for name, value in (headers or {}).items())
        if body is not None:
            fields["content-length"] = str(len(body))
        return _request_head(method, target, fields) + (body or b"")

    async def _exchange(self, request: bytes, deadline: float) -> Response:
        self._check_open()
        conn = self._idle.pop() if self._idle else None
        if conn is not None:
            # A proxy may stop forwarding on its established connections while new ones
            # still work: a reused connection gets half the time left to start its
            # answer, a new one the rest.
            first_byte_by = (asyncio.get_running_loop().time() + deadline) / 2
            try:
                return await self._roundtrip(conn, request, first_byte_by)
            except TimeoutError:
                # The other idle connections most likely go the same dead way.
                self._drop_idle()
            except TransportError:
                if conn.received:
                    raise
                # Nothing came back: the server most likely closed the idle connection
                # as the request went out, so it never saw the request. Retry once.
        return await self._roundtrip(await self._connect(), request, None)

    async def _roundtrip(
        self, conn: _Connection, request: bytes, first_byte_by: float | None
    ) -> Response:
        """One exchange on ``conn``; TimeoutError when no byte of the response has
        arrived by ``first_byte_by`` (loop time; None waits without bound)."""
        try:
            async with asyncio.timeout_at(first_byte_by):
                await conn.send(request)
                await conn.wait_response()
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
        return Response(head.status, head.reason, head.headers, bytes(body))

    def _release(self, conn: _Connection) -> None:
        if conn.reusable and not self._closed and len(self._idle) < _MAX_IDLE:
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
