"""The reporter's HTTP client on real networks, against the real API server: a slow
server (a slow answer is not a dead connection), a stray response on an idle pooled
connection, an egress proxy (Debian's tinyproxy with basic auth, from a kubeconfig's
``proxy-url`` and from ``HTTPS_PROXY``), a cluster CA rotated mid-run, a stop while
the write hangs on a pooled connection, and a 3 MiB Pod with 87,371 container
statuses on a read and as one watch line.

Each case asserts the condition on the Job, the exit code and what reached the server,
and records what it measured (printed as a table at the end).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.checks import SUCCESS, summary
from harness.cluster import AdapterJob, service_account_token
from harness.controlplane import ControlPlane, serving_certificates
from harness.faultproxy import FaultProxy
from harness.httpproxy import Chunked, Delayed, HttpProxy, Request, Stray, pod_watch
from harness.reporter import ReporterRun
from harness.tinyproxy import TinyProxy
from lightkube import Client
from lightkube.resources.core_v1 import Pod

from tests.faults.conftest import Start, exit_figures, monitoring, record

pytestmark = pytest.mark.faults

PASSED = ("True", "ValidationPassed", "GCP environment validated")
CRASH = ("False", "AdapterExitedWithError", "Adapter container exited with code 1: Error")
# A whole response nobody asked for: a proxy's duplicate, or the tail of an answer given up on.
_STALE_BODY = (
    b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"STALE-DUP",'
    b'"reason":"InternalError","code":500}'
)
STALE = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_STALE_BODY), _STALE_BODY)
)


def status_patch(request: Request) -> bool:
    """The reporter's write: a PATCH of a Job's status."""
    return request.method == "PATCH" and request.path.endswith("/status")


def plain_get(request: Request) -> bool:
    """A read that is not a watch."""
    return request.method == "GET" and not request.is_watch


def kubeconfig_for(
    plane: ControlPlane, job: AdapterJob, directory: Path, server: str, **cluster: str
) -> Path:
    """A kubeconfig for the Job's ServiceAccount at ``server``, with ``cluster`` fields
    added to its cluster (``proxy-url``, ``tls-server-name``, ``certificate-authority``)."""
    token = service_account_token(job.client, job.namespace)
    path = plane.kubeconfig(
        directory / f"kubeconfig-{time.monotonic_ns()}", token, job.namespace, server=server
    )
    config = json.loads(path.read_text())
    config["clusters"][0]["cluster"].update(cluster)
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[TinyProxy]:
    """Debian's tinyproxy on 127.0.0.1, with basic auth."""
    proxy = TinyProxy(tmp_path / "tinyproxy").start()
    try:
        yield proxy
    finally:
        proxy.stop()


# --- a slow server, a stray response -------------------------------------------------------


def test_a_slow_write_is_one_write(job: AdapterJob, reporter: Start, http_proxy: HttpProxy) -> None:
    """The API server answers the PATCH 6 s late, within the request's 10 s: one PATCH,
    written, exit 0 (it was three PATCHes and 16.3 s when a reused connection got half
    the timeout)."""
    http_proxy.answer(status_patch, Delayed(6))
    run = monitoring(reporter(job, proxy=http_proxy))
    written = time.monotonic()
    job.write_result(SUCCESS)
    assert run.wait(timeout=60) == 0, run.output
    patches = len(http_proxy.seen(status_patch))
    outcome = record("API server answers the PATCH 6 s late", job, run, written, f"{patches} PATCH")
    assert summary(job.condition()) == PASSED
    assert patches == 1, run.output
    assert 6 <= outcome.seconds < 9, outcome


def test_a_stray_response_on_an_idle_connection_is_never_matched(
    job: AdapterJob, reporter: Start, http_proxy: HttpProxy
) -> None:
    """Every read is followed, 0.3 s later, by a stray 500 response on its connection,
    which then sits idle in the pool. The PATCH must get its own answer: one PATCH, and
    the stray never read (it was read as the PATCH's answer, and the PATCH sent again)."""
    strays = http_proxy.answer(plain_get, Stray(STALE, after=0.3))
    run = monitoring(reporter(job, proxy=http_proxy))
    time.sleep(1)  # the strays have arrived on the idle connections
    written = time.monotonic()
    job.write_result(SUCCESS)
    assert run.wait(timeout=30) == 0, run.output
    patches = len(http_proxy.seen(status_patch))
    record("stray responses on idle pooled connections", job, run, written, f"{patches} PATCH")
    assert summary(job.condition()) == PASSED
    assert patches == 1, run.output
    assert strays.served >= 1, strays  # the Job's read (the Pod's state is the watch's)
    assert "STALE-DUP" not in run.output


