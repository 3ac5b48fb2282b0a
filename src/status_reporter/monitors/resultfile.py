"""The result file: inotify events with polling as the safety net, and when the file is
read (docs/design.md "Monitoring").

The watchers only say "look again": :class:`ResultFile` reads the file itself when the
decision loop asks, so a missed or duplicated event can delay a decision by at most one
poll interval but never change it. Reads caused by events are throttled, so the cost
does not follow an adapter that rewrites its file in a loop.

Neither does it follow other processes churning other names in the results directory:
the kernel filters the events (the directory is watched only for names created or moved
in, the file itself once it exists), the watcher wakes at most once per
:data:`EVENT_GAP_SECONDS`, and the events queued meanwhile are read in bulk and searched
for the file's name as bytes, never decoded one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from status_reporter.base.clock import Clock, ticks
from status_reporter.base.logs import Logger
from status_reporter.core.contract import ResultState, resolve_results_path
from status_reporter.core.record import Record

if TYPE_CHECKING:
    from asyncinotify import Inotify

# After a wake-up, the next events wait this long in the kernel's queue, which merges
# identical ones (a file appended to and closed thousands of times a second is one
# event): the cost follows neither the adapter's write rate nor anyone else's.
EVENT_GAP_SECONDS: Final = 0.025
# Re-reads caused by file events are at least this far apart, however often the file
# changes; while every read finds new invalid content (an adapter rewriting it in a
# loop), the gap doubles up to the maximum, so the cost does not follow the writes.
MIN_READ_INTERVAL: Final = 0.025
MAX_READ_INTERVAL: Final = 0.5
# Bytes read from an inotify descriptor at a time (about 2,000 events with short
# names), and reads at most per wake-up: more than a full queue (16,384 events by
# default, up to 272 bytes each). One read's bytes are kept at a time.
_READ_BYTES: Final = 64 * 1024
_MAX_READS: Final = 80
# inotify_event for IN_Q_OVERFLOW: wd -1, the mask, no cookie, no name.
_OVERFLOW: Final = struct.pack("=iIII", -1, 0x4000, 0, 0)


async def poll(clock: Clock, interval: float, notify: Callable[[], None]) -> None:
    """Call ``notify`` every ``interval`` seconds until cancelled."""
    async for _ in ticks(clock, interval):
        notify()


def _inotify() -> Inotify:
    """A new inotify instance whose descriptor never blocks a read.

    asyncinotify's ``InitFlags.NONBLOCK`` is ``O_CLOEXEC`` (4.4.4): the flag is set here.
    """
    from asyncinotify import Inotify  # noqa: PLC0415 - loaded with watch_file's

    inotify = Inotify()
    os.set_blocking(inotify.fd, False)
    return inotify


def _drain(fd: int, *needles: bytes) -> bool:
    """Read the events queued on the inotify descriptor ``fd``; whether one of them
    holds one of ``needles`` (without needles: whether there was any event)."""
    found = False
    with contextlib.suppress(BlockingIOError):
        for _ in range(_MAX_READS):
            chunk = os.read(fd, _READ_BYTES)
            if not chunk:
                break
            found = found or not needles or any(needle in chunk for needle in needles)
    return found


async def _readable(*fds: int) -> None:
    """Return once one of ``fds`` can be read."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    for fd in fds:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        for fd in fds:
            loop.remove_reader(fd)


def _identity(path: str) -> tuple[int, int] | None:
    """The device and inode at ``path`` (symlinks followed, as inotify follows them)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class _FileWatch:
    """The result file itself, watched by an inotify instance of its own, so that every
    event read from it concerns the file: none needs to be looked at."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._inotify: Inotify | None = None

    @property
    def fds(self) -> tuple[int, ...]:
        """The descriptor to wait on, if a file is watched."""
        return () if self._inotify is None else (self._inotify.fd,)

    def arm(self) -> None:
        """Watch the file at the path now: the name was created or moved in.

        Always a new instance, even for the same inode number (a deleted file's number
        is soon reused): the old one's watch goes with it, and asyncinotify's table of
        watches never grows.
        """
        from asyncinotify import Mask  # noqa: PLC0415 - loaded with watch_file's

        self.close()
        mask = Mask.CLOSE_WRITE | Mask.ATTRIB | Mask.DELETE_SELF | Mask.MOVE_SELF
        try:
            self._inotify = _inotify()
            self._inotify.add_watch(self._path, mask | Mask.DONT_FOLLOW)
        except OSError:
            # Not there (yet, or any more), or no inotify instance to be had: the
            # directory's events and polling still cover it.
            self.close()

    def changed(self) -> bool:
        """Whether an event about the file arrived since the last call."""
        return self._inotify is not None and _drain(self._inotify.fd)

    def close(self) -> None:
        """Stop watching the file."""
        if self._inotify is not None:
            self._inotify.close()
        self._inotify = None


async def watch_file(
    path: str, clock: Clock, retry_interval: float, notify: Callable[[], None], log: Logger
) -> None:
    """Call ``notify`` whenever the file at ``path`` may have changed, until cancelled.

    Watches the file's directory for the name being created or moved in, and the file
    itself once it exists. A directory that does not exist yet is waited for, checking
    every ``retry_interval`` seconds. Returns early, leaving the work to polling, when
    inotify is not available.
    """
    # Imported here, once monitoring starts: the first API request does not wait for it,
    # and MONITOR_MODE=poll never loads it.
    from asyncinotify import Mask  # noqa: PLC0415

    # Created or moved in: the file is new (written in place, by rename or by link). The
    # directory's own removal or move ends the watch; its IGNORED event comes unasked.
    directory_mask = Mask.CREATE | Mask.MOVED_TO | Mask.DELETE_SELF | Mask.MOVE_SELF
    directory = os.path.dirname(path)
    while True:
        while not os.path.isdir(directory):  # noqa: ASYNC240 - one stat, never blocks
            await clock.sleep_until(clock.now() + retry_interval)
        try:
            inotify = _inotify()
        except OSError as exc:
            log.warning("inotify unavailable, watching the result file by polling", error=str(exc))
            return
        # One instance per directory watched, so asyncinotify's table of watches (which
        # events are never decoded to clear) holds one.
        with inotify:
            try:
                inotify.add_watch(directory, directory_mask | Mask.ONLYDIR)
            except OSError as exc:
                log.warning("cannot watch the results directory, polling it", error=str(exc))
                return
            identity = _identity(directory)
            log.debug("watching the results directory", directory=directory)
            await _watch_directory(inotify.fd, identity, path, clock=clock, notify=notify)


async def _watch_directory(
    fd: int,
    identity: tuple[int, int] | None,
    path: str,
    *,
    clock: Clock,
    notify: Callable[[], None],
) -> None:
    """Follow one results directory (events on ``fd``) until it is removed or replaced."""
    directory, name = os.path.split(path)
    # An event's name is NUL-padded and follows its 32-bit length, whose last byte is 0:
    # an event for this name holds these bytes.
    named = b"\0" + os.fsencode(name) + b"\0"
    file = _FileWatch(path)
    try:
        # The file may have been written before the watches were in place.
        file.arm()
        notify()
        while True:
            await _readable(fd, *file.fds)
            changed = file.changed()
            if _drain(fd, named, _OVERFLOW):
                file.arm()
                notify()
            elif changed:
                notify()
            if _identity(directory) != identity:
                notify()
                return
            await clock.sleep_until(clock.now() + EVENT_GAP_SECONDS)
    finally:
        file.close()


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
