"""The API server's clock: its Date header read, counted on, and compared with the node's."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from status_reporter.core.clocks import ServerTime, parse_http_date, skew


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31)))
def test_an_http_date_is_read_as_the_standard_library_reads_it(moment: datetime) -> None:
    text = format_datetime(moment.replace(microsecond=0, tzinfo=UTC), usegmt=True)
    assert parse_http_date(text) == parsedate_to_datetime(text).timestamp()


def test_the_date_go_sends() -> None:
    assert parse_http_date("Mon, 07 Dec 2026 20:52:56 GMT") == calendar.timegm(
        time.strptime("2026-12-07 20:52:56", "%Y-%m-%d %H:%M:%S")
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "Monday, 07-Dec-26 20:52:56 GMT",  # the obsolete forms Go never sends
        "Mon Dec  7 20:52:56 2026",
        "Mon, 07 Dec 2026 20:52:56 UTC",
        "Mon, 07 Foo 2026 20:52:56 GMT",
        "Mon, 32 Dec 2026 20:52:56 GMT",
        "Mon, 07 Dec 2026 24:00:00 GMT",
        "Mon, 07 Dec 2026 20:52 GMT",
        "Mon, \u0660\u0667 Dec 2026 20:52:56 GMT",  # digits, not ASCII ones
    ],
)
def test_anything_else_is_no_date(text: str) -> None:
    assert parse_http_date(text) is None


def test_the_servers_time_is_counted_on_the_monotonic_clock() -> None:
    server = ServerTime(date=1_000_000.0, at=50.0)
    assert server.now(50.0) == 1_000_000.0
    assert server.now(80.5) == 1_000_030.5


@pytest.mark.parametrize(
    ("date", "wall", "expected"),
    [
        (1_000_000.0, 1_000_000.7, 0.0),  # the Date's rounding, not a difference
        (1_000_000.0, 999_999.5, 0.0),
        (1_000_000.0, 1_000_010.2, -10.2),  # the node ahead
        (1_000_300.0, 1_000_000.0, 300.0),  # the server ahead
    ],
)
def test_skew_is_measured_beyond_the_dates_rounding(
    date: float, wall: float, expected: float
) -> None:
    assert skew(ServerTime(date, at=7.0), 7.0, wall) == pytest.approx(expected)


def test_no_date_no_skew() -> None:
    assert skew(None, 7.0, 1_000_000.0) == 0.0
