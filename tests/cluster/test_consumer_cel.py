"""The validation adapter's ``Available`` expressions, evaluated by cel-go as the adapter
evaluates them, on the Job shapes where a hand translation drifts: no ``Available``
condition, no ``status``, no Job at all. Needs the cel-eval build, not the node."""

from __future__ import annotations

from typing import Any

import pytest
from harness.cel import evaluate
from harness.consumer import DUMMY_CONFIG, EXIT_CODE_CONFIG, VALIDATION_CONFIG, consumer_views

pytestmark = pytest.mark.cluster


def _job(*conditions: dict[str, str], status: bool = True) -> dict[str, Any]:
    job: dict[str, Any] = {"metadata": {"name": "gcp-validator-hf-1-1"}}
    if status:
        job["status"] = {"conditions": list(conditions)} if conditions else {"active": 1}
    return job


AVAILABLE = {"type": "Available", "status": "False", "reason": "AdapterTimeout", "message": "m"}
COMPLETE = {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
FAILED = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}

CASES: list[tuple[str, dict[str, Any] | None, tuple[str, str, str]]] = [
    ("Available next to Failed", _job(FAILED, AVAILABLE), ("False", "AdapterTimeout", "m")),
    ("Failed only", _job(FAILED), ("False", "ValidationFailed", "Validation failed")),
    ("Complete only", _job(COMPLETE), ("False", "ValidationInProgress", "Validation in progress")),
    ("running", _job(), ("False", "ValidationInProgress", "Validation in progress")),
    ("no status", _job(status=False), ("False", "ValidationPending", "Validation is pending")),
    ("no Job", None, ("False", "ValidationPending", "Validation is pending")),
]


@pytest.mark.parametrize("config", [DUMMY_CONFIG, VALIDATION_CONFIG], ids=lambda p: p.stem)
def test_the_adapters_expressions_read_every_shape(config: Any) -> None:
    views = consumer_views([job for _, job, _ in CASES], config)
    assert dict(zip([name for name, _, _ in CASES], views, strict=True)) == {
        name: expected for name, _, expected in CASES
    }


def test_the_exit_code_example_reads_complete_and_failed() -> None:
    views = consumer_views([_job(COMPLETE), _job(FAILED), _job(), None], EXIT_CODE_CONFIG)
    assert views == [
        ("True", "JobComplete", "Hello-world job completed successfully"),
        ("False", "JobFailed", "Hello-world job failed"),
        ("False", "JobRunning", "Hello-world job is running"),
        ("False", "JobPending", "Hello-world job is pending"),
    ]


def test_an_evaluation_error_is_no_value_and_a_parse_error_is_refused() -> None:
    (values,) = evaluate({"missing": "resources.job.status", "ok": "1 + 1"}, [{"resources": {}}])
    assert values == {"missing": None, "ok": 2}
    with pytest.raises(ValueError, match="parse"):
        evaluate({"bad": "resources.?"}, [{"resources": {}}])
