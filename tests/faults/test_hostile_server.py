"""The reporter against an API server that answers, but answers badly: a watch that ends
as soon as it opens, trailer fields that never end, a Pod of 16 MiB.

These are faults of HTTP, not of TCP: the reporter speaks TLS, so they come from a
TLS-terminating proxy (:mod:`harness.httpproxy`) that forwards everything else to
the real kube-apiserver. Each case asserts the condition on the Job, the exit code,
the termination message and a time bound, and records what it measured.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from harness.checks import SUCCESS, eventually, summary, verbs
from harness.cluster import AdapterJob
from harness.controlplane import ControlPlane
from harness.httpproxy import Chunked, HttpProxy, Sized, pod_get, pod_watch
from lightkube import Client
from lightkube.resources.core_v1 import Pod

from tests.faults.conftest import Start, exit_figures, monitoring, record

pytestmark = pytest.mark.faults

CRASH = ("False", "AdapterExitedWithError", "Adapter container exited with code 1: Error")
CRASH_WORD = {
    "type": "Available",
    "status": "False",
    "reason": "AdapterExitedWithError",
    "message": "Adapter container exited with code 1: Error",
    "written": True,
}
# The reporter fixture's CONTAINER_STATUS_INTERVAL_SECONDS.
INTERVAL = 3
WATCH_BROKE = "Pod watch broke; polling the Pod until it is back"
# The transport's bounds (docs/design.md, "Limits of the HTTP client").
MAX_HEAD = 64 * 1024
MAX_BODY = 5 * 1024 * 1024
# The examples' memory request. The reporter's peak (VmHWM) is 26 to 34 MiB here; before
# the transport's bounds, endless trailers took it to 710 MiB and a 16 MiB Pod to 65 MiB.
RSS_LIMIT_MIB = 48.0


def pod_document(admin: Client, job: AdapterJob, padding: int = 0) -> dict[str, Any]:
    """The Pod as stored, with an annotation of ``padding`` bytes when asked."""
    pod: dict[str, Any] = admin.get(Pod, job.pod, namespace=job.namespace).to_dict()
    if padding:
        pod["metadata"].setdefault("annotations", {})["pad"] = "x" * padding
    return pod


def padded_pod(admin: Client, job: AdapterJob, size: int) -> bytes:
    """The Pod as JSON of exactly ``size`` bytes (a padded annotation)."""
    unpadded = len(json.dumps(pod_document(admin, job, padding=1))) - 1
    body = json.dumps(pod_document(admin, job, padding=size - unpadded)).encode()
    assert len(body) == size
    return body


def watch_line(pod: bytes) -> bytes:
    """One watch event carrying ``pod``, as the API server frames it."""
    return b'{"type":"MODIFIED","object":' + pod + b"}\n"


def test_every_pod_watch_answered_with_an_empty_body(
    job: AdapterJob, reporter: Start, http_proxy: HttpProxy, plane: ControlPlane
) -> None:
    """Every Pod watch gets ``200`` and an empty body: it ends as soon as it opens.

    Required: a watch ended at once is a failed watch, so the reporter backs off (at
    most one watch request a second on average, counted at the proxy, since none of them
    reaches the API server), polls the Pod meanwhile, logs one warning for the whole
    outage, and reports the adapter's crash (exit 1) as AdapterExitedWithError within
    twice CONTAINER_STATUS_INTERVAL_SECONDS. Pins podwatch's MIN_WATCH_SECONDS: a watch
    that "ended normally" was renewed at once before, hundreds of times a second.
    """
    http_proxy.answer(pod_watch, Chunked())
    run = monitoring(reporter(job, proxy=http_proxy))
    first_watch = eventually(lambda: http_proxy.seen(pod_watch))[0].at
    time.sleep(10)
    crashed = time.monotonic()
    job.terminated(1, "Error")
    assert run.wait(timeout=30) == 1, run.output
    ended = time.monotonic()
    watches = len(http_proxy.seen(pod_watch))
    reads = len([r for r in http_proxy.seen(pod_get(job.pod)) if first_watch <= r.at < crashed])
    per_second = watches / (ended - first_watch)
    outcome = record(
        "every Pod watch: 200, empty body; adapter exits 1",
        job,
        run,
        crashed,
        f"{watches} watches in {ended - first_watch:.1f} s ({per_second:.2f}/s), "
        f"{reads} Pod reads in {crashed - first_watch:.1f} s",
    )
    assert summary(job.condition()) == CRASH
    assert run.last_word() == CRASH_WORD
    assert outcome.seconds <= 2 * INTERVAL
    assert per_second <= 1.0, outcome.measured
    assert watches >= 4, outcome.measured  # it did keep trying
    # Polled meanwhile: at least once per interval.
    assert reads >= (crashed - first_watch) // INTERVAL, outcome.measured
    assert run.output.count(WATCH_BROKE) == 1, run.output
    assert not any(v.startswith("watch") for v in verbs(plane, job))  # all answered by the proxy


def test_endless_trailers_on_the_watch_and_on_pod_reads(
    job: AdapterJob, reporter: Start, http_proxy: HttpProxy, admin: Client
) -> None:
    """A server that follows a chunked body with trailer fields that never end: on every
    Pod watch (after one good event), and on two Pod reads while the watch is down.

    Required: each such response fails once its head and trailers pass 64 KiB (nothing
    keeps them), the watch counts as broken and the Pod is polled, memory stays bounded
    (VmHWM below 48 MiB), and the crash that follows is AdapterExitedWithError within
    twice CONTAINER_STATUS_INTERVAL_SECONDS. Pins transport's MAX_HEAD accounting of
    trailers: they used to be parsed without a bound (710 MiB here).
    """
    pod = json.dumps(pod_document(admin, job)).encode()
    http_proxy.answer(pod_watch, Chunked(watch_line(pod), endless_trailers=True))
    run = monitoring(reporter(job, proxy=http_proxy))
    reads = http_proxy.answer(pod_get(job.pod), Chunked(pod, endless_trailers=True), times=2)
    eventually(lambda: reads.served == 2, timeout=20)
    crashed = time.monotonic()
    job.terminated(1, "Error")
    assert run.wait(timeout=30) == 1, run.output
    rss, _ = exit_figures(run)
    watches = len(http_proxy.seen(pod_watch))
    outcome = record(
        "endless trailers on every watch and 2 Pod reads; adapter exits 1",
        job,
        run,
        crashed,
        f"max_rss_mib={rss}, {watches} watches, "
        f"{http_proxy.trailer_bytes // 2**20} MiB of trailers offered",
    )
    assert summary(job.condition()) == CRASH
    assert run.last_word() == CRASH_WORD
    assert outcome.seconds <= 2 * INTERVAL
    assert rss < RSS_LIMIT_MIB, outcome.measured
    too_large = f"exceed {MAX_HEAD} bytes"
    assert WATCH_BROKE in run.output
    broken_watch = next(line for line in run.output.splitlines() if WATCH_BROKE in line)
    assert too_large in broken_watch, broken_watch
    assert any(
        "cannot read the Pod" in line and too_large in line for line in run.output.splitlines()
    ), run.output
    assert "monitor failed" not in run.output


def test_a_sixteen_mib_pod_on_every_read_and_watch(
    job: AdapterJob, reporter: Start, http_proxy: HttpProxy, admin: Client
) -> None:
    """Once monitoring has started, every read of the Pod returns it as 16 MiB of JSON
    (a padded annotation: etcd stores at most 1.5 MiB, so only a broken or hostile server
    sends this), and every watch sends it as one 16 MiB event line. Then the adapter
    writes a valid result.

    The scenario: nothing about the Pod can be learned, but nothing needs to be, since
    a valid result decides by itself (rule 1). Required: each read and each watch fails
    cleanly at the 5 MiB cap ("larger than"/"longer than 5242880 bytes"), no monitor dies, memory
    stays bounded (VmHWM below 48 MiB), and the result reaches the Job at once (True,
    ValidationPassed). Pins transport's max_body on bodies and on watch lines: a 16 MiB
    Pod took the reporter to 65 MiB here.
    """
    huge = padded_pod(admin, job, 16 * 1024 * 1024)
    watches = http_proxy.answer(pod_watch, Chunked(watch_line(huge)))
    run = monitoring(reporter(job, proxy=http_proxy))
    reads = http_proxy.answer(pod_get(job.pod), Sized(huge))
    eventually(lambda: reads.served >= 2 and watches.served >= 3, timeout=20)
    written = time.monotonic()
    job.write_result(SUCCESS)
    assert run.wait(timeout=30) == 0, run.output
    rss, _ = exit_figures(run)
    outcome = record(
        "16 MiB Pod on every read and watch; valid result",
        job,
        run,
        written,
        f"max_rss_mib={rss}, {reads.served} reads and {watches.served} watches refused",
    )
    assert summary(job.condition()) == ("True", "ValidationPassed", "GCP environment validated")
    assert run.last_word()["written"] is True
    assert outcome.seconds <= 2
    assert rss < RSS_LIMIT_MIB, outcome.measured
    assert f"is larger than {MAX_BODY} bytes" in run.output, run.output
    assert f"is longer than {MAX_BODY} bytes" in run.output, run.output
    assert "monitor failed" not in run.output
