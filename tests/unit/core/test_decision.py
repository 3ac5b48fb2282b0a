"""README "Decision table": every row, and which row wins when several hold."""

from __future__ import annotations

import math

import pytest

from status_reporter.core.conditions import Condition
from status_reporter.core.contract import (
    AdapterResult,
    ResultInvalid,
    ResultMissing,
    ResultState,
    ResultValid,
)
from status_reporter.core.decision import (
    AdapterState,
    Observation,
    Pending,
    Rule,
    Stop,
    Terminated,
    Verdict,
    Waiting,
    decide,
    go_duration,
)

SUCCESS = ResultValid(AdapterResult("success", "AllChecksPassed", "All good"))
FAILURE = ResultValid(AdapterResult("failure", "MissingPermissions", "SA lacks IAM roles"))
INVALID = ResultInvalid("status: must be either 'success' or 'failure'", 1)
MISSING = ResultMissing()
RUNNING = AdapterState(ever_ran=True)
OOM = AdapterState(terminated=Terminated(137, "OOMKilled"), ever_ran=True)
CRASHED = AdapterState(terminated=Terminated(1, "Error"), ever_ran=True)
COMPLETED = AdapterState(terminated=Terminated(0, "Completed"), ever_ran=True)
PULL_BACKOFF = AdapterState(waiting=Waiting("ImagePullBackOff", 'Back-off pulling image "x"'))


# Wall-clock seconds at monotonic 0.0 in these tests.
WALL = 1_800_000_000.0


def observe(
    result: ResultState = MISSING,
    adapter: AdapterState | None = RUNNING,
    now: float = 10.0,
    invalid_since: float | None = None,
    stopped_ago: float | None = None,
    max_wait: int = 300,
) -> Verdict | Pending:
    stop = None
    if stopped_ago is not None:
        stop = Stop(at=now - stopped_ago, wall=WALL + now - stopped_ago)
    return decide(
        Observation(
            result=result,
            adapter=adapter,
            now=now,
            deadline=float(max_wait),
            max_wait_seconds=max_wait,
            settle_seconds=2.0,
            invalid_since=invalid_since,
            stop=stop,
        )
    )


def verdict(**kwargs: object) -> Verdict:
    outcome = observe(**kwargs)  # type: ignore[arg-type]
    assert isinstance(outcome, Verdict), outcome
    return outcome


# --- rows 1 and 2: a valid result wins over everything --------------------------------

ALL_ADAPTERS = [None, RUNNING, OOM, CRASHED, COMPLETED, PULL_BACKOFF]


@pytest.mark.parametrize("adapter", ALL_ADAPTERS)
@pytest.mark.parametrize("now", [0.0, 299.9, 300.0, 10_000.0])
@pytest.mark.parametrize("stopped_ago", [None, 0.0, 5.0])
def test_valid_result_wins(
    adapter: AdapterState | None, now: float, stopped_ago: float | None
) -> None:
    success = verdict(result=SUCCESS, adapter=adapter, now=now, stopped_ago=stopped_ago)
    assert success == Verdict(Rule.RESULT_SUCCESS, Condition("True", "AllChecksPassed", "All good"))
    assert success.from_result
    failure = verdict(result=FAILURE, adapter=adapter, now=now, stopped_ago=stopped_ago)
    assert failure == Verdict(
        Rule.RESULT_FAILURE, Condition("False", "MissingPermissions", "SA lacks IAM roles")
    )
    assert failure.from_result


# --- row 3 ----------------------------------------------------------------------------


@pytest.mark.parametrize("result", [MISSING, INVALID])
def test_oom_killed(result: ResultState) -> None:
    outcome = verdict(result=result, adapter=OOM, invalid_since=10.0)
    assert outcome == Verdict(
        Rule.OOM_KILLED,
        Condition(
            "False",
            "AdapterOOMKilled",
            "Adapter container was killed due to out of memory (OOMKilled)",
        ),
    )
    assert not outcome.from_result


