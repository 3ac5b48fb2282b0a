"""kube-apiserver memory per idle Pod watch, held as N reporters would hold them.

Each watch is the reporter's own request (a field selector on one Pod name,
bookmarks, a one-hour timeout, the resourceVersion of a Pod read) on a TLS
connection of its own, authenticated as a ServiceAccount under the project Role.
The bytes that arrive are read and dropped: only the server's side is measured.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import statistics
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.cluster import create_job, create_namespace, service_account_token
from harness.controlplane import ControlPlane
from lightkube.resources.core_v1 import Pod

from bench.measure import Settings

# Connections opened at once: enough to be quick, few enough that the API server's
# TLS handshakes do not time out on two cores.
_CONCURRENT_OPENS = 32
_OPEN_TIMEOUT = 30.0


@dataclass(frozen=True)
class WatchPoint:
    """The API server with ``n`` idle watches open."""

    n: int
    rss_mib: float
    rss_samples: tuple[float, ...]
    cpu_per_second: float
    still_open: int


def vm_rss_mib(pid: int) -> float:
    """The resident memory of process ``pid`` right now (``VmRSS``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time that process ``pid`` has used so far."""
    # The command name (field 2) may hold spaces; the fields after it do not.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    context: ssl.SSLContext
    token: str
    namespace: str
    resource_version: str

    def path(self, pod: str) -> str:
        query = urllib.parse.urlencode(
            {
                "watch": "true",
                "fieldSelector": f"metadata.name={pod}",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "3600",
                "resourceVersion": self.resource_version,
            }
        )
        return f"/api/v1/namespaces/{self.namespace}/pods?{query}"


async def _open(target: _Target, pod: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Start one watch; returns once the API server has answered 200."""
    reader, writer = await asyncio.open_connection(target.host, target.port, ssl=target.context)
    request = (
        f"GET {target.path(pod)} HTTP/1.1\r\n"
        f"Host: {target.host}:{target.port}\r\n"
        f"Authorization: Bearer {target.token}\r\n"
        "Accept: application/json\r\n"
        "User-Agent: status-reporter-bench\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    status = (await reader.readline()).split(b" ", 2)
    if len(status) < 2 or status[1] != b"200":
        writer.close()
        raise RuntimeError(f"watch of {pod} refused: {b' '.join(status)!r}")
    return reader, writer


async def _hold(reader: asyncio.StreamReader) -> None:
    """Read whatever the watch sends (bookmarks) until the server closes it."""
    while await reader.read(64 * 1024):
        pass


async def _measure(
    target: _Target, pid: int, settings: Settings, log: Callable[[str], None]
) -> list[WatchPoint]:
    held: list[asyncio.Task[None]] = []
    writers: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(_CONCURRENT_OPENS)

    async def one(index: int) -> None:
        async with gate, asyncio.timeout(_OPEN_TIMEOUT):
            reader, writer = await _open(target, f"bench-pod-{index}")
        writers.append(writer)
        held.append(asyncio.create_task(_hold(reader)))

    points = []
    try:
        for n in settings.watches:
            opened = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(len(held), n)))
            log(f"watch memory: {n} watches open ({time.monotonic() - opened:.0f} s to open)")
            await asyncio.sleep(settings.watch_settle)
            rss = []
            cpu_before, started = cpu_seconds(pid), time.monotonic()
            for sample in range(settings.watch_samples):
                if sample:
                    await asyncio.sleep(settings.watch_interval)
                rss.append(vm_rss_mib(pid))
            elapsed = time.monotonic() - started
            rate = (cpu_seconds(pid) - cpu_before) / elapsed if elapsed > 0 else float("nan")
            points.append(
                WatchPoint(
                    n=n,
                    rss_mib=statistics.median(rss),
                    rss_samples=tuple(rss),
                    cpu_per_second=rate,
                    still_open=sum(not task.done() for task in held),
                )
            )
    finally:
        for writer in writers:
            writer.close()
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
    return points


def watch_memory(
    assets: Path, workdir: Path, settings: Settings, log: Callable[[str], None]
) -> list[WatchPoint]:
    """kube-apiserver's resident memory with each number of idle watches in
    ``settings.watches`` (ascending, opened cumulatively), on a control plane of its own
    that nothing else uses. Memory is sampled ``watch_samples`` times, ``watch_interval``
    s apart, ``watch_settle`` s after the watches are open; the median is kept."""
    plane = ControlPlane.start(assets, workdir / "watch-controlplane")
    try:
        admin = plane.admin_client()
        namespace = create_namespace(admin)
        job = create_job(admin, namespace, workdir / "watch-results")
        pod = admin.get(Pod, job.pod, namespace=namespace)
        assert pod.metadata is not None
        host, port = urllib.parse.urlsplit(plane.url).netloc.rsplit(":", 1)
        target = _Target(
            host=host,
            port=int(port),
            context=ssl.create_default_context(cafile=str(plane.ca_file)),
            token=service_account_token(admin, namespace),
            namespace=namespace,
            resource_version=str(pod.metadata.resourceVersion),
        )
        pid = plane.processes["kube-apiserver"].pid
        return asyncio.run(_measure(target, pid, settings, log))
    finally:
        plane.stop()