def test_a_stop_while_the_write_hangs_on_a_pooled_connection(
    job: AdapterJob, reporter: Start, proxy: FaultProxy
) -> None:
    """A hung proxy (established connections forward nothing; new ones work) as the
    result is written: the PATCH waits on its pooled connection. A SIGTERM 1 s later
    makes one last attempt, which goes out on a new connection and is written."""
    run = monitoring(reporter(job, proxy=proxy))
    time.sleep(1)  # start-up's connections idle in the pool
    proxy.stall_existing()
    job.write_result(SUCCESS)
    time.sleep(1)
    stopped = time.monotonic()
    run.signal()
    code = run.wait(timeout=15)
    record("SIGTERM while the write hangs on a pooled connection", job, run, stopped)
    assert summary(job.condition()) == PASSED, run.output
    assert code == 0, run.output
    assert "stopped while writing; one last attempt" in run.output, run.output
    assert run.last_word()["written"] is True


# --- egress proxies ----------------------------------------------------------------------


def test_through_an_egress_proxy_from_the_kubeconfig(
    job: AdapterJob,
    reporter: Start,
    plane: ControlPlane,
    proxy: FaultProxy,
    tinyproxy: TinyProxy,
    tmp_path: Path,
) -> None:
    """A kubeconfig's ``proxy-url`` with credentials: every connection the reporter makes,
    the watch's included, is a CONNECT tunnel through tinyproxy (which reaches the API
    server through the TCP fault proxy, counting connections), and the crash is seen."""
    server = f"https://127.0.0.1:{proxy.port}"
    kubeconfig = kubeconfig_for(plane, job, tmp_path, server, **{"proxy-url": tinyproxy.url})
    run = monitoring(reporter(job, {"KUBECONFIG": str(kubeconfig)}))
    time.sleep(1)  # the watch is up
    crashed = time.monotonic()
    job.terminated(1, "Error")
    assert run.wait(timeout=30) == 1, run.output
    connects = tinyproxy.connects()
    record(
        "API server behind an egress proxy (kubeconfig proxy-url, basic auth)",
        job,
        run,
        crashed,
        f"{len(connects)} CONNECTs, {proxy.accepted} connections upstream",
    )
    assert summary(job.condition()) == CRASH
    assert set(connects) == {f"127.0.0.1:{proxy.port}"}
    # The pooled connection(s) and the watch's own; none bypassed the proxy.
    assert len(connects) >= 2, tinyproxy.log_text()
    assert proxy.accepted == len(connects)