def test_oom_is_recognised_by_reason_whatever_the_exit_code() -> None:
    adapter = AdapterState(terminated=Terminated(0, "OOMKilled"), ever_ran=True)
    assert verdict(adapter=adapter).rule is Rule.OOM_KILLED


# --- row 4 ----------------------------------------------------------------------------


def test_invalid_file_after_termination_is_reported_at_once() -> None:
    for adapter, code in ((CRASHED, 1), (COMPLETED, 0)):
        outcome = verdict(result=INVALID, adapter=adapter, invalid_since=10.0)
        assert outcome == Verdict(
            Rule.INVALID_RESULT,
            Condition(
                "False",
                "InvalidResultFormat",
                "Failed to parse adapter result: status: must be either 'success' or 'failure'"
                f"; adapter exited with code {code}",
            ),
        )


def test_invalid_file_while_running_waits_for_the_settle_window() -> None:
    assert observe(result=INVALID, invalid_since=10.0, now=10.0) == Pending(12.0)
    assert observe(result=INVALID, invalid_since=10.0, now=11.9) == Pending(12.0)
    settled = verdict(result=INVALID, invalid_since=10.0, now=12.0)
    assert settled.condition == Condition(
        "False",
        "InvalidResultFormat",
        "Failed to parse adapter result: status: must be either 'success' or 'failure'",
    )


def test_invalid_file_first_seen_now_starts_the_window() -> None:
    assert observe(result=INVALID, invalid_since=None, now=50.0) == Pending(52.0)


@pytest.mark.parametrize("adapter", [None, PULL_BACKOFF, RUNNING])
def test_invalid_file_settles_whatever_the_adapter_state(adapter: AdapterState | None) -> None:
    assert verdict(result=INVALID, adapter=adapter, invalid_since=0.0, now=5.0).rule is (
        Rule.INVALID_RESULT
    )


def test_settle_window_never_extends_past_the_timeout() -> None:
    assert observe(result=INVALID, invalid_since=299.0, now=299.0) == Pending(300.0)
    assert verdict(result=INVALID, invalid_since=299.0, now=300.0).rule is Rule.TIMEOUT


def test_long_parse_errors_are_cut_to_the_message_limit() -> None:
    outcome = verdict(result=ResultInvalid("é" * 2000, 2), adapter=CRASHED)
    assert len(outcome.condition.message.encode()) <= 1024


# --- row 5 ----------------------------------------------------------------------------


def test_exited_with_error() -> None:
    assert verdict(adapter=CRASHED).condition == Condition(
        "False", "AdapterExitedWithError", "Adapter container exited with code 1: Error"
    )


@pytest.mark.parametrize(
    ("termination_message", "suffix"),
    [
        ("", ""),
        ("\n  \n", ""),
        ("panic: boom", ": panic: boom"),
        ("line one\nline two\n", ": line two"),
        ("first\nlast line  \n\n", ": last line"),
    ],
)
def test_exited_with_error_adds_the_last_line_of_the_termination_message(
    termination_message: str, suffix: str
) -> None:
    adapter = AdapterState(terminated=Terminated(2, "Error", termination_message), ever_ran=True)
    assert verdict(adapter=adapter).condition.message == (
        "Adapter container exited with code 2: Error" + suffix
    )


def test_exited_with_error_message_is_bounded() -> None:
    adapter = AdapterState(terminated=Terminated(1, "Error", "ü" * 5000), ever_ran=True)
    message = verdict(adapter=adapter).condition.message
    assert len(message.encode()) <= 1024
    assert message.startswith("Adapter container exited with code 1: Error: üü")


@pytest.mark.parametrize("code", [-1, 2, 127, 137, 255])
def test_any_nonzero_exit_code(code: int) -> None:
    adapter = AdapterState(terminated=Terminated(code, "Error"), ever_ran=True)
    assert verdict(adapter=adapter).condition.message == (
        f"Adapter container exited with code {code}: Error"
    )


