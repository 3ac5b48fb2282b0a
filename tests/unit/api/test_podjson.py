"""Decoding a Pod with only the container statuses its spec names: the same Pod as a
full decode for a real one (captured from kube-apiserver v1.37.2), and a bounded
memory cost for one with 87,371 statuses in a 3 MiB body."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import msgspec
import pytest

from status_reporter.api.kube import decode_event
from status_reporter.api.podjson import decode_pod
from status_reporter.core.models import Pod, WatchEvent

SAMPLES = Path(__file__).parents[2] / "samples" / "watch"
MIB = 1024 * 1024
STATUSES = 87_371


def test_a_real_pod_decodes_as_in_full() -> None:
    (line,) = (SAMPLES / "added.jsonl").read_bytes().splitlines()
    raw = msgspec.json.decode(line, type=WatchEvent).object
    assert decode_pod(raw) == msgspec.json.decode(raw, type=Pod)


def test_only_statuses_of_containers_in_the_spec_are_kept() -> None:
    document = {
        "spec": {"containers": [{"name": "adapter"}], "initContainers": [{"name": "setup"}]},
        "status": {
            "containerStatuses": [
                {"name": "stranger", "state": {"running": {}}},
                {"name": "adapter", "state": {"terminated": {"exitCode": 1}}},
            ],
            "initContainerStatuses": [{"name": "setup"}, {"name": "other"}],
        },
    }
    pod = decode_pod(json.dumps(document).encode())
    assert [s.name for s in pod.status.container_statuses] == ["adapter"]
    state = pod.status.container_statuses[0].state
    assert state is not None
    assert state.terminated is not None
    assert state.terminated.exit_code == 1
    assert [s.name for s in pod.status.init_container_statuses] == ["setup"]


def test_what_is_not_a_pod_is_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_pod(b"[]")


def test_an_unnamed_status_is_not_kept() -> None:
    body = b'{"spec":{"containers":[{"name":"adapter"}]},"status":{"containerStatuses":[{}]}}'
    assert decode_pod(body).status.container_statuses == []


def huge_pod() -> bytes:
    """A 3 MiB Pod with 87,371 container statuses, one of them the adapter's."""
    statuses: list[dict[str, object]] = [
        {"name": f"c{i:09d}", "ready": False} for i in range(STATUSES - 1)
    ]
    statuses.insert(STATUSES // 2, {"name": "adapter", "state": {"terminated": {"exitCode": 1}}})
    document = {
        "kind": "Pod",
        "metadata": {"name": "p", "resourceVersion": "7"},
        "spec": {"containers": [{"name": "adapter"}, {"name": "status-reporter"}]},
        "status": {"containerStatuses": statuses},
    }
    body = json.dumps(document, separators=(",", ":")).encode()
    assert 3 * MIB - 4096 < len(body) <= 3 * MIB
    return body


def traced_peak(work: object) -> int:
    """The peak of the memory allocated while ``work()`` runs."""
    assert callable(work)
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_pod_with_87371_statuses_decodes_in_bounded_memory() -> None:
    body = huge_pod()
    pods: list[Pod] = []
    # A full decode builds every status: about 11 MiB here.
    peak = traced_peak(lambda: pods.append(decode_pod(body)))
    assert [s.name for s in pods[0].status.container_statuses] == ["adapter"]
    assert peak < 6 * MIB, peak / MIB


def test_a_watch_line_with_87371_statuses_decodes_in_bounded_memory() -> None:
    line = b'{"type":"MODIFIED","object":' + huge_pod() + b"}"
    peak = traced_peak(lambda: decode_event(line))
    assert peak < 6 * MIB, peak / MIB
