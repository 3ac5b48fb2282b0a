"""Time, behind a small interface so that every timing rule is testable without sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Protocol


class Clock(Protocol):
    """A monotonic clock to measure and wait with, and the wall clock for timestamps."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (for ``lastTransitionTime`` and ``finishedAt``)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline``."""
        ...


class LoopClock:
    """The running event loop's clock and the system's wall clock."""

    def now(self) -> float:
        """Seconds on the event loop's monotonic clock."""
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        """Seconds since the Unix epoch."""
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the loop's clock reaches ``deadline``."""
        await asyncio.sleep(max(0.0, deadline - self.now()))


async def ticks(clock: Clock, interval: float) -> AsyncIterator[None]:
    """Yield every ``interval`` seconds on a fixed schedule.

    Like Go's ``time.Ticker``, ticks missed by a slow consumer are dropped, not
    delivered back to back: a slow API server is not then asked again at once.
    """
    tick = clock.now()
    while True:
        tick += interval
        now = clock.now()
        if tick <= now:
            tick += ((now - tick) // interval + 1) * interval
        await clock.sleep_until(tick)
        yield
