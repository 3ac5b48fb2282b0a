"""Running tasks together: one scope whose children end with it, supervision inside each
child, and the stop that cuts a call short.

The run's concurrency is said in three shapes. :func:`scope` is an
:class:`asyncio.TaskGroup` whose children are cancelled and awaited when its body
ends, however it ends. :func:`supervised` keeps a failing child from taking its
siblings down (a task group cancels them all when one raises): the failure is logged
and the child's fallback runs in its place. :class:`Interrupt` is set by a plain
callback (a signal handler) and cuts short every call made through :meth:`Interrupt.cut`,
each inside an :func:`asyncio.timeout` that it reschedules to now.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

from status_reporter.base.clock import Clock
from status_reporter.base.logs import Logger

_T = TypeVar("_T")


class Scope:
    """The children of one :func:`scope`."""

    def __init__(self, group: asyncio.TaskGroup) -> None:
        self._group = group
        self._children: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``work`` as a child of the scope."""
        task = self._group.create_task(work, name=name)
        self._children.add(task)
        task.add_done_callback(self._children.discard)
        return task

    def cancel(self) -> None:
        """Cancel every child still running (the scope awaits them as it closes)."""
        for task in self._children:
            task.cancel()


@asynccontextmanager
async def scope() -> AsyncIterator[Scope]:
    """A task group whose children are cancelled when the body ends, and awaited before
    the scope is left.

    Children are expected never to raise (see :func:`supervised`), so an error in the
    scope is the body's own: it is raised as itself, not inside an exception group.
    """
    try:
        async with asyncio.TaskGroup() as group:
            children = Scope(group)
            try:
                yield children
            finally:
                children.cancel()
    except BaseExceptionGroup as group_error:
        if len(group_error.exceptions) == 1:
            raise group_error.exceptions[0] from None
        raise


async def supervised(
    name: str,
    work: Callable[[], Awaitable[None]],
    log: Logger,
    fallback: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run ``work``; if it fails, say so at once and run ``fallback`` in its place.

    Never raises but for cancellation: a failure here must not end the scope's other
    children (a fallback that fails too is logged, and the child ends).
    """
    try:
        await work()
    except Exception as exc:
        log.warning("monitor failed", monitor=name, error=repr(exc), fallback=bool(fallback))
        if fallback is not None:
            await supervised(name, fallback, log)


class Cut:
    """What :meth:`Interrupt.cut` returns for a call the interruption ended or never began."""


CUT: Final = Cut()


class Interrupt:
    """A one-shot interruption, set by a plain callback; :attr:`since` is when, on ``clock``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._event = asyncio.Event()
        self._open: set[asyncio.Timeout] = set()
        self.since: float | None = None

    def set(self) -> bool:
        """Interrupt: every call under :meth:`cut` ends at its next await; True the first time."""
        if self.since is not None:
            return False
        self.since = self._clock.now()
        self._event.set()
        for timeout in self._open:
            timeout.reschedule(asyncio.get_running_loop().time())
        return True

    def is_set(self) -> bool:
        """True once interrupted."""
        return self.since is not None

    async def wait(self) -> None:
        """Return once interrupted."""
        await self._event.wait()

    async def cut(self, work: Coroutine[Any, Any, _T]) -> _T | Cut:
        """``work``'s result, or :data:`CUT` when the interruption came first (``work`` is
        then cancelled, or never started)."""
        if self.is_set():
            work.close()
            return CUT
        try:
            async with asyncio.timeout(None) as timeout:
                self._open.add(timeout)
                try:
                    return await work
                finally:
                    self._open.discard(timeout)
        except TimeoutError:
            if not timeout.expired():
                raise
            return CUT
