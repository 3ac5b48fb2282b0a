"""The Job's own deadline: how long the reporter waits before row 7."""

from __future__ import annotations

import pytest

from status_reporter.core.conditions import rfc3339
from status_reporter.core.jobs import JOB_DEADLINE_MARGIN_SECONDS, effective_wait
from status_reporter.core.models import Job, JobSpec, JobStatus

NOW = 1_795_687_200.0


def job(deadline: int | None, started: float | None = NOW) -> Job:
    return Job(
        spec=JobSpec(active_deadline_seconds=deadline),
        status=JobStatus(start_time=None if started is None else rfc3339(started)),
    )


def test_without_a_job_deadline_the_wait_is_max_wait() -> None:
    assert effective_wait(300, job(None), NOW) == 300


@pytest.mark.parametrize(
    ("deadline", "started", "expected"),
    [
        (25, NOW, 20),  # the deadline minus the margin
        (25, NOW - 3, 17),  # counted from the Job's start, not the reporter's
        (310, NOW, 300),  # HyperFleet's hand-kept margin: MAX_WAIT_TIME_SECONDS first
        (305, NOW, 300),  # exactly the margin
        (304, NOW, 299),
        (25, NOW - 30, 0),  # already past: decide at once
        (25, NOW + 0.5, 20),  # a start time ahead of this clock: whole seconds, rounded down
    ],
)
def test_the_jobs_deadline_minus_the_margin_ends_the_wait(
    deadline: int, started: float, expected: int
) -> None:
    assert JOB_DEADLINE_MARGIN_SECONDS == 5
    assert effective_wait(300, job(deadline, started), NOW) == expected


def test_a_job_without_a_start_time_is_taken_to_start_now() -> None:
    assert effective_wait(300, job(25, None), NOW) == 20
