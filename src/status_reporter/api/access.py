"""Permissions checked at start-up (README "RBAC").

One SelfSubjectRulesReview tells whether ``patch`` on ``jobs/status`` is granted
(required), whether ``watch`` on pods is (optional: without it the Pod is polled)
and whether ``create`` on ``events.k8s.io`` events is (optional: without it no Event
is recorded). When the review is unavailable or incomplete, permissions are assumed
and the calls themselves will tell.
"""

from __future__ import annotations

import msgspec

from status_reporter.api.protocol import Api, Operation, Operations
from status_reporter.api.retry import KubeError, call, forbidden_hint
from status_reporter.base.clock import Clock
from status_reporter.base.logs import Logger
from status_reporter.core.models import ResourceRule

_REVIEW = Operation("create", "authorization.k8s.io", "selfsubjectrulesreviews", "", "")


class Access(msgspec.Struct, frozen=True):
    """What start-up learned: whether pods may be watched and Events created, and
    whether the review confirmed ``patch`` on ``jobs/status`` (rather than being unable
    to tell)."""

    watch_pods: bool
    create_events: bool
    patch_confirmed: bool = False


def rule_allows(rule: ResourceRule, op: Operation) -> bool:
    """True when ``rule`` grants ``op`` (wildcards and resource names included)."""
    subresource = op.resource.partition("/")[2]
    resource_ok = (
        op.resource in rule.resources
        or "*" in rule.resources
        or (bool(subresource) and f"*/{subresource}" in rule.resources)
    )
    return (
        resource_ok
        and (op.group in rule.api_groups or "*" in rule.api_groups)
        and (op.verb in rule.verbs or "*" in rule.verbs)
        and (not rule.resource_names or op.name in rule.resource_names)
    )


async def check_access(
    api: Api, ops: Operations, *, clock: Clock, deadline: float, log: Logger
) -> Access:
    """Check ``patch jobs/status`` (required), ``watch pods`` and ``create events``
    (optional).

    Raises:
        KubeError: the patch permission is missing (status 403).
    """
    try:
        review = await call(
            _REVIEW,
            lambda timeout: api.review_rules(timeout=timeout),
            clock=clock,
            deadline=deadline,
            log=log,
        )
    except KubeError as exc:
        log.debug("permission review unavailable; assuming access", error=str(exc))
        return Access(watch_pods=True, create_events=True)

    def allowed(op: Operation) -> bool:
        return review.incomplete or any(rule_allows(rule, op) for rule in review.resource_rules)

    if not allowed(ops.patch_status):
        raise KubeError(
            f"forbidden: missing permission to {ops.patch_status.describe()}"
            f"{forbidden_hint(ops.patch_status)}",
            403,
        )
    watch = allowed(ops.watch_pods)
    if not watch:
        log.debug("no 'watch' on pods: polling the Pod instead")
    events = allowed(ops.create_event)
    if not events:
        log.debug("no 'create' on events (events.k8s.io): the outcome is not recorded as an Event")
    return Access(watch_pods=watch, create_events=events, patch_confirmed=not review.incomplete)
