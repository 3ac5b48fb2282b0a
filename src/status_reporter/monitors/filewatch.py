"""Watching the result file: inotify events with polling as the safety net (docs/design.md
"Monitoring").

The watchers only say "look again": the engine re-reads the file itself, so a
missed or duplicated event can delay a decision by at most one poll interval but
never change it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from status_reporter.base.clock import Clock, ticks
from status_reporter.base.logs import Logger

# After an event that concerns the file, the next ones wait this long in the kernel's
# queue, which merges identical ones (a file appended to and closed thousands of times
# a second is one event): the cost does not follow the adapter's write rate.
EVENT_GAP_SECONDS: Final = 0.025


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
