"""The Pod monitor: the only reader of the adapter's Pod, the only owner of the order of
its states, and the source of what the rules learn from it (docs/design.md "Monitoring").

Every read goes through it: start-up's, the watch, the polls, the read before the
deadline and the reads after a stop. When the Pod will be watched, start-up's read is
the watch's first event, and that watch goes on as the watch. Each Pod state passes once through
:func:`~status_reporter.core.pods.pod_facts`: one older than the newest seen is dropped,
any other becomes :class:`~status_reporter.core.pods.PodFacts` for ``on_facts``. A Pod
that is gone (404, ``DELETED``) is reported to ``on_gone``.

A watch whose connection dies silently (a NAT or load-balancer entry dropped) is
detected by TCP keepalive within twice the Pod polling interval, at no request
cost; a peer that stays connected but stops talking is detected by the read
timeout, since the API server sends a bookmark at least every minute. While the
watch is down the Pod is polled, and the watch is re-established with a backoff
capped at 5 s. Without ``watch`` permission the Pod is polled for good.

An API server that sends no bookmarks at all (its watch cache off) leaves every
watch silent until the read timeout: while no bookmark has been seen, a silent
watch is renewed at once from the last state seen (nothing is missed), quietly and
without polling: one watch request per :data:`BOOKMARK_SILENCE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import msgspec

from status_reporter.api.protocol import (
    INITIAL_EVENTS_END,
    Api,
    ApiError,
    Operation,
    PodEvent,
    Unreachable,
    WatchSilent,
)
from status_reporter.api.retry import KubeError, RetryPolicy, backoff, call
from status_reporter.base.clock import Clock, ticks
from status_reporter.base.logs import Logger
from status_reporter.base.tasks import scope
from status_reporter.core.clocks import skew
from status_reporter.core.models import Pod
from status_reporter.core.pods import PodFacts, is_older, pod_facts

# The API server sends a watch bookmark about every minute: a longer silence means
# the connection is dead even though TCP still answers.
BOOKMARK_SILENCE_SECONDS: Final = 75.0
# A watch lasts until shortly after the deadline, within what any API server accepts.
WATCH_MARGIN_SECONDS: Final = 30
WATCH_MAX_SECONDS: Final = 3600
_REWATCH: Final = RetryPolicy(initial=0.5, maximum=5.0)
# A watch that ends sooner than this after it opened has failed, however it ended.
MIN_WATCH_SECONDS: Final = 1.0
_READ_TIMEOUT: Final = 5.0
# How long start-up waits for a watch to tell the Pod's state before a GET asks.
FIRST_STATE_SECONDS: Final = 2.0


def watch_seconds(seconds_left: float) -> int:
    """The watch's ``timeoutSeconds``: until a little after the deadline, capped."""
    wanted = math.ceil(max(0.0, seconds_left)) + WATCH_MARGIN_SECONDS
    return min(WATCH_MAX_SECONDS, wanted)


