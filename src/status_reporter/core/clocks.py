"""The API server's clock as the reporter sees it (README "Exit codes and lifecycle").

The node's clock and the API server's may differ by minutes. Times the API server
stamps (a Job's ``startTime``, a Pod's ``deletionTimestamp``) are compared with the
server's own clock, as a response's ``Date`` header shows it and counted on from
there on the reporter's monotonic clock, or moved onto the node's clock by the
measured difference. Pure functions; the times are passed in.
"""

from __future__ import annotations

from typing import Final

import msgspec

# Below this a measured difference between the clocks is the Date header's rounding,
# not a difference: times are then compared as they are.
MIN_SKEW_SECONDS: Final = 1.0
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}


class ServerTime(msgspec.Struct, frozen=True):
    """One reading of the API server's clock: its ``Date`` header (Unix seconds) and
    when that response arrived, on the reporter's monotonic clock."""

    date: float
    at: float

    def now(self, monotonic_now: float) -> float:
        """The API server's time (Unix seconds) at ``monotonic_now``: at most a second
        behind it, as a Date header has whole seconds (rounded down)."""
        return self.date + (monotonic_now - self.at)


def skew(server: ServerTime | None, monotonic_now: float, wall_now: float) -> float:
    """How far the API server's clock is ahead of the node's (seconds; negative when
    behind), or 0 when unknown or within a Date header's rounding."""
    if server is None:
        return 0.0
    difference = server.now(monotonic_now) - wall_now
    return difference if abs(difference) >= MIN_SKEW_SECONDS else 0.0


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def parse_http_date(value: str) -> float | None:
    """An HTTP ``Date`` in its preferred form (``Sun, 06 Nov 1994 08:49:37 GMT``, the only
    one Go's servers send) as Unix seconds; None for anything else."""
    parts = value.split()
    if len(parts) != 6 or parts[5] != "GMT" or parts[2] not in _MONTHS:
        return None
    clock = parts[4].split(":")
    if len(clock) != 3 or not all(
        p.isascii() and p.isdigit() for p in [parts[1], parts[3], *clock]
    ):
        return None
    day, year = int(parts[1]), int(parts[3])
    hours, minutes, seconds = (int(p) for p in clock)
    if not (1 <= day <= 31 and hours < 24 and minutes < 60 and seconds < 61):
        return None
    days = _days_from_civil(year, _MONTHS[parts[2]], day)
    return float(days * 86400 + hours * 3600 + minutes * 60 + seconds)
