"""Decoding Pod watch events as kube-apiserver v1.37.2 sends them (lines captured from it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from status_reporter.api import Unreachable
from status_reporter.kube import decode_event

SAMPLES = Path(__file__).parents[1] / "samples" / "watch"


def lines(name: str) -> list[bytes]:
    return (SAMPLES / name).read_bytes().splitlines()


def test_bookmarks_carry_only_a_resource_version() -> None:
    # A bookmark's object is an empty Pod whose containers are null, not a list.
    first, second = (decode_event(line) for line in lines("bookmarks.jsonl"))
    assert first.type == second.type == "BOOKMARK"
    assert first.pod is not None
    assert second.pod is not None
    assert (first.pod.metadata.resource_version, second.pod.metadata.resource_version) == (
        "2169",
        "2180",
    )


def test_a_pod_event() -> None:
    (line,) = lines("added.jsonl")
    event = decode_event(line)
    assert event.type == "ADDED"
    assert event.pod is not None
    assert event.pod.metadata.resource_version == "222"
    assert [c.name for c in event.pod.spec.containers] == ["adapter", "status-reporter"]


def test_an_error_event() -> None:
    line = (
        b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},'
        b'"status":"Failure","message":"too old resource version: 5 (2169)",'
        b'"reason":"Expired","code":410}}'
    )
    event = decode_event(line)
    assert event.type == "ERROR"
    assert event.error is not None
    assert (event.error.code, event.error.reason) == (410, "Expired")


@pytest.mark.parametrize("line", [b"{", b'{"type":"MODIFIED","object":[]}', b"[]"])
def test_a_line_that_is_not_an_event_breaks_the_watch(line: bytes) -> None:
    with pytest.raises(Unreachable, match="malformed watch event"):
        decode_event(line)
