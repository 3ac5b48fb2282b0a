"""A TCP proxy between the reporter and kube-apiserver that fails on command.

It runs its own event loop in a thread. Faults: added latency, refused or reset
connections, a black hole (connections accepted, nothing ever answered), a stall
(established connections stop forwarding; new ones work), and a half-open network
(packets of the established connections are dropped by the kernel, as a NAT or load
balancer that forgot them would; new connections work). The last one needs root
and iptables: the rules live in a chain of their own, removed on :meth:`stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import subprocess
from dataclasses import dataclass, field
from typing import Literal

from harness.loopthread import LoopThread

Mode = Literal["pass", "refuse", "blackhole"]
CHAIN = "SR-FAULTS"
_CHUNK = 64 * 1024


def _iptables(*args: str, check: bool = True) -> bool:
    done = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"iptables {' '.join(args)}: {done.stderr.strip()}")
    return done.returncode == 0


@dataclass
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None
    client_port: int
    stalled: asyncio.Event = field(default_factory=asyncio.Event)


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target`` until told to fail."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.mode: Mode = "pass"
        self.latency = 0.0
        self.accepted = 0
        self._links: list[_Link] = []
        self._runner = LoopThread()
        self._server: asyncio.Server | None = None
        self._dropping = False
        # Bumped by every reset: a connection still being set up when it happened is reset too.
        self._resets = 0

    def start(self) -> FaultProxy:
        """Listen on a free loopback port."""
        self._server, self.port = self._runner.serve(self._accept)
        return self

    def stop(self) -> None:
        """Close everything and remove any iptables rule."""
        self.heal_network()

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for link in self._links:
                _abort(link.client)
                if link.server is not None:
                    _abort(link.server)

        self._runner.call(close())
        self._runner.stop()

    # --- faults ------------------------------------------------------------------------

    def reset_all(self) -> None:
        """Reset every established connection (RST, as a crashed peer would)."""

        async def reset() -> None:
            self._resets += 1
            for link in list(self._links):
                _abort(link.client)
                if link.server is not None:
                    _abort(link.server)

        self._runner.call(reset())

    def stall_existing(self) -> None:
        """Established connections stop forwarding, but stay open; new ones are fine."""

        async def stall() -> None:
            for link in self._links:
                link.stalled.set()

        self._runner.call(stall())

    def drop_existing_packets(self) -> list[int]:
        """The kernel drops every packet of the established connections; returns their ports."""
        ports = [link.client_port for link in self._links if not link.client.is_closing()]
        _iptables("-N", CHAIN, check=False)
        _iptables("-F", CHAIN)
        if not _iptables("-C", "INPUT", "-i", "lo", "-j", CHAIN, check=False):
            _iptables("-I", "INPUT", "-i", "lo", "-j", CHAIN)
        self._dropping = True
        for client_port in ports:
            for source, destination in ((client_port, self.port), (self.port, client_port)):
                _iptables(
                    "-A", CHAIN, "-p", "tcp", "--sport", str(source), "--dport", str(destination),
                    "-j", "DROP",
                )  # fmt: skip
        return ports

    def heal_network(self) -> None:
        """Remove the rules of :meth:`drop_existing_packets`."""
        if not self._dropping:
            return
        remove_chain()
        self._dropping = False

    # --- forwarding ----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "refuse":
            _abort(writer)
            return
        client_port = writer.get_extra_info("peername")[1]
        if self.mode == "blackhole":
            link = _Link(writer, None, client_port)
            self._links.append(link)
            with contextlib.suppress(OSError):
                while await reader.read(_CHUNK):
                    pass
            return
        resets = self._resets
        try:
            upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            _abort(writer)
            return
        if resets != self._resets:
            # A reset came while upstream was being reached: this
            # connection is as established as the others and gets the same fault.
            _abort(writer)
            _abort(upstream)
            return
        link = _Link(writer, upstream, client_port)
        self._links.append(link)
        await asyncio.gather(
            self._pipe(reader, upstream, link),
            self._pipe(upstream_reader, writer, link),
            return_exceptions=True,
        )
        self._links.remove(link)
        writer.close()
        upstream.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            if link.stalled.is_set():
                await asyncio.Event().wait()  # silent for good, the socket left open
            if self.latency:
                await asyncio.sleep(self.latency)
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a reset rather than a clean FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def remove_chain() -> None:
    """Remove the proxy's iptables chain and its jump, if present (also after a crash)."""
    while _iptables("-D", "INPUT", "-i", "lo", "-j", CHAIN, check=False):
        pass
    _iptables("-F", CHAIN, check=False)
    _iptables("-X", CHAIN, check=False)