class PodMonitor:
    """Reads the Pod; reports the facts of each newer state to ``on_facts``, and the
    Pod's disappearance to ``on_gone``. ``get_pod`` names the read in messages."""

    def __init__(
        self,
        api: Api,
        get_pod: Operation,
        *,
        clock: Clock,
        log: Logger,
        interval: float,
        on_facts: Callable[[PodFacts], None],
        on_gone: Callable[[], None],
    ) -> None:
        self._api = api
        self._get_pod = get_pod
        self._clock = clock
        self._log = log
        self._interval = interval
        self._on_facts = on_facts
        self._on_gone = on_gone
        # The newest state seen (its resourceVersion): the watch resumes from it, and
        # an older state never replaces it.
        self._version = ""
        # After a 410 Gone the next watch starts from the current state instead.
        self._expired = False
        self._adapter: str | None = None
        self._bookmarks = _Bookmarks()
        # The watch start-up opened (it gave the Pod's state), until :meth:`watch` goes on.
        self._open: _OpenWatch | None = None

    @property
    def following(self) -> bool:
        """True once the adapter container is known (its state is then reported)."""
        return self._adapter is not None

    async def read_at_start(self, deadline: float, *, watch: bool) -> tuple[Pod, bool]:
        """Start-up's read of the Pod, retried until ``deadline``; its facts wait for
        :meth:`follow`. The Pod, and whether it may be watched (False after a 401/403).

        When ``watch``, its state is taken from a watch that starts with it (one request
        instead of a GET and a watch): that watch stays open, and :meth:`watch` goes on
        with it. A server that refuses ``sendInitialEvents`` gets a plain watch (its first
        event is the Pod's current state); a watch that fails, or tells nothing within
        :data:`FIRST_STATE_SECONDS`, is followed by a GET (a missing Pod gives no event).

        Raises:
            KubeError: the Pod could not be read (a 404 when it does not exist).
        """
        await self.close()
        if watch:
            try:
                pod = await self._watch_at_start(deadline)
            except ApiError as exc:
                if exc.status not in (401, 403):
                    raise
                self._log.debug("cannot watch the Pod, polling it", error=str(exc))
                watch = False
            else:
                if pod is not None:
                    return pod, True
        pod = await call(
            self._get_pod,
            lambda timeout: self._api.get_pod(timeout=timeout),
            clock=self._clock,
            deadline=deadline,
            log=self._log,
        )
        return pod, watch

    async def _watch_at_start(self, deadline: float) -> Pod | None:
        """The Pod's state from a watch kept for :meth:`watch`; None when a GET must tell
        (the watch is kept if it is still open).

        Raises:
            ApiError: 401 or 403: the watch is refused.
            KubeError: 404: the watch's initial events tell that the Pod does not exist.
        """
        for initial_events in (True, False):
            opened = self._clock.now()
            stack = contextlib.AsyncExitStack()
            try:
                events = await stack.enter_async_context(
                    self._api.watch_pod(
                        "",
                        timeout_seconds=watch_seconds(deadline - opened),
                        read_timeout=self._silence_limit(deadline, opened),
                        initial_events=initial_events,
                    )
                )
            except ApiError as exc:
                await stack.aclose()
                if exc.status in (401, 403):
                    raise
                if initial_events and exc.status in (400, 422):
                    # sendInitialEvents unknown to this server: a plain watch.
                    self._log.debug("the API server refuses sendInitialEvents", error=str(exc))
                    continue
                return None
            except Unreachable:
                await stack.aclose()
                return None
            self._open = _OpenWatch(stack, events, opened)
            return await self._first_state(self._open, opened + FIRST_STATE_SECONDS)
        return None

    async def _first_state(self, opened: _OpenWatch, until: float) -> Pod | None:
        """The Pod's state from the watch's first events, read until ``until``."""
        while True:
            try:
                event = await opened.next_event(self._clock, until)
            except (StopAsyncIteration, ApiError, Unreachable):
                await self.close()
                return None
            if event is None:
                return None  # nothing yet: the read stays pending for the watch
            if event.type in ("ADDED", "MODIFIED") and event.pod is not None:
                return event.pod
            if event.type == "BOOKMARK" and event.pod is not None:
                if event.pod.metadata.annotations.get(INITIAL_EVENTS_END) == "true":
                    await self.close()
                    raise KubeError(f"not found: cannot {self._get_pod.describe()}", 404)
                continue
            # An error, a deletion, or the end of the watch: a GET tells.
            await self.close()
            return None

    async def close(self) -> None:
        """Close the watch opened at start-up, when :meth:`watch` did not take it over."""
        opened, self._open = self._open, None
        if opened is not None:
            await opened.close()

    def follow(self, adapter: str, pod: Pod) -> None:
        """Report ``adapter``'s state from now on, starting with its state in ``pod``
        (the Pod just read)."""
        self._adapter = adapter
        self._take(pod)

    async def read(self, timeout: float = _READ_TIMEOUT) -> Pod | None:
        """One read of the Pod, its facts reported; None when it failed (logged) or the
        Pod is gone (``on_gone``)."""
        try:
            pod = await self._api.get_pod(timeout=timeout)
        except (ApiError, Unreachable) as exc:
            if isinstance(exc, ApiError) and exc.status == 404:
                self._on_gone()
            else:
                self._log.warning(
                    "cannot read the Pod", operation=self._get_pod.describe(), error=str(exc)
                )
            return None
        self._take(pod)
        return pod

    def _take(self, pod: Pod) -> None:
        now, wall = self._clock.now(), self._clock.wall()
        facts = pod_facts(
            pod,
            newest=self._version,
            adapter=self._adapter,
            now=now,
            wall=wall,
            server_skew=skew(self._api.server_time(), now, wall),
        )
        if facts is None:
            return
        self._version, self._expired = facts.version, False
        self._on_facts(facts)

    async def poll(self, *, read_now: bool = True) -> None:
        """Read the Pod now (unless ``read_now`` is False: it was just read) and every
        ``interval`` seconds, until cancelled."""
        if read_now:
            await self.read()
        async for _ in ticks(self._clock, self._interval):
            await self.read()

    async def watch(self, deadline: float) -> None:
        """Watch the Pod until cancelled, polling it whenever the watch is down.

        A watch that fails, or that the server ends within :data:`MIN_WATCH_SECONDS`
        of opening it, is a failed watch: the Pod is polled and the watch is tried again
        with a growing backoff, so that whatever the server does, watch requests stay
        below one per second on average. One warning per outage.
        """
        failures = 0
        async with scope() as children:
            poller: asyncio.Task[None] | None = None
            while True:
                opened = self._clock.now()
                ended_by_server = False
                try:
                    async with self._stream(deadline, opened) as (events, opened):
                        if poller is not None:
                            poller.cancel()
                            poller = None
                        async for event in events:
                            if not self._handle(event):
                                return
                    ended_by_server = True
                    error = "the API server ended the watch at once"
                except ApiError as exc:
                    if exc.status in (401, 403):
                        children.cancel()
                        self._log.debug("cannot watch the Pod, polling it", error=str(exc))
                        await self.poll()
                        return
                    self._expired = self._expired or exc.status == 410
                    error = str(exc)
                except Unreachable as exc:
                    if self._renewal_without_bookmarks(exc, opened):
                        failures = 0
                        continue
                    error = str(exc)
                if self._clock.now() - opened >= MIN_WATCH_SECONDS:
                    # It lived: a watch the server ended on time is renewed at once, and
                    # the backoff of one that broke after a while starts afresh.
                    failures = 0
                    if ended_by_server:
                        continue
                failures += 1
                delay = backoff(_REWATCH, failures)
                if failures == 1:
                    self._log.warning(
                        "Pod watch broke; polling the Pod until it is back",
                        error=error,
                        retry_in=round(delay, 3),
                    )
                if poller is None:
                    poller = children.spawn(self.poll(), "Pod poll while the watch is down")
                await self._clock.sleep_until(self._clock.now() + delay)

    @contextlib.asynccontextmanager
    async def _stream(
        self, deadline: float, now: float
    ) -> AsyncIterator[tuple[AsyncIterator[PodEvent], float]]:
        """The watch's events and when it opened: start-up's watch first, if it is open."""
        opened, self._open = self._open, None
        if opened is not None:
            async with opened.stack:
                yield opened.rest(), opened.opened
            return
        async with self._api.watch_pod(
            "" if self._expired else self._version,
            timeout_seconds=watch_seconds(deadline - now),
            read_timeout=self._silence_limit(deadline, now),
        ) as events:
            yield events, now

    def _renewal_without_bookmarks(self, exc: Unreachable, opened: float) -> bool:
        """True for a watch gone silent (that lived) on a server that has sent no bookmark
        (it sends one only when the resourceVersion moves on, never with its watch cache
        off): not a broken watch, one to renew (said once)."""
        lived = self._clock.now() - opened >= MIN_WATCH_SECONDS
        if not isinstance(exc, WatchSilent) or self._bookmarks.seen or not lived:
            return False
        if not self._bookmarks.silent_renewals:
            self._log.info(
                "no watch bookmarks from the API server so far (a quiet cluster, or its "
                "watch cache off): the Pod watch is renewed after each silence of this length",
                silence_seconds=BOOKMARK_SILENCE_SECONDS,
                error=str(exc),
            )
        self._bookmarks.silent_renewals += 1
        return True

    @staticmethod
    def _silence_limit(deadline: float, now: float) -> float:
        """How long the watch may stay silent: until a bookmark is overdue, or just past
        the deadline (where the Pod is read anyway), whichever comes first."""
        return min(BOOKMARK_SILENCE_SECONDS, max(1.0, deadline - now + 1.0))

    def _handle(self, event: PodEvent) -> bool:
        """Apply one event; False when there is nothing more to watch."""
        if event.type == "ERROR":
            code = event.error.code if event.error is not None else 0
            message = event.error.message if event.error is not None else ""
            raise ApiError(code or 500, f"watch error {code}: {message}")
        if event.pod is None:
            return True
        if event.type == "BOOKMARK":
            # Not a state of the Pod: only where the next watch may resume. The bookmark
            # ending the initial events says nothing of the periodic ones.
            if event.pod.metadata.annotations.get(INITIAL_EVENTS_END) != "true":
                self._bookmarks.seen = True
            version = event.pod.metadata.resource_version
            if version and not is_older(version, self._version):
                self._version, self._expired = version, False
            return True
        self._take(event.pod)
        if event.type == "DELETED":
            self._on_gone()
            return False
        return True


