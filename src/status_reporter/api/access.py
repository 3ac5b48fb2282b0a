"""Permissions checked at start-up (README "RBAC").

One SelfSubjectRulesReview, the first request, tells whether ``patch`` on ``jobs/status`` is granted
(required), whether ``watch`` on pods is (optional: without it the Pod is polled)
and whether ``create`` on ``events.k8s.io`` events is (optional: without it no Event
is recorded). When the review is unavailable or incomplete, permissions are assumed
and the calls themselves will tell. Whether the Pod may be watched is known from the
review alone (start-up then takes the Pod's first state from the watch); the rest is
checked once the Job is named (it may be learned from the Pod).
"""

from __future__ import annotations

import msgspec

from status_reporter.api.protocol import Api, Operation, Operations
from status_reporter.api.retry import KubeError, call, forbidden_hint
from status_reporter.base.clock import Clock
from status_reporter.base.logs import Logger
from status_reporter.core.models import ResourceRule, RulesReviewStatus

_REVIEW = Operation("create", "authorization.k8s.io", "selfsubjectrulesreviews", "", "")


class Access(msgspec.Struct, frozen=True):
    """What start-up learned: whether Events may be created, and whether the review
    confirmed ``patch`` on ``jobs/status`` (rather than being unable to tell)."""

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


async def review_rules(
    api: Api, *, clock: Clock, deadline: float, log: Logger
) -> RulesReviewStatus:
    """The SelfSubjectRulesReview, retried until ``deadline``.

    Raises:
        KubeError: no review (permissions are then assumed, and the calls will tell).
    """
    return await call(
        _REVIEW,
        lambda timeout: api.review_rules(timeout=timeout),
        clock=clock,
        deadline=deadline,
        log=log,
    )


def may_watch_pods(review: RulesReviewStatus | None, ops: Operations) -> bool:
    """Whether ``review`` grants ``watch`` on the Pod (assumed when it could not tell)."""
    return _allowed(review, ops.watch_pods)


def check_access(review: RulesReviewStatus | None, ops: Operations, *, log: Logger) -> Access:
    """Check ``patch jobs/status`` (required), ``watch pods`` and ``create events``
    (optional) in ``review`` (everything assumed when it is None), once ``ops`` names
    the Job.

    Raises:
        KubeError: the patch permission is missing (status 403).
    """
    if review is None:
        return Access(create_events=True)
    if not _allowed(review, ops.patch_status):
        raise KubeError(
            f"forbidden: missing permission to {ops.patch_status.describe()}"
            f"{forbidden_hint(ops.patch_status)}",
            403,
        )
    if not _allowed(review, ops.watch_pods):
        log.debug("no 'watch' on pods: polling the Pod instead")
    events = _allowed(review, ops.create_event)
    if not events:
        log.debug("no 'create' on events (events.k8s.io): the outcome is not recorded as an Event")
    return Access(create_events=events, patch_confirmed=not review.incomplete)


def _allowed(review: RulesReviewStatus | None, op: Operation) -> bool:
    return (
        review is None
        or review.incomplete
        or any(rule_allows(rule, op) for rule in review.resource_rules)
    )
