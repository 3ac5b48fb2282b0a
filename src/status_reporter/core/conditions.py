"""How a decided condition lands on the Job (README "How the condition is written"), as
pure functions.

Following the Kubernetes API conventions for conditions: one entry per ``type``,
``lastTransitionTime`` moves only when ``status`` changes, and an identical
condition is not written again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from status_reporter.core.models import JobCondition


class Condition(msgspec.Struct, frozen=True):
    """The condition to record on the Job, without its timestamps."""

    status: Literal["True", "False"]
    reason: str
    message: str


def rfc3339(unix_seconds: float) -> str:
    """Format a Unix time as RFC 3339 in UTC with whole seconds, as Kubernetes does."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


def find(conditions: Sequence[JobCondition], condition_type: str) -> JobCondition | None:
    """Return the first condition of ``condition_type``, if any."""
    return next((c for c in conditions if c.type == condition_type), None)


def planned_condition(
    conditions: Sequence[JobCondition], condition_type: str, desired: Condition, now: float
) -> dict[str, str] | None:
    """Return the condition entry to write, or None when an identical one is present.

    Same status with another reason or message keeps the existing
    ``lastTransitionTime``; a new or changed status gets ``now`` (Unix seconds).
    """
    current = find(conditions, condition_type)
    transition = rfc3339(now)
    if current is not None and current.status == desired.status:
        if current.reason == desired.reason and current.message == desired.message:
            return None
        transition = current.last_transition_time or transition
    return {
        "type": condition_type,
        "status": desired.status,
        "reason": desired.reason,
        "message": desired.message,
        "lastTransitionTime": transition,
    }


def status_patch(condition: dict[str, str]) -> dict[str, Any]:
    """The strategic-merge patch for ``jobs/status`` that sets ``condition``.

    Job conditions merge on ``type``, so only this entry changes and no other
    writer's condition can be clobbered. No ``resourceVersion`` is sent: it would
    turn every concurrent status write (the Job controller's included) into a 409.
    """
    return {"status": {"conditions": [condition]}}
