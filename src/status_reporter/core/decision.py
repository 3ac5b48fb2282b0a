"""The decision table (README "Decision table"): a pure function from observations to a
condition.

Nothing here performs I/O or reads a clock: time arrives as numbers in the
:class:`Observation`, so every rule can be tested by constructing one.
"""

from __future__ import annotations

import enum
import math
from typing import Final

import msgspec

from status_reporter.core.conditions import Condition
from status_reporter.core.contract import (
    MESSAGE_LIMIT_BYTES,
    ResultInvalid,
    ResultMissing,
    ResultState,
    ResultValid,
    truncate_utf8,
)

OOM_REASON: Final = "OOMKilled"
OOM_MESSAGE: Final = "Adapter container was killed due to out of memory (OOMKilled)"
INTERRUPTED_MESSAGE: Final = "Status reporter was stopped before the adapter produced a result"


class Rule(enum.IntEnum):
    """The rows of the decision table, in the order they are tried."""

    RESULT_SUCCESS = 1
    RESULT_FAILURE = 2
    OOM_KILLED = 3
    INVALID_RESULT = 4
    EXITED_WITH_ERROR = 5
    MISSING_RESULTS = 6
    TIMEOUT = 7
    INTERRUPTED = 8


class Terminated(msgspec.Struct, frozen=True):
    """The adapter container's ``state.terminated``; ``finished_at`` in Unix seconds."""

    exit_code: int
    reason: str = ""
    message: str = ""
    finished_at: float | None = None


class Waiting(msgspec.Struct, frozen=True):
    """The adapter container's ``state.waiting``."""

    reason: str = ""
    message: str = ""


class AdapterState(msgspec.Struct, frozen=True):
    """What the Pod status says about the adapter container.

    ``ever_ran`` is False while the container has never started (no running or
    terminated state, current or last), as with an image that cannot be pulled.
    """

    terminated: Terminated | None = None
    waiting: Waiting | None = None
    ever_ran: bool = False


class Stop(msgspec.Struct, frozen=True):
    """A stop arrived (SIGTERM, SIGINT or the Pod's deletion).

    ``at`` is on the monotonic clock of :class:`Observation`; ``wall`` is the same
    moment in Unix seconds, to compare with the adapter's ``finishedAt``.
    """

    at: float
    wall: float


# How long a stop waits for the adapter's terminated state or a valid result: a
# kubelet stops a native sidecar about 0.5 s after the adapter exits, often before
# it has posted the adapter's terminated state.
STOP_WINDOW_SECONDS: Final = 5.0
# finishedAt has whole seconds; an adapter that finished within this margin after the
# stop still counts as having finished before it.
STOP_TOLERANCE_SECONDS: Final = 1.0
# 128 + SIGKILL and 128 + SIGTERM: how a process ended by a stop exits.
SIGNAL_EXIT_CODES: Final = frozenset({137, 143})


class Observation(msgspec.Struct, frozen=True):
    """Everything the decision depends on, at one instant.

    Times are seconds on one monotonic clock: ``now``, ``deadline`` (start plus
    ``MAX_WAIT_TIME_SECONDS``) and ``invalid_since`` (when the current invalid
    content was first read, None unless ``result`` is invalid).
    """

    result: ResultState
    adapter: AdapterState | None
    now: float
    deadline: float
    max_wait_seconds: int
    settle_seconds: float
    invalid_since: float | None = None
    stop: Stop | None = None
    stop_window: float = STOP_WINDOW_SECONDS


class Verdict(msgspec.Struct, frozen=True):
    """The decision was made: ``condition`` by table row ``rule``."""

    rule: Rule
    condition: Condition

    @property
    def from_result(self) -> bool:
        """True when a valid result file decided (rules 1–2)."""
        return self.rule in (Rule.RESULT_SUCCESS, Rule.RESULT_FAILURE)


class Pending(msgspec.Struct, frozen=True):
    """No rule holds yet; decide again on the next change, or at ``recheck_at`` at the latest."""

    recheck_at: float


