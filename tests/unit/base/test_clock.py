"""The ticker: a fixed schedule that drops what a slow consumer missed."""

from __future__ import annotations

import asyncio

from status_reporter.base.clock import ticks
from tests.unit.fakes import FakeClock, settle


async def test_ticks_drop_what_a_slow_consumer_missed() -> None:
    clock = FakeClock()
    seen: list[float] = []

    async def consume() -> None:
        async for _ in ticks(clock, 10):
            seen.append(clock.now())
            if len(seen) == 1:
                await clock.sleep_until(clock.now() + 35)  # a slow API read

    task = asyncio.create_task(consume())
    await settle()
    await clock.advance(70)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # 1010, then the read lasts until 1045: 1020, 1030 and 1040 are dropped, not fired at once.
    assert seen == [1010.0, 1050.0, 1060.0, 1070.0]
