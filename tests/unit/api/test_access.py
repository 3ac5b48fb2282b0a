"""The start-up permission check: which RBAC rules grant an operation."""

from __future__ import annotations

import pytest

from status_reporter.api.access import rule_allows
from status_reporter.api.protocol import Operation, Operations
from status_reporter.core.models import ResourceRule

OPS = Operations.of("job-a", "pod-a", "ns-a")


@pytest.mark.parametrize(
    ("rule", "allowed"),
    [
        (ResourceRule(["patch"], ["batch"], ["jobs/status"]), True),
        (ResourceRule(["*"], ["batch"], ["jobs/status"]), True),
        (ResourceRule(["patch"], ["*"], ["*"]), True),
        (ResourceRule(["patch"], ["batch"], ["*/status"]), True),
        (ResourceRule(["patch"], ["batch"], ["jobs/status"], ["job-a"]), True),
        (ResourceRule(["patch"], ["batch"], ["jobs/status"], ["job-b"]), False),
        (ResourceRule(["update"], ["batch"], ["jobs/status"]), False),
        (ResourceRule(["patch"], [""], ["jobs/status"]), False),
        (ResourceRule(["patch"], ["batch"], ["jobs"]), False),
        (ResourceRule(["patch"], ["batch"], ["*/scale"]), False),
    ],
)
def test_rule_allows(rule: ResourceRule, allowed: bool) -> None:
    assert rule_allows(rule, OPS.patch_status) is allowed


def test_subresource_wildcards_do_not_grant_the_resource() -> None:
    watch = Operation("watch", "", "pods", "pod-a", "ns-a")
    assert not rule_allows(ResourceRule(["watch"], [""], ["*/status"]), watch)
