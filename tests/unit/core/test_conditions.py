"""README "How the condition is written": idempotency and lastTransitionTime, and the patch."""

from __future__ import annotations

from status_reporter.core.conditions import Condition, planned_condition, rfc3339, status_patch
from status_reporter.core.models import JobCondition

NOW = 1_795_689_000.123456  # 2026-11-26T10:30:00.123456Z
EARLIER = "2026-11-26T09:00:00Z"
WANTED = Condition("True", "ValidationPassed", "GCP environment validated successfully")


def existing(status: str, reason: str, message: str, kind: str = "Available") -> JobCondition:
    return JobCondition(
        type=kind, status=status, reason=reason, message=message, last_transition_time=EARLIER
    )


def test_rfc3339_is_utc_whole_seconds() -> None:
    assert rfc3339(NOW) == "2026-11-26T10:30:00Z"
    assert rfc3339(0.999) == "1970-01-01T00:00:00Z"


def test_new_condition_gets_now() -> None:
    assert planned_condition([], "Available", WANTED, NOW) == {
        "type": "Available",
        "status": "True",
        "reason": "ValidationPassed",
        "message": "GCP environment validated successfully",
        "lastTransitionTime": "2026-11-26T10:30:00Z",
    }


def test_identical_condition_is_not_written() -> None:
    current = [existing("True", WANTED.reason, WANTED.message)]
    assert planned_condition(current, "Available", WANTED, NOW) is None


def test_same_status_other_reason_keeps_transition_time() -> None:
    for current in (
        existing("True", "OtherReason", WANTED.message),
        existing("True", WANTED.reason, "other message"),
    ):
        planned = planned_condition([current], "Available", WANTED, NOW)
        assert planned is not None
        assert planned["lastTransitionTime"] == EARLIER
        assert (planned["reason"], planned["message"]) == (WANTED.reason, WANTED.message)


def test_status_change_gets_new_transition_time() -> None:
    current = [existing("False", WANTED.reason, WANTED.message)]
    planned = planned_condition(current, "Available", WANTED, NOW)
    assert planned is not None
    assert planned["status"] == "True"
    assert planned["lastTransitionTime"] == "2026-11-26T10:30:00Z"


def test_only_the_configured_type_is_considered() -> None:
    others = [
        existing("True", WANTED.reason, WANTED.message, kind="Complete"),
        existing("True", WANTED.reason, WANTED.message, kind="Validated"),
    ]
    planned = planned_condition(others, "Available", WANTED, NOW)
    assert planned is not None
    assert planned["type"] == "Available"
    assert planned_condition(others, "Validated", WANTED, NOW) is None


def test_same_status_without_transition_time_gets_now() -> None:
    current = [JobCondition(type="Available", status="True", reason="Old", message="m")]
    planned = planned_condition(current, "Available", WANTED, NOW)
    assert planned is not None
    assert planned["lastTransitionTime"] == "2026-11-26T10:30:00Z"


def test_patch_carries_only_the_condition_and_no_resource_version() -> None:
    condition = {"type": "Available", "status": "True"}
    assert status_patch(condition) == {"status": {"conditions": [condition]}}
