"""The result file: inotify events with polling as the safety net, and when the file is
read (docs/design.md "Monitoring").

The watchers only say "look again": :class:`ResultFile` reads the file itself when the
decision loop asks, so a missed or duplicated event can delay a decision by at most one
poll interval but never change it. Reads caused by events are throttled, so the cost
does not follow an adapter that rewrites its file in a loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from status_reporter.base.clock import Clock, ticks
from status_reporter.base.logs import Logger
from status_reporter.core.contract import ResultState, resolve_results_path
from status_reporter.core.record import Record

# After an event that concerns the file, the next ones wait this long in the kernel's
# queue, which merges identical ones (a file appended to and closed thousands of times
# a second is one event): the cost does not follow the adapter's write rate.
EVENT_GAP_SECONDS: Final = 0.025
# Re-reads caused by file events are at least this far apart, however often the file
# changes; while every read finds new invalid content (an adapter rewriting it in a
# loop), the gap doubles up to the maximum, so the cost does not follow the writes.
MIN_READ_INTERVAL: Final = 0.025
MAX_READ_INTERVAL: Final = 0.5


async def poll(clock: Clock, interval: float, notify: Callable[[], None]) -> None:
    """Call ``notify`` every ``interval`` seconds until cancelled."""
    async for _ in ticks(clock, interval):
        notify()


async def watch_file(
    path: str, clock: Clock, retry_interval: float, notify: Callable[[], None], log: Logger
) -> None:
    """Call ``notify`` whenever the file at ``path`` may have changed, until cancelled.

    Watches the file's directory (the file may not exist yet, or be replaced by a
    rename). A directory that does not exist yet is waited for, checking every
    ``retry_interval`` seconds. Returns early, leaving the work to polling, when
    inotify is not available.
    """
    # Imported here, once monitoring starts: the first API request does not wait for it,
    # and MONITOR_MODE=poll never loads it.
    from asyncinotify import Inotify, Mask  # noqa: PLC0415

    # Close-write and moved-to are the "file is complete" events; the others catch a
    # file created by link, replaced or removed, and the directory itself going away.
    file_events = Mask.CLOSE_WRITE | Mask.MOVED_TO | Mask.CREATE | Mask.DELETE | Mask.MOVED_FROM
    directory_gone = Mask.DELETE_SELF | Mask.MOVE_SELF | Mask.IGNORED | Mask.UNMOUNT
    directory, name = os.path.split(path)
    try:
        inotify = Inotify()
    except OSError as exc:
        log.warning("inotify unavailable, watching the result file by polling", error=str(exc))
        return
    with inotify:
        while True:
            while not os.path.isdir(directory):  # noqa: ASYNC240 - one stat, never blocks
                await clock.sleep_until(clock.now() + retry_interval)
            try:
                inotify.add_watch(directory, file_events | Mask.ONLYDIR | directory_gone)
            except OSError as exc:
                log.warning("cannot watch the results directory, polling it", error=str(exc))
                return
            log.debug("watching the results directory", directory=directory)
            # The file may have been written before the watch was in place.
            notify()
            async for event in inotify:
                if event.mask & directory_gone:
                    notify()
                    break
                # asyncinotify gives the name as a pathlib.Path, None for the directory.
                if event.mask & Mask.Q_OVERFLOW or os.fspath(event.name or "") == name:
                    notify()
                    await clock.sleep_until(clock.now() + EVENT_GAP_SECONDS)


class ResultFile:
    """When the result file is read: at once after a poll tick, a termination, a stop or
    a recheck (:meth:`look_again`); at most every :data:`MIN_READ_INTERVAL` after file
    events, however fast an adapter rewrites it. ``wake`` wakes the decision loop.

    The directories of ``path`` that exist when it is made are resolved then, once, and
    logged; ``read`` then follows no symlink on the way (README "The adapter contract")."""

    def __init__(
        self,
        path: str,
        *,
        interval: float,
        clock: Clock,
        log: Logger,
        read: Callable[[str], ResultState],
        wake: Callable[[], None],
    ) -> None:
        self._path = resolve_results_path(path)
        log.info("result file path resolved", results_path=path, resolved_path=self._path)
        self._interval = interval
        self._clock = clock
        self._log = log
        self._read = read
        self._wake = wake
        self._read_now = True
        self._changed = False
        self._last_read = float("-inf")
        self._gap = MIN_READ_INTERVAL

    def look_again(self) -> None:
        """Read the file at the next :meth:`refresh`, whatever the throttle says."""
        self._read_now = True

    def _event(self) -> None:
        # Only the first event wakes the loop: it then waits for the next read anyway.
        if not self._changed:
            self._changed = True
            self._wake()

    def _tick(self) -> None:
        self._read_now = True
        self._wake()

    async def poll(self) -> None:
        """Look again every poll interval, until cancelled."""
        await poll(self._clock, self._interval, self._tick)

    async def watch(self) -> None:
        """Look again on every inotify event for the file, until cancelled."""
        await watch_file(self._path, self._clock, self._interval, self._event, self._log)

    def refresh(self, record: Record) -> float | None:
        """Read the file into ``record`` if it may have changed; the time of a postponed
        read, if any."""
        now = self._clock.now()
        if not self._read_now:
            if not self._changed:
                return None
            next_read = self._last_read + self._gap
            if now < next_read:
                return next_read
        self._read_now = self._changed = False
        self._last_read = now
        state = self._read(self._path)
        if record.record_result(state, now):
            self._log.info("result file is not valid yet", error=getattr(state, "error", ""))
            self._gap = min(MAX_READ_INTERVAL, self._gap * 2)
        else:
            self._gap = MIN_READ_INTERVAL
        return None
