"""A loopback CONNECT proxy for the transport and proxy tests: it records each CONNECT
request's head, may require ``Proxy-Authorization``, and then pipes bytes both ways
(plain TCP, or TLS to the client when given a server context)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class ConnectProxy:
    """What the proxy saw: the heads of the CONNECT requests, whether each TLS handshake
    with a client resumed a session, and the answer it gives."""

    authorization: str | None = None
    port: int = 0
    heads: list[bytes] = field(default_factory=list)
    resumed: list[bool] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        if (tls := writer.get_extra_info("ssl_object")) is not None:
            self.resumed.append(tls.session_reused)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            fields = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            if self.authorization and fields.get("proxy-authorization") != self.authorization:
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                )
                await writer.drain()
                return
            host, _, port = target.rpartition(":")
            up_reader, upstream = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # the test is over
        finally:
            for side in (writer, upstream):
                if side is not None:
                    side.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


@contextlib.asynccontextmanager
async def connect_proxy(
    authorization: str | None = None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[ConnectProxy]:
    """A CONNECT proxy on 127.0.0.1 (TLS when ``tls`` is given) requiring
    ``authorization`` as its ``Proxy-Authorization`` when set."""
    proxy = ConnectProxy(authorization)
    listener = await asyncio.start_server(proxy._serve, "127.0.0.1", 0, ssl=tls)
    proxy.port = listener.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        listener.close()
        for task in proxy.tasks:
            task.cancel()
        await asyncio.gather(*proxy.tasks, return_exceptions=True)
        await listener.wait_closed()