def _name_of_this_host() -> str:
    """A name for this host that resolves to 127.0.0.1 (Go never proxies "localhost"
    or a loopback address, so the environment's proxy needs another name)."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        address = ""
    if address != "127.0.0.1":
        pytest.skip(f"this host's name {name!r} does not resolve to 127.0.0.1")
    return name


def test_through_an_egress_proxy_from_the_environment(
    job: AdapterJob,
    reporter: Start,
    plane: ControlPlane,
    proxy: FaultProxy,
    tinyproxy: TinyProxy,
    tmp_path: Path,
) -> None:
    """``HTTPS_PROXY`` as a Pod's env would set it, with a ``NO_PROXY`` that does not name
    the server: the reporter tunnels through tinyproxy and writes the result."""
    host = _name_of_this_host()
    server = f"https://{host}:{proxy.port}"
    kubeconfig = kubeconfig_for(plane, job, tmp_path, server, **{"tls-server-name": "localhost"})
    env = {
        "KUBECONFIG": str(kubeconfig),
        "HTTPS_PROXY": tinyproxy.url,
        "NO_PROXY": "10.0.0.0/8,.svc,.cluster.local",
    }
    run = monitoring(reporter(job, env))
    written = time.monotonic()
    job.write_result(SUCCESS)
    assert run.wait(timeout=30) == 0, run.output
    connects = tinyproxy.connects()
    record(
        "API server behind an egress proxy (HTTPS_PROXY, NO_PROXY)",
        job,
        run,
        written,
        f"{len(connects)} CONNECTs",
    )
    assert summary(job.condition()) == PASSED
    assert set(connects) == {f"{host}:{proxy.port}"}
    assert proxy.accepted == len(connects) >= 2


# --- a rotated cluster CA ----------------------------------------------------------------


def test_a_cluster_ca_rotated_mid_run(
    job: AdapterJob,
    reporter: Start,
    plane: ControlPlane,
    http_proxy: HttpProxy,
    tmp_path: Path,
) -> None:
    """The reporter trusts a CA file; mid-run the file gains a new CA (replaced at once,
    as the kubelet updates a projected volume) and the server moves to a certificate
    that only the new CA signed, resetting every connection. New connections must trust
    it: the crash that follows is seen and written (a CA loaded once fails every new
    connection until the deadline)."""
    ca_file = tmp_path / "cluster-ca.crt"
    ca_file.write_bytes(plane.ca_file.read_bytes())
    kubeconfig = kubeconfig_for(
        plane, job, tmp_path, http_proxy.url, **{"certificate-authority": str(ca_file)}
    )
    run = monitoring(reporter(job, {"KUBECONFIG": str(kubeconfig), "MAX_WAIT_TIME_SECONDS": "30"}))
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    serving_certificates(rotated, "kube-apiserver-rotated")
    staged = tmp_path / "cluster-ca.crt.new"
    staged.write_bytes(plane.ca_file.read_bytes() + (rotated / "ca.crt").read_bytes())
    os.replace(staged, ca_file)
    http_proxy.rotate(rotated / "serving.crt", rotated / "serving.key")
    time.sleep(1)
    crashed = time.monotonic()
    job.terminated(1, "Error")
    assert run.wait(timeout=60) == 1, run.output
    outcome = record("cluster CA rotated mid-run, then adapter exits 1", job, run, crashed)
    assert summary(job.condition()) == CRASH
    assert run.last_word()["written"] is True
    assert "certificate verify failed" not in run.output
    assert outcome.seconds < 10, outcome


# --- a Pod with 87,371 container statuses ----------------------------------------------

MIB = 1024 * 1024
STATUSES = 87_371
# What the reporter may add to its peak memory for any response of this size.
MEMORY_BOUND_MIB = 13.0


def crowded_pod(
    document: dict[str, Any], adapter_state: dict[str, Any], resource_version: str
) -> bytes:
    """The Pod ``document`` with the adapter in ``adapter_state`` and 87,370 more
    container statuses (of containers it does not have): 3 MiB of JSON, room left for
    the watch event around it."""
    document = json.loads(json.dumps(document))
    document["metadata"]["resourceVersion"] = resource_version
    document["metadata"].pop("managedFields", None)
    statuses = document["status"]["containerStatuses"]
    for status in statuses:
        if status["name"] == "adapter":
            status["state"] = adapter_state
    budget = 3 * MIB - 64 - len(json.dumps(document, separators=(",", ":")))
    width = (budget // (STATUSES - len(statuses))) - len('{"name":"x","ready":false},')
    statuses.extend(
        {"name": f"x{i:0{width}d}", "ready": False} for i in range(STATUSES - len(statuses))
    )
    body = json.dumps(document, separators=(",", ":")).encode()
    assert 3 * MIB - 64 - STATUSES <= len(body) <= 3 * MIB - 64, len(body)
    return body


def _crash_run(job: AdapterJob, reporter: Start, http_proxy: HttpProxy) -> ReporterRun:
    """Run the reporter through ``http_proxy``; the adapter exits 1 (if the proxy did
    not say so first)."""
    run = monitoring(reporter(job, proxy=http_proxy))
    time.sleep(1)
    job.terminated(1, "Error")
    assert run.wait(timeout=30) == 1, run.output
    assert summary(job.condition()) == CRASH
    return run


def test_a_3_mib_pod_with_87371_statuses_as_the_watchs_first_state_and_a_change(
    make_job: Callable[..., AdapterJob],
    reporter: Start,
    http_proxy: HttpProxy,
    admin: Client,
) -> None:
    """The Pod's first state, which start-up takes from the watch, is 3 MiB of JSON holding
    87,371 container statuses (the adapter running), and the next event line is the same
    Pod with the adapter terminated. The crash is reported, and the peak memory stays
    within 13 MiB of the same run with the Pod as stored (it was +24.1 on a read and
    +29.3 as a line before lines and bodies were parsed in place)."""
    plain = make_job()
    plain.running()
    baseline = exit_figures(_crash_run(plain, reporter, http_proxy))[0]

    job = make_job()
    job.running()
    stored = admin.get(Pod, job.pod, namespace=job.namespace).to_dict()
    version = int(stored["metadata"]["resourceVersion"])
    running = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    terminated = {"terminated": {"exitCode": 1, "reason": "Error"}}
    first = b'{"type":"ADDED","object":%s}\n' % crowded_pod(stored, running, str(version))
    change = b'{"type":"MODIFIED","object":%s}\n' % crowded_pod(
        stored, terminated, str(version + 1000)
    )
    watch = http_proxy.answer(pod_watch, Chunked(first + change))
    started = time.monotonic()
    run = _crash_run(job, reporter, http_proxy)
    crowded = exit_figures(run)[0]
    outcome = record(
        "3 MiB Pod with 87,371 statuses as the watch's first state and as a change",
        job,
        run,
        started,
        f"max_rss_mib={crowded} against {baseline} as stored",
    )
    assert watch.served >= 1, outcome.measured
    assert crowded - baseline <= MEMORY_BOUND_MIB, outcome.measured
