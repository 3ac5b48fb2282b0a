"""How a decided condition lands on the Job (SPEC §5), as pure functions.

Following the Kubernetes API conventions for conditions: one entry per ``type``,
``lastTransitionTime`` moves only when ``status`` changes, and an identical
condition is not written again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from status_reporter.decision import Condition


def rfc3339(moment: datetime) -> str:
    """Format ``moment`` as RFC 3339 in UTC with whole seconds, as Kubernetes does."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Sequence[Mapping[str, Any]], condition_type: str) -> Mapping[str, Any] | None:
    """Return the first condition of ``condition_type``, if any."""
    return next((c for c in conditions if c.get("type") == condition_type), None)


def planned_condition(
    conditions: Sequence[Mapping[str, Any]],
    condition_type: str,
    desired: Condition,
    now: datetime,
) -> dict[str, str] | None:
    """Return the condition entry to write, or None when an identical one is present.

    Same status with another reason or message keeps the existing
    ``lastTransitionTime``; a new or changed status gets ``now``.
    """
    current = find(conditions, condition_type)
    transition = rfc3339(now)
    if current is not None and current.get("status") == desired.status:
        if current.get("reason") == desired.reason and current.get("message") == desired.message:
            return None
        transition = str(current.get("lastTransitionTime") or transition)
    return {
        "type": condition_type,
        "status": desired.status,
        "reason": desired.reason,
        "message": desired.message,
        "lastTransitionTime": transition,
    }


def status_patch(resource_version: str, condition: Mapping[str, str]) -> dict[str, Any]:
    """Build the strategic-merge patch for ``jobs/status``.

    Job conditions merge on ``type``, so only this entry changes. The
    ``resourceVersion`` makes the API server refuse the patch with 409 Conflict
    when the Job changed since it was read.
    """
    return {
        "metadata": {"resourceVersion": resource_version},
        "status": {"conditions": [dict(condition)]},
    }
