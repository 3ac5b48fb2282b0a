"""A loopback HTTP/1.1 server for the transport tests that answers with hand-written
bytes: each test's handler decides, per connection, what to read and what to send."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from status_reporter.api.transport import Endpoint


@dataclass
class Peer:
    """The server's side of one accepted connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    index: int  # 0 for the first connection the server accepted
    server: Server

    async def read_request(self) -> bytes | None:
        """The next request's head and body; None when the client closed first."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        request = head + await self.reader.readexactly(length)
        self.server.requests.append(request)
        self.server.changed.set()
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_closed(self) -> None:
        """Wait until the client closes the connection; read and drop anything else."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass
        self.server.closed_by_client += 1
        self.server.changed.set()


Handler = Callable[[Peer], Awaitable[None]]


@dataclass
class Server:
    handler: Handler
    port: int = 0
    accepts: int = 0
    closed_by_client: int = 0
    requests: list[bytes] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def endpoint(
        self, tls: ssl.SSLContext | None = None, server_hostname: str | None = None
    ) -> Endpoint:
        return Endpoint("127.0.0.1", self.port, tls, server_hostname)

    async def wait_closed_by_client(self, count: int, timeout: float = 2.0) -> None:
        """Wait until the client has closed ``count`` connections."""
        await self._wait(lambda: self.closed_by_client >= count, timeout)

    async def wait_requests(self, count: int, timeout: float = 2.0) -> None:
        """Wait until ``count`` requests have arrived."""
        await self._wait(lambda: len(self.requests) >= count, timeout)

    async def _wait(self, done: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        peer = Peer(reader, writer, self.accepts, self)
        self.accepts += 1
        try:
            await self.handler(peer)
        except asyncio.CancelledError:
            pass  # the test is over; asyncio's streams would log a cancelled handler
        finally:
            writer.transport.abort()


@contextlib.asynccontextmanager
async def serve(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    """Run ``handler`` for each connection to a server on 127.0.0.1 (TLS when given)."""
    server = Server(handler)
    listener = await asyncio.start_server(server._on_connect, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for task in server.tasks:
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
        await listener.wait_closed()


def response(body: bytes = b"", *, status: bytes = b"200 OK", headers: bytes = b"") -> bytes:
    """A response with a Content-Length body; ``headers`` are extra CRLF-ended lines."""
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), headers, body)


def chunked(*chunks: bytes, status: bytes = b"200 OK", end: bool = True) -> bytes:
    """A chunked response, one chunk per argument; ``end=False`` leaves it unfinished."""
    framed = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks if chunk)
    return b"HTTP/1.1 %s\r\nTransfer-Encoding: chunked\r\n\r\n%s%s" % (
        status,
        framed,
        b"0\r\n\r\n" if end else b"",
    )


def answer_all(*responses: bytes) -> Handler:
    """A handler that answers each request on a connection with the next response
    (repeating the last) until the client closes."""

    async def handler(peer: Peer) -> None:
        sent = 0
        while await peer.read_request() is not None:
            await peer.send(responses[min(sent, len(responses) - 1)])
            sent += 1
        peer.server.closed_by_client += 1
        peer.server.changed.set()

    return handler


def noting_resumption(resumed: list[bool], answer: Handler | None = None) -> Handler:
    """A TLS server's handler that notes, for each connection, whether its handshake
    resumed a session, then answers as ``answer`` does (by default "ok" to each
    request)."""
    inner = answer or answer_all(response(b"ok"))

    async def handler(peer: Peer) -> None:
        resumed.append(peer.writer.get_extra_info("ssl_object").session_reused)
        await inner(peer)

    return handler


def send_forever(start: bytes, repeated: bytes) -> Handler:
    """A handler that answers a request with ``start`` and then ``repeated`` over and
    over, as fast as the client reads, until the client closes."""

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        with contextlib.suppress(ConnectionError):
            await peer.send(start)
            while True:
                await peer.send(repeated)

    return handler
