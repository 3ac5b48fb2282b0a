"""What the engine remembers between reads: invalid content settles by its bytes."""

from __future__ import annotations

from status_reporter.core.contract import ResultInvalid, ResultMissing, ResultValid, parse_result
from status_reporter.core.decision import AdapterState, Stop, Terminated
from status_reporter.core.record import Record


def invalid(data: bytes) -> ResultInvalid:
    state = parse_result(data)
    assert isinstance(state, ResultInvalid)
    return state


def make() -> Record:
    return Record(deadline=300.0, max_wait_seconds=300, settle_seconds=2.0)


def test_invalid_content_settles_from_its_first_read() -> None:
    obs = make()
    assert obs.record_result(invalid(b"{"), now=1.0)
    assert not obs.record_result(invalid(b"{"), now=2.5)
    assert obs.snapshot(2.5).invalid_since == 1.0


def test_changed_content_starts_again() -> None:
    obs = make()
    obs.record_result(invalid(b"{"), now=1.0)
    assert obs.record_result(invalid(b'{"a"'), now=2.0)
    assert obs.snapshot(2.0).invalid_since == 2.0


def test_a_missing_file_restarts_the_settle_window() -> None:
    """Delete-then-recreate is a normal way to write: the same bytes read again after
    the file was missing start a new window."""
    obs = make()
    obs.record_result(invalid(b"{"), now=1.0)
    assert not obs.record_result(ResultMissing(), now=1.5)
    assert obs.snapshot(1.5).invalid_since is None
    assert obs.record_result(invalid(b"{"), now=2.0)
    assert obs.snapshot(2.0).invalid_since == 2.0


def test_an_empty_file_never_settles_and_restarts_the_window() -> None:
    """Truncate-then-write shows an empty file for an instant: an empty read is not
    content that settles, and what is read after it starts a new window."""
    obs = make()
    obs.record_result(invalid(b"{"), now=1.0)
    empty = invalid(b" \n")
    assert empty.empty
    assert not obs.record_result(empty, now=1.5)
    assert obs.snapshot(1.5).invalid_since is None
    assert not obs.record_result(empty, now=9.0)
    assert obs.snapshot(9.0).invalid_since is None
    assert obs.record_result(invalid(b"{"), now=9.5)
    assert obs.snapshot(9.5).invalid_since == 9.5


def test_a_valid_result_forgets_invalid_content() -> None:
    obs = make()
    obs.record_result(invalid(b"{"), now=1.0)
    valid = parse_result(b'{"status":"success"}')
    assert isinstance(valid, ResultValid)
    obs.record_result(valid, now=1.5)
    assert obs.record_result(invalid(b"{"), now=2.0)
    assert obs.snapshot(2.0).invalid_since == 2.0


def test_adapter_termination_is_reported_once() -> None:
    obs = make()
    assert not obs.record_adapter(AdapterState(ever_ran=True))
    crashed = AdapterState(terminated=Terminated(1, "Error"), ever_ran=True)
    assert obs.record_adapter(crashed)
    assert not obs.record_adapter(crashed)


def test_the_earliest_stop_counts_and_a_gone_pod_closes_the_window() -> None:
    obs = make()
    obs.record_stop(Stop(at=10.0, wall=1010.0))
    obs.record_stop(Stop(at=8.0, wall=1008.0))
    obs.record_stop(Stop(at=12.0, wall=1012.0))
    assert obs.snapshot(12.0).stop == Stop(at=8.0, wall=1008.0)
    assert obs.snapshot(12.0).stop_window == 5.0
    obs.record_pod_gone(Stop(at=13.0, wall=1013.0))
    assert obs.snapshot(13.0).stop_window == 0.0


def test_a_new_record_has_seen_nothing() -> None:
    obs = make()
    assert obs.pod_gone is False
    snapshot = obs.snapshot(0.0)
    assert (snapshot.result, snapshot.adapter, snapshot.stop) == (ResultMissing(), None, None)


def test_a_pod_state_without_the_adapter_keeps_the_state_known() -> None:
    obs = make()
    crashed = AdapterState(terminated=Terminated(1, "Error"), ever_ran=True)
    obs.record_adapter(crashed)
    assert not obs.record_adapter(None)
    assert obs.adapter == crashed


def test_of_two_stops_at_the_same_instant_the_first_counts() -> None:
    obs = make()
    obs.record_stop(Stop(at=10.0, wall=1010.0))
    obs.record_stop(Stop(at=10.5, wall=1010.0))
    assert obs.stop == Stop(at=10.0, wall=1010.0)