def go_duration(seconds: int) -> str:
    """Format whole seconds like Go's ``time.Duration.String``: ``30s``, ``1m30s``, ``1h0m0s``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _false(rule: Rule, reason: str, message: str) -> Verdict:
    return Verdict(rule, Condition("False", reason, truncate_utf8(message, MESSAGE_LIMIT_BYTES)))


def result_verdict(result: ResultValid | ResultInvalid, exit_code: int | None = None) -> Verdict:
    """The verdict of rows 1, 2 or 4 for a parsed result file.

    Shared by the sidecar and ``check-result``; ``exit_code`` adds the
    ``; adapter exited with code N`` suffix of row 4.
    """
    if isinstance(result, ResultValid):
        adapter = result.result
        if adapter.status == "success":
            return Verdict(Rule.RESULT_SUCCESS, Condition("True", adapter.reason, adapter.message))
        return Verdict(Rule.RESULT_FAILURE, Condition("False", adapter.reason, adapter.message))
    message = f"Failed to parse adapter result: {result.error}"
    if exit_code is not None:
        message += f"; adapter exited with code {exit_code}"
    return _false(Rule.INVALID_RESULT, "InvalidResultFormat", message)


def _exited_with_error(terminated: Terminated) -> Verdict:
    message = f"Adapter container exited with code {terminated.exit_code}: {terminated.reason}"
    tail = _last_line(terminated.message)
    if tail:
        message += f": {tail}"
    return _false(Rule.EXITED_WITH_ERROR, "AdapterExitedWithError", message)


def _timeout(obs: Observation) -> Verdict:
    message = f"Adapter did not produce results within {go_duration(obs.max_wait_seconds)}"
    adapter = obs.adapter
    if adapter is not None and adapter.waiting is not None and not adapter.ever_ran:
        waiting = ": ".join(
            part for part in (adapter.waiting.reason, adapter.waiting.message) if part
        )
        if waiting:
            message += f" (adapter waiting: {waiting})"
    return _false(Rule.TIMEOUT, "AdapterTimeout", message)


def killed_by_stop(terminated: Terminated, stop: Stop | None) -> bool:
    """True when the same stop ended the adapter: it finished after the stop (beyond
    the tolerance), or it exited with a signal's code (143, 137) in the stop's second
    or later. ``finishedAt`` has whole seconds, so an adapter that exits promptly on
    the same SIGTERM shows the stop's own second, within the tolerance."""
    if stop is None or terminated.finished_at is None:
        return False
    if terminated.finished_at > stop.wall + STOP_TOLERANCE_SECONDS:
        return True
    in_the_stops_second = terminated.finished_at >= math.floor(stop.wall)
    # The kernel's OOM killer also exits with 137, but reports itself: not the stop.
    by_a_signal = terminated.exit_code in SIGNAL_EXIT_CODES and terminated.reason != OOM_REASON
    return by_a_signal and in_the_stops_second


def decide(obs: Observation) -> Verdict | Pending:
    """Apply the decision table: the first row that holds decides.

    After a stop, rows 1–7 are still tried first, for up to ``stop_window``
    seconds, so that an adapter that ended on its own is reported as such; an
    adapter ended by the stop itself counts as not terminated, and row 8 follows.
    """
    result = obs.result
    terminated = obs.adapter.terminated if obs.adapter is not None else None
    if isinstance(result, ResultValid):
        return result_verdict(result)
    killed = terminated is not None and killed_by_stop(terminated, obs.stop)
    if killed:
        terminated = None
    if terminated is not None and terminated.reason == OOM_REASON:
        return _false(Rule.OOM_KILLED, "AdapterOOMKilled", OOM_MESSAGE)
    settle_at: float | None = None
    if isinstance(result, ResultInvalid):
        if terminated is not None:
            return result_verdict(result, terminated.exit_code)
        since = obs.now if obs.invalid_since is None else obs.invalid_since
        settle_at = since + obs.settle_seconds
        if obs.now >= settle_at:
            return result_verdict(result)
    elif isinstance(result, ResultMissing) and terminated is not None:
        if terminated.exit_code != 0:
            return _exited_with_error(terminated)
        return _false(
            Rule.MISSING_RESULTS,
            "AdapterMissingResults",
            "Adapter container exited successfully (code 0) but did not produce a valid "
            f"result file: {terminated.reason}",
        )
    if obs.now >= obs.deadline:
        return _timeout(obs)
    recheck = obs.deadline if settle_at is None else min(obs.deadline, settle_at)
    if obs.stop is not None:
        window_end = obs.stop.at + obs.stop_window
        if killed or obs.now >= window_end:
            return _false(Rule.INTERRUPTED, "ReporterInterrupted", INTERRUPTED_MESSAGE)
        recheck = min(recheck, window_end)
    return Pending(recheck)