class _Bookmarks(msgspec.Struct):
    """Whether the API server has sent a bookmark (does it send them at all?), and how
    many silent watches were renewed while it had not."""

    seen: bool = False
    silent_renewals: int = 0


class _OpenWatch:
    """A watch opened at start-up: its events, and the read of the next one when it was
    still pending as start-up moved on (nothing it brings is lost)."""

    def __init__(
        self, stack: contextlib.AsyncExitStack, events: AsyncIterator[PodEvent], opened: float
    ) -> None:
        self.stack = stack
        self.opened = opened
        self._events = events
        self._next: asyncio.Future[PodEvent] | None = None

    async def next_event(self, clock: Clock, until: float) -> PodEvent | None:
        """The next event, None when none came by ``until`` (the read goes on).

        Raises:
            StopAsyncIteration: the watch ended.
        """
        if self._next is None:
            self._next = asyncio.ensure_future(anext(self._events))
        timer = asyncio.ensure_future(clock.sleep_until(until))
        either: set[asyncio.Future[Any]] = {self._next, timer}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if not self._next.done():
            return None
        done, self._next = self._next, None
        return done.result()

    async def rest(self) -> AsyncIterator[PodEvent]:
        """The events not read yet."""
        if self._next is not None:
            pending, self._next = self._next, None
            try:
                yield await pending
            except StopAsyncIteration:
                return
        async for event in self._events:
            yield event

    async def close(self) -> None:
        """End the watch (and a read still pending)."""
        if self._next is not None:
            self._next.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._next
        await self.stack.aclose()
