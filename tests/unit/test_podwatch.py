"""The Pod watch's dead-connection bounds: TCP keepalive and the watch's length."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from status_reporter.api.transport import TcpKeepalive
from status_reporter.monitors.pod import WATCH_MAX_SECONDS, watch_seconds


@given(st.integers(min_value=1, max_value=3600))
def test_keepalive_declares_a_dead_connection_within_two_intervals(interval: int) -> None:
    keepalive = TcpKeepalive.dead_within(2 * interval)
    assert keepalive.idle >= 1
    assert keepalive.interval >= 1
    assert keepalive.count >= 1
    assert keepalive.idle + keepalive.interval * keepalive.count <= 2 * interval
    assert keepalive.idle <= 32767  # the kernel's limit for TCP_KEEPIDLE


def test_keepalive_default() -> None:
    keepalive = TcpKeepalive.dead_within(2 * 10)
    assert (keepalive.idle, keepalive.interval, keepalive.count) == (5, 3, 4)


@pytest.mark.parametrize(
    ("left", "seconds"), [(0.0, 30), (-5.0, 30), (299.2, 330), (1e9, WATCH_MAX_SECONDS)]
)
def test_watch_lasts_until_after_the_deadline_within_bounds(left: float, seconds: int) -> None:
    assert watch_seconds(left) == seconds
