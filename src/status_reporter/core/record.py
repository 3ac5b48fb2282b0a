"""The run's record of what has been observed so far, as a small pure object.

The monitors' facts are recorded in it (result-file reads, adapter states, stops, the
Pod gone); :meth:`Record.snapshot` turns it into the
:class:`~status_reporter.core.decision.Observation` that the decision table reads at one
instant. No I/O and no clock: times are passed in.
"""

from __future__ import annotations

import msgspec

from status_reporter.core.contract import ResultInvalid, ResultMissing, ResultState
from status_reporter.core.decision import STOP_WINDOW_SECONDS, AdapterState, Observation, Stop


class _Unsettled(msgspec.Struct, frozen=True):
    """Invalid content (its fingerprint) and when it was first read."""

    fingerprint: int
    since: float


class Record:
    """The latest result file, adapter state and stop, and since when invalid content
    has stayed the same."""

    def __init__(self, *, deadline: float, max_wait_seconds: int, settle_seconds: float) -> None:
        self.deadline = deadline
        self._max_wait = max_wait_seconds
        self._settle = settle_seconds
        self.result: ResultState = ResultMissing()
        self.adapter: AdapterState | None = None
        self.stop: Stop | None = None
        self.pod_gone = False
        self._unsettled: _Unsettled | None = None

    def shorten_wait(self, deadline: float, wait_seconds: int) -> bool:
        """Move the deadline earlier (a Job deadline ends first); ``wait_seconds`` is the
        wait that rule 7's message then names. True when it moved."""
        if deadline >= self.deadline:
            return False
        self.deadline = deadline
        self._max_wait = wait_seconds
        return True

    def record_result(self, state: ResultState, now: float) -> bool:
        """Take a new read of the result file; True when it is new invalid content.

        The settle window of invalid content restarts when the content changes. A
        missing or empty file is a file being (re)written: truncate-then-write and
        delete-then-recreate show one for an instant, so neither settles on its own,
        and the window of whatever is read next starts afresh.
        """
        self.result = state
        if isinstance(state, ResultInvalid) and not state.empty:
            if self._unsettled is None or self._unsettled.fingerprint != state.fingerprint:
                self._unsettled = _Unsettled(state.fingerprint, now)
                return True
            return False
        self._unsettled = None
        return False

    def record_adapter(self, state: AdapterState | None) -> bool:
        """Take the adapter's state from a Pod; True when it has just terminated."""
        if state is None or state == self.adapter:
            return False
        newly_terminated = state.terminated is not None and (
            self.adapter is None or self.adapter.terminated is None
        )
        self.adapter = state
        return newly_terminated

    def record_stop(self, stop: Stop) -> None:
        """A stop arrived; the earliest one counts."""
        if self.stop is None or stop.wall < self.stop.wall:
            self.stop = stop

    def record_pod_gone(self, stop: Stop) -> None:
        """The Pod was deleted: a stop after which no newer Pod state can come."""
        self.record_stop(stop)
        self.pod_gone = True

    def snapshot(self, now: float) -> Observation:
        """The observation the decision table reads, at ``now``."""
        invalid_since = None
        if isinstance(self.result, ResultInvalid) and self._unsettled is not None:
            invalid_since = self._unsettled.since
        return Observation(
            result=self.result,
            adapter=self.adapter,
            now=now,
            deadline=self.deadline,
            max_wait_seconds=self._max_wait,
            settle_seconds=self._settle,
            invalid_since=invalid_since,
            stop=self.stop,
            # Nothing more can be learned from a Pod that no longer exists.
            stop_window=0.0 if self.pod_gone else STOP_WINDOW_SECONDS,
        )
