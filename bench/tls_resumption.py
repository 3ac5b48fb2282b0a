"""CPU of a TLS handshake with kube-apiserver, full against resumed (a TLS 1.3 session
ticket), on both sides: the API server's (``/proc/<pid>/stat``, less its rate when
idle) and the client's (this process's CPU time).

Two workloads, alternated in rounds, each ``--handshakes`` connections one after the
other:

- ``handshake``: connect, handshake, close (blocking sockets; a resumed one offers the
  session of one earlier connection that made a request);
- ``request``: what the reporter does, :class:`HttpClient` sending ``GET /version`` on
  a new connection each time, with a :class:`ResumingContext` (resumed) or a plain
  context (full); ``connect`` is the client's CPU in setting up the connection alone
  (TCP and TLS), in the reporter's own code.

Run it alone: ``flock /work/locks/node.lock .venv/bin/python -m bench.tls_resumption``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from harness.controlplane import ControlPlane, binaries

from status_reporter.api.transport import Endpoint, HttpClient, ResumingContext, _Connection

_TICK = 1 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` (all its threads, dead ones too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK


class Bench:
    """The workloads against one running control plane."""

    def __init__(self, plane: ControlPlane) -> None:
        url = urlsplit(plane.url)
        assert url.hostname is not None
        assert url.port is not None
        self.address = (url.hostname, url.port)
        self.plane = plane
        self.pid = plane.processes["kube-apiserver"].pid
        self.ca = str(plane.ca_file)
        self.connect_cpu = 0.0
        self.request = (
            f"GET /version HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {plane.admin_token}\r\nConnection: close\r\n\r\n"
        ).encode()

    def idle_rate(self, seconds: float = 3.0) -> float:
        """The API server's CPU seconds per second with no client."""
        before = cpu_seconds(self.pid)
        time.sleep(seconds)
        return (cpu_seconds(self.pid) - before) / seconds

    def session(self, context: ssl.SSLContext) -> ssl.SSLSession:
        """A session with a ticket: the server sends it after the handshake, so it is
        read along with a response."""
        with (
            socket.create_connection(self.address) as raw,
            context.wrap_socket(raw, server_hostname=self.address[0]) as tls,
        ):
            tls.sendall(self.request)
            while tls.recv(65536):
                pass
            session = tls.session
        assert session is not None
        assert session.has_ticket
        return session

    def handshakes(self, n: int, resume: bool) -> int:
        """``n`` connections that handshake and close; returns how many resumed."""
        context = ssl.create_default_context(cafile=self.ca)
        session = self.session(context) if resume else None
        resumed = 0
        for _ in range(n):
            with (
                socket.create_connection(self.address) as raw,
                context.wrap_socket(raw, server_hostname=self.address[0], session=session) as tls,
            ):
                resumed += bool(tls.session_reused)
        return resumed

    def requests(self, n: int, resume: bool) -> int:
        """``n`` requests through HttpClient, each on a new connection; returns how many
        handshakes resumed (as the client saw them)."""
        context = (
            ResumingContext.verifying(cafile=self.ca)
            if resume
            else ssl.create_default_context(cafile=self.ca)
        )
        endpoint = Endpoint(self.address[0], self.address[1], context)
        headers = {"Authorization": f"Bearer {self.plane.admin_token}"}

        async def run() -> int:
            resumed = 0
            async with _TimedClient(endpoint, keepalive=None, user_agent="bench") as client:
                for _ in range(n):
                    response = await client.request(
                        "GET", "/version", headers=headers, timeout=10, fresh=True
                    )
                    assert response.status == 200
                    (conn,) = client._idle
                    resumed += conn.transport.get_extra_info("ssl_object").session_reused
                    client._drop_idle()
            self.connect_cpu = client.connect_cpu
            return resumed

        return asyncio.run(run())

    def measure(self, work: Callable[[int, bool], int], n: int, resume: bool, idle: float) -> str:
        """One line: ``work`` run ``n`` times, its CPU per connection on both sides."""
        server, client, wall = cpu_seconds(self.pid), time.process_time(), time.monotonic()
        self.connect_cpu = 0.0
        resumed = work(n, resume)
        wall = time.monotonic() - wall
        client = time.process_time() - client
        server = cpu_seconds(self.pid) - server - idle * wall
        return (
            f"{work.__name__:10} {'resumed' if resume else 'full':7} n={n} resumed={resumed} "
            f"server {1000 * server / n:.3f} ms  client {1000 * client / n:.3f} ms  "
            f"wall {1000 * wall / n:.3f} ms"
            + (f"  (connect {1000 * self.connect_cpu / n:.3f} ms)" if self.connect_cpu else "")
        )


class _TimedClient(HttpClient):
    """An HttpClient that adds up the CPU time of its connection set-ups: nothing else
    runs in the process meanwhile, so the time is theirs."""

    connect_cpu = 0.0

    async def _connect(self) -> _Connection:
        started = time.process_time()
        try:
            return await super()._connect()
        finally:
            self.connect_cpu += time.process_time() - started


def main() -> None:
    """Start a control plane, measure, print, stop it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--handshakes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tls-bench-") as workdir:
        plane = ControlPlane.start(binaries(), Path(workdir))
        try:
            cert = x509.load_pem_x509_certificate((Path(workdir) / "serving.crt").read_bytes())
            key = cert.public_key()
            print(f"kube-apiserver {plane.version}: serving key {type(key).__name__}", end=" ")
            print(f"{getattr(key, 'key_size', '')} bits")
            bench = Bench(plane)
            time.sleep(5)  # past the start-up's own work
            rates = []
            for _ in range(args.rounds):
                rates.append(bench.idle_rate())
                idle = statistics.median(rates)
                print(f"idle: {1000 * idle:.1f} ms CPU per second")
                for work in (bench.handshakes, bench.requests):
                    for resume in (False, True):
                        print(bench.measure(work, args.handshakes, resume, idle), flush=True)
        finally:
            plane.stop()


if __name__ == "__main__":
    main()