# --- row 6 ----------------------------------------------------------------------------


def test_missing_results() -> None:
    assert verdict(adapter=COMPLETED) == Verdict(
        Rule.MISSING_RESULTS,
        Condition(
            "False",
            "AdapterMissingResults",
            "Adapter container exited successfully (code 0) but did not produce a valid "
            "result file: Completed",
        ),
    )


# --- row 7 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_wait", "shown"), [(30, "30s"), (90, "1m30s"), (300, "5m0s"), (3600, "1h0m0s")]
)
def test_timeout(max_wait: int, shown: str) -> None:
    assert observe(now=max_wait - 0.001, max_wait=max_wait) == Pending(float(max_wait))
    assert verdict(now=float(max_wait), max_wait=max_wait) == Verdict(
        Rule.TIMEOUT,
        Condition("False", "AdapterTimeout", f"Adapter did not produce results within {shown}"),
    )


def test_timeout_names_why_the_adapter_never_started() -> None:
    assert verdict(adapter=PULL_BACKOFF, now=300.0).condition.message == (
        "Adapter did not produce results within 5m0s "
        '(adapter waiting: ImagePullBackOff: Back-off pulling image "x")'
    )
    reason_only = AdapterState(waiting=Waiting("ContainerCreating"))
    assert verdict(adapter=reason_only, now=300.0).condition.message == (
        "Adapter did not produce results within 5m0s (adapter waiting: ContainerCreating)"
    )


def test_timeout_without_waiting_detail() -> None:
    plain = "Adapter did not produce results within 5m0s"
    # A container that ran before and now waits (restart back-off) did start.
    restarted = AdapterState(waiting=Waiting("CrashLoopBackOff", "back-off"), ever_ran=True)
    for adapter in (None, RUNNING, restarted, AdapterState(waiting=Waiting())):
        assert verdict(adapter=adapter, now=300.0).condition.message == plain


def test_timeout_message_is_bounded() -> None:
    adapter = AdapterState(waiting=Waiting("ErrImagePull", "x" * 3000))
    assert len(verdict(adapter=adapter, now=300.0).condition.message.encode()) == 1024


# --- row 8 ----------------------------------------------------------------------------


def test_interrupted_once_the_stop_window_is_over() -> None:
    assert verdict(stopped_ago=5.0) == Verdict(
        Rule.INTERRUPTED,
        Condition(
            "False",
            "ReporterInterrupted",
            "Status reporter was stopped before the adapter produced a result",
        ),
    )


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"adapter": OOM}, Rule.OOM_KILLED),
        ({"adapter": CRASHED}, Rule.EXITED_WITH_ERROR),
        ({"adapter": COMPLETED}, Rule.MISSING_RESULTS),
        ({"result": INVALID, "invalid_since": 0.0}, Rule.INVALID_RESULT),
        ({"now": 300.0}, Rule.TIMEOUT),
        ({"result": INVALID, "invalid_since": 9.0}, Rule.INTERRUPTED),
    ],
)
def test_interruption_comes_after_rules_one_to_seven(kwargs: dict[str, object], rule: Rule) -> None:
    assert verdict(stopped_ago=5.0, **kwargs).rule is rule


@pytest.mark.parametrize("adapter", [None, RUNNING, PULL_BACKOFF])
def test_stop_window_waits_for_the_adapter_state(adapter: AdapterState | None) -> None:
    assert observe(adapter=adapter, stopped_ago=1.5) == Pending(10.0 + 3.5)


def test_stop_window_never_outlasts_the_deadline_or_the_settle_window() -> None:
    assert observe(now=299.0, stopped_ago=1.0) == Pending(300.0)
    assert observe(result=INVALID, invalid_since=9.0, stopped_ago=1.0) == Pending(11.0)


