"""The Event that records the outcome on the Job."""

from __future__ import annotations

import pytest

from status_reporter.core.conditions import Condition
from status_reporter.core.events import job_event, micro_time


@pytest.mark.parametrize(
    ("unix", "text"),
    [
        (1_795_687_200.0, "2026-11-26T10:00:00.000000Z"),
        (1_795_687_200.25, "2026-11-26T10:00:00.250000Z"),
        (1_795_687_200.9999999, "2026-11-26T10:00:01.000000Z"),
    ],
)
def test_event_time_has_microseconds(unix: float, text: str) -> None:
    assert micro_time(unix) == text


@pytest.mark.parametrize(("status", "kind"), [("True", "Normal"), ("False", "Warning")])
def test_the_event_says_what_the_condition_says(status: str, kind: str) -> None:
    condition = Condition(status, "Reason", "the message")  # type: ignore[arg-type]
    event = job_event(condition, job="j", job_uid="u", namespace="ns", pod="p", now=1.5)
    assert event == {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "j.59682f00", "namespace": "ns"},
        "eventTime": "1970-01-01T00:00:01.500000Z",
        "type": kind,
        "reason": "Reason",
        "note": "the message",
        "action": "ReportResult",
        "reportingController": "status-reporter",
        "reportingInstance": "p",
        "regarding": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "j",
            "namespace": "ns",
            "uid": "u",
        },
    }


def test_a_long_pod_name_is_cut_to_the_instance_limit() -> None:
    event = job_event(
        Condition("True", "R", "m"), job="j", job_uid="u", namespace="ns", pod="p" * 253, now=0
    )
    assert event["reportingInstance"] == "p" * 128
