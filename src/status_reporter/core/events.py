"""The Event that records the decided condition on the Job (README "RBAC"), as a pure
function: ``kubectl describe job`` and ``kubectl events`` show the outcome.

An ``events.k8s.io/v1`` Event regarding the Job: type Normal when the condition's
status is True and Warning otherwise, the condition's reason and message as its
reason and note, action ``ReportResult``, reported by the ``status-reporter``
controller from this Pod.
"""

from __future__ import annotations

import time
from typing import Any, Final

from status_reporter.core.conditions import Condition
from status_reporter.core.contract import truncate_utf8

REPORTING_CONTROLLER: Final = "status-reporter"
ACTION: Final = "ReportResult"
# The API server's limits for events.k8s.io/v1 (bytes): the condition's own limits
# (128 and 1024) already fit; the Pod's name may be longer than an instance may be.
_INSTANCE_LIMIT: Final = 128
_NOTE_LIMIT: Final = 1024


def micro_time(unix_seconds: float) -> str:
    """RFC 3339 with microseconds in UTC, the format of an Event's ``eventTime``."""
    whole = int(unix_seconds)
    micros = round((unix_seconds - whole) * 1_000_000)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micros:06d}Z"


def job_event(
    condition: Condition, *, job: str, job_uid: str, namespace: str, pod: str, now: float
) -> dict[str, Any]:
    """The Event for ``condition`` on Job ``job`` (``now`` in Unix seconds)."""
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        # Named as client-go's event recorder names them: the object's name and the time.
        "metadata": {"name": f"{job}.{int(now * 1e9):x}", "namespace": namespace},
        "eventTime": micro_time(now),
        "type": "Normal" if condition.status == "True" else "Warning",
        "reason": condition.reason,
        "note": truncate_utf8(condition.message, _NOTE_LIMIT),
        "action": ACTION,
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": truncate_utf8(pod, _INSTANCE_LIMIT),
        "regarding": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job,
            "namespace": namespace,
            "uid": job_uid,
        },
    }
