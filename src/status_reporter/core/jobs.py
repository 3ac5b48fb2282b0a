"""What the reporter reads from its Job besides the conditions: the deadline the Job
itself sets (README "Decision table", row 7).

A Job's ``spec.activeDeadlineSeconds``, counted from ``status.startTime``, ends the
Job whatever its Pods are doing: the Job controller marks it ``DeadlineExceeded``
and stops the Pod. The reporter's own wait ends a margin before that, so that
``AdapterTimeout`` is on the Job before the stop arrives.
"""

from __future__ import annotations

import math
from typing import Final

from status_reporter.core.models import Job
from status_reporter.core.pods import unix_time

# How long before the Job's own deadline the reporter gives up waiting: enough for the
# final reads and the write before the Job controller stops the Pod.
JOB_DEADLINE_MARGIN_SECONDS: Final = 5


def effective_wait(max_wait_seconds: int, job: Job, wall_now: float) -> int:
    """Whole seconds to wait from ``wall_now`` (Unix seconds) before rule 7 applies.

    ``MAX_WAIT_TIME_SECONDS``, or less when the Job's own deadline minus the margin
    comes first. A Job whose start time is not recorded yet is taken to start now.
    """
    deadline = job.spec.active_deadline_seconds
    if deadline is None:
        return max_wait_seconds
    started = unix_time(job.status.start_time)
    if started is None:
        started = wall_now
    left = started + deadline - JOB_DEADLINE_MARGIN_SECONDS - wall_now
    return max(0, min(max_wait_seconds, math.floor(left)))
