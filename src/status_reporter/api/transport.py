"""A small HTTP/1.1 client for the Kubernetes API: httptools over asyncio and stdlib
ssl, direct or through an HTTP(S) proxy's CONNECT tunnel.

:class:`HttpClient` sends one request at a time per connection and keeps at most
two idle keep-alive connections for reuse. Each request is bounded as a whole
(connect, proxy tunnel, TLS handshake, send, whole body). Watches use
:meth:`HttpClient.stream`, which opens a dedicated connection and bounds the wait for
the head and then for each non-blank line instead.

Responses are parsed by httptools (the llhttp parser): status line, headers,
Content-Length and chunked bodies, keep-alive rules. Where RFC 9112 lets a client be
lenient, it accepts what Go's ``net/http`` accepts: bare LF line ends, obs-folded
header fields, and Content-Length beside chunked coding (chunked wins, and that
connection is never reused). This module writes the request head itself, after
checking every part of it, and owns the socket loop.

Every failure to complete an exchange is a :class:`TransportError` with a one-line
message; a connection whose exchange failed, timed out or was cancelled is aborted,
never reused, and so is an idle one that received anything (a stray response) or was
closed by the server: a response is never matched to another request. A response's
status line, header and trailer fields may hold :data:`MAX_HEAD` bytes in all, its
body (or a watch line) ``max_body``.

A slow answer is not a dead connection. A request goes out again on a new connection
only when its reused connection is known dead (closed or reset before any byte of the
answer), at most once. A read (GET) that has had no byte of its answer after
max(2 s, half its timeout) is hedged once: a copy goes out on a new connection while
the first keeps waiting, and the first answer wins (a proxy that stopped forwarding on
its established connections). A write is never hedged. Same-host 307 and 308
redirects are followed within the request's timeout.

When the CA file an endpoint names changes (a rotated cluster CA), the next new
connection trusts its certificates too.

A new TLS connection offers to resume the TLS session of an earlier one to the same
endpoint (a TLS 1.3 session ticket, see :class:`ResumingContext`): the server then
skips its certificate signature and the client the chain verification. A server that
refuses gets a full handshake in the same exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import re
import socket
import ssl
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Final, Self

import httptools
import msgspec

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, StrOrBytesPath

# A response body or a watch line: above the largest Pod JSON kube-apiserver was found to
# accept (4.0 MiB), within the examples' memory request (docs/design.md).
DEFAULT_MAX_BODY: Final = 5 * 1024 * 1024
# Status lines, header and trailer fields of one response in all; the API server's are
# a few hundred bytes.
MAX_HEAD: Final = 64 * 1024
# A read is hedged after max(this, half its timeout) without a byte of its answer.
HEDGE_AFTER: Final = 2.0
# Go's limit on redirects followed for one request.
MAX_REDIRECTS: Final = 10
# What a status line and a field line hold besides the reason and the name and value:
# "HTTP/1.1 200 ", its CRLF and the blank line ending the head; ": " and CRLF.
_STATUS_LINE_FRAMING: Final = 17
_FIELD_FRAMING: Final = 4
# Received bytes held for a connection before it stops reading from the socket, and
# the most handed to the parser at once.
_BUFFERED: Final = 64 * 1024
_READ_SIZE: Final = 64 * 1024
_MAX_IDLE: Final = 2
# Methods whose repetition changes nothing on the server: the only ones hedged.
_HEDGED: Final = frozenset({"GET", "HEAD"})
_REDIRECTS: Final = frozenset({307, 308})

# RFC 9110: a method and a field name are tokens; the target is visible ASCII (the
# caller percent-encodes); a field value is visible ASCII, spaces and tabs.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET: Final = re.compile(r"[\x21-\x7e]+")
_FIELD_VALUE: Final = re.compile(r"[\t\x20-\x7e]*")
# A received field value: anything but control characters other than tab (as Go).
_RECEIVED_VALUE: Final = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")


# The TLS session the handshake being started in this task offers to resume: set by
# _Connection.start_tls around loop.start_tls, read by ResumingContext.wrap_bio. A
# context variable, not an attribute of the context: the context is shared by every
# connection, the proxy's included, and this value belongs to one handshake.
_OFFERED: Final[contextvars.ContextVar[ssl.SSLSession | None]] = contextvars.ContextVar(
    "offered_tls_session", default=None
)


# A server as sessions are kept for it: host, port and TLS server name.
_Server = tuple[str, int, str]


class ResumingContext(ssl.SSLContext):
    """A client TLS context whose connections can resume an earlier TLS session.

    It keeps the last resumable session of each server. asyncio's ``start_tls``
    creates each connection's :class:`ssl.SSLObject` with :meth:`wrap_bio` and never
    passes a session; this context passes the one :class:`HttpClient` offers for the
    handshake it is starting (none for a proxy's). With any other context every
    handshake is a full one.

    A resumed handshake neither verifies the server's certificate again nor presents a
    client certificate: when what the context trusts (a reloaded CA file) or presents
    (a credential plugin's new certificate) changes, its sessions are forgotten, and
    so is any session of a connection made before.
    """

    def __init__(self, protocol: int) -> None:  # ssl.SSLContext.__new__ takes ``protocol``
        self._sessions: dict[_Server, ssl.SSLSession] = {}
        # Counts the changes of trust or client certificate.
        self.changes = 0

    @classmethod
    def verifying(cls, *, cafile: str | None = None, cadata: str | None = None) -> ResumingContext:
        """What :func:`ssl.create_default_context` makes for a client (trusting the
        given CA, else the system's), as a ResumingContext."""
        context = cls(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
        if sys.version_info >= (3, 13):  # as create_default_context does since 3.13
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
        if cafile or cadata:
            context.load_verify_locations(cafile, None, cadata)
        else:
            context.load_default_certs()
        keylog = os.environ.get("SSLKEYLOGFILE")
        if keylog and not sys.flags.ignore_environment:
            context.keylog_filename = keylog
        return context

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        """:meth:`ssl.SSLContext.wrap_bio`, offering the session the client chose."""
        if session is None and not server_side:
            session = _OFFERED.get()
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)

    def session(self, server: _Server) -> ssl.SSLSession | None:
        """The session to offer ``server``, if any."""
        return self._sessions.get(server)

    def keep(self, server: _Server, session: ssl.SSLSession, changes: int) -> None:
        """Offer ``session`` to ``server`` from now on, if it was established when
        :attr:`changes` was ``changes`` (nothing changed since) and has a session
        ticket: TLS 1.3 resumes from tickets only."""
        if changes == self.changes and session.has_ticket:
            self._sessions[server] = session

    def forget(self, server: _Server, session: ssl.SSLSession) -> None:
        """``server`` refused ``session`` (it expired, or the server's ticket keys
        changed, as on a restart): never offer it again."""
        if self._sessions.get(server) is session:
            del self._sessions[server]

    def load_verify_locations(
        self,
        cafile: StrOrBytesPath | None = None,
        capath: StrOrBytesPath | None = None,
        cadata: str | ReadableBuffer | None = None,
    ) -> None:
        """:meth:`ssl.SSLContext.load_verify_locations`, then forget every session."""
        super().load_verify_locations(cafile, capath, cadata)
        self._changed()

    def load_cert_chain(
        self,
        certfile: StrOrBytesPath,
        keyfile: StrOrBytesPath | None = None,
        password: Callable[[], str | bytes | bytearray] | str | bytes | bytearray | None = None,
    ) -> None:
        """:meth:`ssl.SSLContext.load_cert_chain`, then forget every session."""
        super().load_cert_chain(certfile, keyfile, password)
        self._changed()

    def _changed(self) -> None:
        self._sessions.clear()
        self.changes += 1


class TransportError(Exception):
    """The exchange did not complete: refused, reset, closed early, TLS or protocol
    failure, or a response over the size limit."""


class RequestTimeout(TransportError):
    """A request, or the set-up of a stream, did not complete within its time bound."""


class ReadTimeout(TransportError):
    """A stream's head, or its next non-blank line, did not arrive within its read
    timeout."""


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Proxy(msgspec.Struct, frozen=True):
    """An HTTP proxy reached at ``host``:``port`` (over TLS when ``tls``) that opens
    CONNECT tunnels; ``authorization`` is its ``Proxy-Authorization`` value, if any."""

    host: str
    port: int
    tls: bool = False
    authorization: str | None = None

    @property
    def authority(self) -> str:
        """``host:port``, the host in brackets when it is an IPv6 address."""
        return _authority(self.host, self.port)

    def __repr__(self) -> str:
        # The credentials stay out of logs and tracebacks.
        scheme = "https" if self.tls else "http"
        hidden = "<credentials>@" if self.authorization else ""
        return f"Proxy({scheme}://{hidden}{self.authority})"


class Endpoint(msgspec.Struct, frozen=True):
    """Where the server is: ``tls`` None means plain HTTP.

    ``host`` is an IP address or DNS name (IPv6 without brackets).
    ``server_hostname`` is the TLS SNI and verification name; None means ``host``.
    ``proxy`` is the proxy to tunnel through, if any. ``ca_file`` is the file ``tls``
    took its CA certificates from: when it changes, new connections trust what it
    holds then too.
    """

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None
    proxy: Proxy | None = None
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.host.startswith("["):
            raise ValueError(f"Endpoint host must be given without brackets: {self.host}")

    @property
    def authority(self) -> str:
        """``host:port``, the host in brackets when it is an IPv6 address."""
        return _authority(self.host, self.port)


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
    """A complete response; header names are lower-case, repeated fields joined by ", ".
    The body is the buffer it was received in."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes | bytearray


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


class _Inbox(asyncio.Protocol):
    """What a connection received and has not read yet, whether the peer closed it,
    and the write side's flow control. It holds at most about :data:`_BUFFERED`
    bytes: past that the socket is not read until the reader catches up."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._reading_paused = False
        self.eof = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    @property
    def pending(self) -> bool:
        """Bytes wait to be read, or the peer closed the connection."""
        return bool(self._chunks) or self.eof

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _BUFFERED and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> None:
        self.eof = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._error = exc
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        """The next bytes received; b"" once the peer closed (OSError if it reset)."""
        while not self._chunks and not self.eof:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._chunks:
            data = self._chunks.popleft()
            if len(data) > _READ_SIZE:
                # One piece at a time: the parser's bounds are checked between them.
                self._chunks.appendleft(data[_READ_SIZE:])
                data = data[:_READ_SIZE]
            self._size -= len(data)
            if self._reading_paused and self._size <= _BUFFERED and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            return data
        if isinstance(self._error, OSError):
            raise self._error
        return b""

    async def drain(self) -> None:
        """Wait until the transport's write buffer has room (OSError if it was lost)."""
        if self.eof and self._error is not None:
            raise ConnectionResetError("connection lost")
        if self._writable is not None:
            await self._writable


class _InvalidField(ValueError):
    """A header or trailer field Go would refuse: a name that is not a token, or a
    value holding control characters."""


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
        # What Go's net/http accepts and RFC 9112 allows a client to: Content-Length
        # beside chunked coding (chunked wins), bare LF line ends, obs-folded fields.
        self.parser.set_dangerous_leniencies(
            lenient_chunked_length=True,
            lenient_optional_cr_before_lf=True,
            lenient_headers=True,
        )
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
        # Lenient parsing (for obs-fold) leaves this check to the receiver.
        if not (_TOKEN.fullmatch(name.decode("latin-1")) and _RECEIVED_VALUE.fullmatch(value)):
            raise _InvalidField(f"invalid header field {name[:64]!r}")
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
            headers = self.head.headers if self.head is not None else {}
            # Content-Length beside chunked coding: the framing was ambiguous, so what
            # follows on this connection cannot be trusted (Go does the same).
            ambiguous = "content-length" in headers and "transfer-encoding" in headers
            self.keep_alive = self.parser.should_keep_alive() and not ambiguous


class _Connection:
    """One TCP or TLS connection and the receiver of its current response."""

    __slots__ = ("_inbox", "_receiver", "authority", "received", "transport", "unclaimed")

    def __init__(self, transport: asyncio.Transport, inbox: _Inbox, authority: str) -> None:
        self.transport = transport
        self._inbox = inbox
        self.authority = authority
        self._receiver = _Receiver()
        # Whether any byte of the current response has arrived: before that, a
        # failure on a reused connection means the server had closed it while idle.
        self.received = False
        # The TLS connection to the endpoint and the context's changes then, until its
        # session was handed to a ResumingContext (HttpClient._claim_session).
        self.unclaimed: tuple[ssl.SSLObject, int] | None = None

    @property
    def reusable(self) -> bool:
        """The response is complete, the server keeps the connection open, and nothing
        arrived after the response."""
        receiver = self._receiver
        return receiver.complete and receiver.keep_alive and not receiver.extra and self.quiet

    @property
    def quiet(self) -> bool:
        """Nothing arrived since the last response, and the peer has not closed: an idle
        connection that is not quiet holds a stray response or is dead."""
        return not self._inbox.pending and not self.transport.is_closing()

    def abort(self) -> None:
        """Close the socket now: no TLS close_notify, nothing to wait for."""
        self.transport.abort()

    async def start_tls(
        self,
        context: ssl.SSLContext,
        server_hostname: str,
        peer: str,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        """Upgrade the connection to TLS, verified as ``server_hostname``, offering to
        resume ``session`` (with a :class:`ResumingContext`); returns the TLS object."""
        loop = asyncio.get_running_loop()
        # loop.start_tls creates the TLS object (wrap_bio) before it first awaits, in
        # this task's context: only this handshake sees the offer.
        offer = _OFFERED.set(session)
        try:
            transport = await loop.start_tls(
                self.transport, self._inbox, context, server_hostname=server_hostname
            )
        except OSError as exc:
            # loop.start_tls has closed the socket, as it does when cancelled.
            raise TransportError(f"TLS handshake with {peer} failed: {_reason(exc)}") from exc
        finally:
            _OFFERED.reset(offer)
        if transport is None:
            raise TransportError(f"TLS handshake with {peer} failed: connection closed")
        self.transport = self._inbox.transport = transport
        ssl_object: ssl.SSLObject = transport.get_extra_info("ssl_object")
        return ssl_object

    async def write(self, data: bytes) -> None:
        """Write ``data`` and wait for room in the buffer."""
        try:
            self.transport.write(data)
            await self._inbox.drain()
        except OSError as exc:
            raise TransportError(f"connection to {self.authority} lost: {_reason(exc)}") from exc

    async def send(self, request: bytes) -> None:
        """Write a whole request and get ready for its response."""
        self.received = False
        self._receiver = _Receiver()
        await self.write(request)

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

    async def read_raw(self) -> bytes:
        """The next bytes as they came (b"" at the end), outside any response."""
        return await self._read(None)

    async def _receive(self, deadline: float | None) -> None:
        receiver = self._receiver
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
                # httptools wraps what a callback raised.
                cause = exc.__context__
                detail = str(cause) if isinstance(cause, _InvalidField) else str(exc)
                raise TransportError(
                    f"invalid HTTP response from {self.authority}: {detail}"
                ) from exc
            receiver.extra = True  # garbage after a complete response
        if receiver.head_too_large:
            raise TransportError(
                f"response head and trailers from {self.authority} exceed {MAX_HEAD} bytes"
            )

    async def _read(self, deadline: float | None) -> bytes:
        async with asyncio.timeout_at(deadline):
            try:
                data = await self._inbox.read()
            except OSError as exc:
                # Includes ETIMEDOUT when keepalive probes went unanswered.
                raise TransportError(
                    f"connection to {self.authority} lost: {_reason(exc)}"
                ) from exc
        if not data and not self.received:
            raise TransportError(f"connection to {self.authority} closed before a response")
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

    async def lines(self) -> AsyncIterator[bytearray]:
        r"""The body's newline-delimited lines, without the newline (nor a trailing
        ``\r``); blank lines are skipped. Ends at the clean end of the body.

        Raises :class:`ReadTimeout` when no non-blank line is complete within the read
        timeout of the previous one being taken (or of the call): bytes that trickle
        in without making one, such as blank lines from a proxy that keeps a dead
        watch open, do not count. Raises :class:`TransportError` for a line longer
        than the size limit or a connection closed before the end of the body.

        A line that fills the buffer (the usual case: each chunk ends one) is handed
        over as it is, not copied: a line may be as large as a Pod.
        """
        deadline = self._deadline()
        pending = bytearray()
        while (chunk := await self._chunk(deadline, "non-blank line")) is not None:
            start = len(pending)
            pending += chunk
            newline = pending.find(b"\n", start)
            while newline >= 0:
                if newline == len(pending) - 1:
                    line, pending = pending, bytearray()
                    del line[newline:]
                else:
                    line = pending[:newline]
                    del pending[: newline + 1]
                self._check_length(line)
                if line.endswith(b"\r"):
                    del line[-1:]
                if line and not line.isspace():
                    yield line
                    deadline = self._deadline()
                newline = pending.find(b"\n")
            self._check_length(pending)
        # The body ended cleanly, so an unterminated last line is complete too.
        if pending.endswith(b"\r"):
            del pending[-1:]
        if pending and not pending.isspace():
            yield pending

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


class _Attempt:
    """One copy of a request, on a given connection or on a new one."""

    __slots__ = ("_client", "_request", "conn", "reused")

    def __init__(self, client: HttpClient, request: bytes, conn: _Connection | None) -> None:
        self._client = client
        self._request = request
        self.conn = conn
        self.reused = conn is not None

    @property
    def received(self) -> bool:
        """Some of the answer has arrived: the connection is alive."""
        return self.conn is not None and self.conn.received

    @property
    def dead_on_reuse(self) -> bool:
        """After a TransportError: the reused connection failed before any byte of the
        answer, so the server closed it while it was idle (or reset it) and never
        answered the request."""
        return self.reused and not self.received

    async def run(self) -> Response:
        """Send the copy (connecting first when it has no connection) and read its answer."""
        if self.conn is None:
            self.conn = await self._client._connect()
        return await self._client._roundtrip(self.conn, self._request)


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
        # The CA file as the endpoint's TLS context last loaded it.
        self._ca_stamp = _stamp(endpoint.ca_file)
        # What a ResumingContext keeps this server's session under.
        self._server: _Server = (
            endpoint.host,
            endpoint.port,
            endpoint.server_hostname or endpoint.host,
        )

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
        fresh: bool = False,
    ) -> Response:
        """Send one request and read the whole response, all within ``timeout`` seconds.

        ``target`` is the path and query, already encoded. ``fresh`` sends it on a new
        connection, not an idle one (a last attempt with no time to find a pooled
        connection dead). Same-host 307 and 308 redirects are followed within the
        timeout. Raises :class:`RequestTimeout` when the time is up,
        :class:`TransportError` when the exchange fails, and ValueError for a
        malformed method, target or header.
        """
        request = self._request(method, target, headers, body)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                for _ in range(MAX_REDIRECTS):
                    response = await self._exchange(method, request, deadline, fresh=fresh)
                    location = self._redirect(response)
                    if location is None:
                        return response
                    request = self._request(method, location, headers, body)
                return await self._exchange(method, request, deadline, fresh=fresh)
        except TimeoutError:
            # The idle connections most likely went the same silent way.
            self._drop_idle()
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

        Connecting (with the proxy tunnel and the TLS handshake) is bounded by
        ``connect_timeout``, else :class:`RequestTimeout`; the response head, and then
        each non-blank line of :meth:`Stream.lines` (or the body of
        :meth:`Stream.read_body`), by ``read_timeout``, else :class:`ReadTimeout`.
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
            self._claim_session(conn)
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

    def _take_idle(self) -> _Connection | None:
        """An idle connection fit for another request: one that received nothing since
        its last response and was not closed by the server; the others are closed."""
        while self._idle:
            conn = self._idle.pop()
            if conn.quiet:
                return conn
            conn.abort()
        return None

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

    def _redirect(self, response: Response) -> str | None:
        """The target a 307 or 308 response sends the request to, when it stays on this
        server (the same scheme, host and port); None otherwise."""
        if response.status not in _REDIRECTS:
            return None
        location = response.headers.get("location", "")
        endpoint = self._endpoint
        scheme = "https" if endpoint.tls is not None else "http"
        if location.startswith("/") and not location.startswith("//"):
            target = location
        else:
            prefix, default_port = f"{scheme}://", 443 if endpoint.tls is not None else 80
            if not location.lower().startswith(prefix):
                return None
            authority, slash, path = location[len(prefix) :].partition("/")
            own = {endpoint.authority.lower()}
            if endpoint.port == default_port:
                own.add(endpoint.authority.lower().rsplit(":", 1)[0])
            if authority.lower() not in own:
                return None
            target = slash + path or "/"
        target = target.partition("#")[0]
        return target if _TARGET.fullmatch(target) else None

    async def _exchange(
        self, method: str, request: bytes, deadline: float, *, fresh: bool
    ) -> Response:
        self._check_open()
        first = _Attempt(self, request, None if fresh else self._take_idle())
        if method in _HEDGED:
            now = asyncio.get_running_loop().time()
            hedge_at = now + max(HEDGE_AFTER, (deadline - now) / 2)
            if hedge_at < deadline:
                return await self._hedged(first, request, hedge_at)
        try:
            return await first.run()
        except TransportError:
            if not first.dead_on_reuse:
                raise
        # Known dead before it answered: the request goes out again, once.
        return await _Attempt(self, request, None).run()

    async def _hedged(self, first: _Attempt, request: bytes, hedge_at: float) -> Response:
        """``first``, and a copy on a new connection when no byte of the answer has
        come by ``hedge_at``; the first answer wins, the other copy is abandoned."""
        tasks = {asyncio.create_task(first.run())}
        try:
            done, _ = await asyncio.wait(
                tasks, timeout=hedge_at - asyncio.get_running_loop().time()
            )
            if done:
                try:
                    return done.pop().result()
                except TransportError:
                    if not first.dead_on_reuse:
                        raise
                return await _Attempt(self, request, None).run()
            if first.received:
                # Slow, but answering: the connection is alive (kept in ``tasks``, so
                # that a cancellation still waits for it to end).
                return await next(iter(tasks))
            if first.reused:
                # The other idle connections most likely went the same silent way.
                self._drop_idle()
            tasks.add(asyncio.create_task(_Attempt(self, request, None).run()))
            error: BaseException | None = None
            while tasks:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if (exc := task.exception()) is None:
                        return task.result()
                    error = error or exc
            assert error is not None
            raise error
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                # Their connections are aborted as they end.
                await asyncio.wait(tasks)

    async def _roundtrip(self, conn: _Connection, request: bytes) -> Response:
        """One exchange on ``conn``."""
        try:
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
        self._claim_session(conn)
        self._release(conn)
        # The body as it was received, not copied: it may be as large as a Pod.
        return Response(head.status, head.reason, head.headers, body)

    def _release(self, conn: _Connection) -> None:
        if conn.reusable and not self._closed and len(self._idle) < _MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.abort()

    def _claim_session(self, conn: _Connection) -> None:
        """Hand the TLS session of ``conn`` to the context for the next connections,
        once it has a response: with TLS 1.3 the server sends the session ticket after
        the handshake, so it has arrived by then."""
        tls = self._endpoint.tls
        if conn.unclaimed is None or not isinstance(tls, ResumingContext):
            return  # claimed already, or a context that keeps no session
        (ssl_object, changes), conn.unclaimed = conn.unclaimed, None
        if (session := ssl_object.session) is not None:
            tls.keep(self._server, session, changes)

    def _trust_current_ca(self) -> None:
        """Load the endpoint's CA file again if it changed since it was last loaded.

        Certificates are added to the context (OpenSSL has no way to remove them): the
        new CA is trusted from the next connection on, the old one until the end. A
        ResumingContext then forgets its sessions: the next handshake is a full one,
        verified with what the file holds now.
        """
        endpoint = self._endpoint
        if endpoint.ca_file is None or endpoint.tls is None:
            return
        stamp = _stamp(endpoint.ca_file)
        if stamp is None or stamp == self._ca_stamp:
            return
        try:
            endpoint.tls.load_verify_locations(cafile=endpoint.ca_file)
        except (OSError, ssl.SSLError):
            return  # being rewritten: the next connection tries again
        self._ca_stamp = stamp

    async def _connect(self) -> _Connection:
        endpoint = self._endpoint
        proxy = endpoint.proxy
        host, port = (proxy.host, proxy.port) if proxy else (endpoint.host, endpoint.port)
        peer = proxy.authority if proxy else endpoint.authority
        what = f"proxy {peer}" if proxy else peer
        self._trust_current_ca()
        loop = asyncio.get_running_loop()
        try:
            transport, inbox = await loop.create_connection(_Inbox, host, port)
        except ConnectionRefusedError:
            raise TransportError(f"connection to {what} refused") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {what}: {_reason(exc)}") from exc
        conn = _Connection(transport, inbox, endpoint.authority)
        try:
            # asyncio sets TCP_NODELAY on every TCP transport: small requests never wait.
            if self._keepalive is not None:
                sock = transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, self._keepalive.idle)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, self._keepalive.interval)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, self._keepalive.count)
            if proxy is not None:
                if proxy.tls:
                    # As Go does: the proxy is verified with the cluster's TLS settings.
                    context = endpoint.tls or ssl.create_default_context()
                    await conn.start_tls(context, proxy.host, f"proxy {peer}")
                await self._tunnel(conn, proxy)
            if endpoint.tls is not None:
                await self._handshake(conn, endpoint.tls)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _handshake(self, conn: _Connection, tls: ssl.SSLContext) -> None:
        """TLS with the endpoint, offering this server's session when the context
        keeps one (the proxy's handshake never offers any)."""
        if not isinstance(tls, ResumingContext):
            await conn.start_tls(tls, self._server[2], self._endpoint.authority)
            return
        offered, changes = tls.session(self._server), tls.changes
        ssl_object = await conn.start_tls(tls, self._server[2], self._endpoint.authority, offered)
        if offered is not None and not ssl_object.session_reused:
            tls.forget(self._server, offered)
        conn.unclaimed = (ssl_object, changes)

    async def _tunnel(self, conn: _Connection, proxy: Proxy) -> None:
        """Ask ``proxy`` for a tunnel to the endpoint (CONNECT) and check its answer."""
        authority = self._endpoint.authority
        fields = {"host": authority, "user-agent": self._user_agent}
        if proxy.authorization is not None:
            fields["proxy-authorization"] = proxy.authorization
        await conn.write(_request_head("CONNECT", authority, fields))
        received = b""
        while not (end := re.search(rb"\r?\n\r?\n", received)):
            if len(received) > MAX_HEAD:
                raise TransportError(f"proxy {proxy.authority}: CONNECT answer too long")
            try:
                data = await conn.read_raw()
            except TransportError:
                data = b""
            if not data:
                raise TransportError(
                    f"proxy {proxy.authority} closed the connection before answering CONNECT"
                )
            received += data
        status_line = received.split(b"\n", 1)[0].strip().decode("latin-1")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit() or len(code) != 3:
            raise TransportError(f"proxy {proxy.authority}: invalid answer to CONNECT")
        if not 200 <= int(code) < 300:
            raise TransportError(
                f"proxy {proxy.authority} refused CONNECT to {authority}: {code} {reason}".rstrip()
            )
        if received[end.end() :]:
            raise TransportError(f"proxy {proxy.authority} sent data before the TLS handshake")


def _stamp(path: str | None) -> tuple[int, int, int] | None:
    """What tells a file's versions apart: inode, modification time and size."""
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)
