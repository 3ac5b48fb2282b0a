"""The Pod monitor's watch length: until a little after the deadline, within bounds."""

from __future__ import annotations

import pytest

from status_reporter.monitors.pod import WATCH_MAX_SECONDS, watch_seconds


@pytest.mark.parametrize(
    ("left", "seconds"), [(0.0, 30), (-5.0, 30), (299.2, 330), (1e9, WATCH_MAX_SECONDS)]
)
def test_watch_lasts_until_after_the_deadline_within_bounds(left: float, seconds: int) -> None:
    assert watch_seconds(left) == seconds
