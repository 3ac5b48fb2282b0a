"""Running tasks together: every task is cancelled and awaited before its owner moves on.

The engine races its sources (the stop against a call, a change against a timer)
and the Pod monitor runs a poller beside its watch; each of them leaves nothing
running behind, whichever way it ends.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def cancelled(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel ``tasks`` (None ones are skipped) and wait until each has ended, whatever
    it ended with."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def first_done(*tasks: asyncio.Future[Any]) -> None:
    """Wait until one of ``tasks`` is done; the others are then cancelled and awaited
    (all of them, if the wait itself is cancelled)."""
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancelled(*(task for task in tasks if not task.done()))
