"""Test doubles for the edges: a manual clock and container states."""

from __future__ import annotations

import asyncio

from status_reporter.core.models import ContainerState, Running, TerminatedState, WaitingState

# The fake wall clock starts here (2026-11-26T10:00:00Z) and moves with the monotonic one.
WALL_START = 1_795_687_200.0


class FakeClock:
    """A monotonic clock that moves only when told to.

    With ``autojump`` every sleep returns at once with the clock moved to its end
    (for sequential code such as retries); otherwise sleepers wait for
    :meth:`advance`.
    """

    def __init__(self, start: float = 1000.0, autojump: bool = False) -> None:
        self._now = start
        self._start = start
        self._autojump = autojump
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return WALL_START + (self._now - self._start)

    async def sleep_until(self, deadline: float) -> None:
        self.sleeps.append(deadline - self._now)
        if self._autojump:
            self._now = max(self._now, deadline)
            await asyncio.sleep(0)
            return
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (deadline, future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    def next_deadline(self) -> float | None:
        pending = [deadline for deadline, future in self._sleepers if not future.done()]
        return min(pending) if pending else None

    def _wake_due(self) -> None:
        for deadline, future in list(self._sleepers):
            if deadline <= self._now and not future.done():
                future.set_result(None)

    async def advance(self, seconds: float) -> None:
        """Move the clock forward, waking every sleeper on the way in order."""
        target = self._now + seconds
        while True:
            await settle()
            upcoming = self.next_deadline()
            if upcoming is None or upcoming > target:
                break
            self._now = max(self._now, upcoming)
            self._wake_due()
        self._now = target
        self._wake_due()
        await settle()


async def settle(rounds: int = 100) -> None:
    """Let every ready task run until the loop is quiet."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def running() -> ContainerState:
    return ContainerState(running=Running(started_at="2026-11-26T10:00:00Z"))


def terminated(
    exit_code: int = 1, reason: str = "Error", message: str = "", finished_at: str | None = None
) -> ContainerState:
    return ContainerState(
        terminated=TerminatedState(
            exit_code=exit_code, reason=reason, message=message, finished_at=finished_at
        )
    )


def waiting(reason: str, message: str = "") -> ContainerState:
    return ContainerState(waiting=WaitingState(reason=reason, message=message))
