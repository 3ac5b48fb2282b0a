"""A TCP relay in front of kube-apiserver that tells, for each connection, whether its
TLS handshake resumed a session.

The server's ServerHello travels in the clear, and in TLS 1.3 it carries the
``pre_shared_key`` extension exactly when the server accepted a session ticket the
client offered (RFC 8446, 4.2.11): no key of the connection is needed to see it. The
relay runs its own event loop in a thread, as :mod:`harness.faultproxy` does.
"""

from __future__ import annotations

import asyncio
import contextlib

from harness.loopthread import LoopThread

_CHUNK = 64 * 1024
_HANDSHAKE = 0x16
_SERVER_HELLO = 2
_PRE_SHARED_KEY = 41
# The random of a HelloRetryRequest, a ServerHello that asks for another ClientHello.
_RETRY_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def psk_accepted(record: bytes) -> bool | None:
    """Whether the TLS record ``record`` (its 5-byte header included), the server's
    first, is a ServerHello that accepted a pre-shared key (a resumed session); None
    when it is something else (an alert, a HelloRetryRequest)."""
    # Record header (5), handshake header (4), legacy_version (2), then the random.
    pos = 11
    if record[0] != _HANDSHAKE or record[5] != _SERVER_HELLO:
        return None
    if record[pos : pos + 32] == _RETRY_RANDOM:
        return None
    pos += 32
    pos += 1 + record[pos]  # legacy_session_id
    pos += 3  # cipher_suite, legacy_compression_method
    end = pos + 2 + int.from_bytes(record[pos : pos + 2])
    pos += 2
    while pos < end:
        kind, size = (
            int.from_bytes(record[pos : pos + 2]),
            int.from_bytes(record[pos + 2 : pos + 4]),
        )
        if kind == _PRE_SHARED_KEY:
            return True
        pos += 4 + size
    return False


class ResumptionRelay:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``; :attr:`resumed` holds, for
    each connection in the order of the server's answers, whether the handshake
    resumed a session (see :func:`psk_accepted`)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.resumed: list[bool | None] = []
        self._runner = LoopThread()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> ResumptionRelay:
        """Listen on a free loopback port."""
        self._server, self.port = self._runner.serve(self._accept)
        return self

    def stop(self) -> None:
        """Close the listener and every connection."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in self._writers:
                writer.transport.abort()

        self._runner.call(close())
        self._runner.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream}
        await asyncio.gather(
            _pipe(reader, upstream),
            self._answer(upstream_reader, writer),
            return_exceptions=True,
        )
        self._writers -= {writer, upstream}
        writer.close()
        upstream.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The server's side: its first record is read whole and looked at."""
        with contextlib.suppress(asyncio.IncompleteReadError, OSError):
            header = await reader.readexactly(5)
            record = header + await reader.readexactly(int.from_bytes(header[3:5]))
            self.resumed.append(psk_accepted(record))
            writer.write(record)
            await _pipe(reader, writer)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()