def _ended(finished_after_stop: float | None, code: int = 143) -> AdapterState:
    """An adapter that finished this long after a stop 1 s ago (at now = 10)."""
    finished = None if finished_after_stop is None else WALL + 9.0 + finished_after_stop
    return AdapterState(terminated=Terminated(code, "Error", "", finished), ever_ran=True)


@pytest.mark.parametrize("after", [-30.0, 0.0, 1.0, None])
def test_an_adapter_that_ended_on_its_own_is_reported(after: float | None) -> None:
    # finishedAt has whole seconds: up to 1 s after the stop still counts as before it.
    outcome = verdict(adapter=_ended(after, code=1), stopped_ago=1.0)
    assert outcome.rule is Rule.EXITED_WITH_ERROR


@pytest.mark.parametrize("code", [143, 137, 0])
def test_an_adapter_ended_by_the_same_stop_is_an_interruption_at_once(code: int) -> None:
    assert verdict(adapter=_ended(1.5, code=code), stopped_ago=1.0).rule is Rule.INTERRUPTED


def _ended_at(finished: float, code: int) -> AdapterState:
    return AdapterState(terminated=Terminated(code, "Error", "", finished), ever_ran=True)


@pytest.mark.parametrize("code", [143, 137])
@pytest.mark.parametrize("second", [0.0, 1.0])
def test_a_signal_exit_in_the_stops_own_second_is_an_interruption(code: int, second: float) -> None:
    # The stop arrives at …10.6; the adapter exits on the same SIGTERM at …10.8 or
    # …11.9: finishedAt shows …10 or …11, within the tolerance.
    stop_wall = WALL + 10.6
    finished = math.floor(stop_wall) + second
    outcome = verdict(adapter=_ended_at(finished, code), now=11.0, stopped_ago=0.4)
    assert outcome.rule is Rule.INTERRUPTED


@pytest.mark.parametrize(("code", "before"), [(143, 1.0), (137, 5.0), (1, 0.0), (2, 0.0)])
def test_an_exit_on_its_own_before_the_stop_is_reported(code: int, before: float) -> None:
    """A signal's code from before the stop's second, or another code in that second:
    the adapter ended on its own."""
    finished = math.floor(WALL + 10.6) - before
    outcome = verdict(adapter=_ended_at(finished, code), now=11.0, stopped_ago=0.4)
    assert outcome.rule is Rule.EXITED_WITH_ERROR


def test_an_oom_kill_in_the_stops_second_is_still_the_oom_kill() -> None:
    """The OOM killer's 137 says OOMKilled: the kernel ended the adapter, not the stop
    (seen on a real node: a native sidecar's stop came in the same second)."""
    finished = math.floor(WALL + 10.6)
    oom = AdapterState(terminated=Terminated(137, "OOMKilled", "", finished), ever_ran=True)
    outcome = verdict(adapter=oom, now=11.0, stopped_ago=0.4)
    assert outcome.rule is Rule.OOM_KILLED


def test_an_adapter_ended_by_the_stop_leaves_an_invalid_file_unsettled() -> None:
    outcome = verdict(result=INVALID, invalid_since=9.5, adapter=_ended(1.5), stopped_ago=1.0)
    assert outcome.rule is Rule.INTERRUPTED


def test_without_a_stop_the_finishing_time_does_not_matter() -> None:
    assert verdict(adapter=_ended(100.0, code=1)).rule is Rule.EXITED_WITH_ERROR


# --- nothing decided yet ------------------------------------------------------------------


@pytest.mark.parametrize("adapter", [None, RUNNING, PULL_BACKOFF])
def test_pending_until_the_deadline(adapter: AdapterState | None) -> None:
    assert observe(adapter=adapter, now=0.0) == Pending(300.0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1, "1s"),
        (59, "59s"),
        (60, "1m0s"),
        (61, "1m1s"),
        (3599, "59m59s"),
        (3600, "1h0m0s"),
        (3661, "1h1m1s"),
        (90000, "25h0m0s"),
    ],
)
def test_go_duration(seconds: int, text: str) -> None:
    assert go_duration(seconds) == text
