"""The Pod monitor: the only reader of the adapter's Pod, the only owner of the order of
its states, and the source of what the rules learn from it (docs/design.md "Monitoring").

Every read goes through it: start-up's, the watch, the polls, the read before the
deadline and the reads after a stop. Each Pod state passes once through
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
import math
from collections.abc import Callable
from typing import Final

from status_reporter.api.protocol import (
    Api,
    ApiError,
    Operation,
    PodEvent,
    Unreachable,
    WatchSilent,
)
from status_reporter.api.retry import RetryPolicy, backoff, call
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
        # Whether the API server has sent a bookmark (does it send them at all?), and how
        # many silent watches were renewed while it had not.
        self._bookmarks = False
        self._silent_renewals = 0

    @property
    def following(self) -> bool:
        """True once the adapter container is known (its state is then reported)."""
        return self._adapter is not None

    async def read_at_start(self, deadline: float) -> Pod:
        """Start-up's read, retried until ``deadline``; its facts wait for :meth:`follow`.

        Raises:
            KubeError: the Pod could not be read (a 404 when it does not exist).
        """
        return await call(
            self._get_pod,
            lambda timeout: self._api.get_pod(timeout=timeout),
            clock=self._clock,
            deadline=deadline,
            log=self._log,
        )

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
                    async with self._api.watch_pod(
                        "" if self._expired else self._version,
                        timeout_seconds=watch_seconds(deadline - opened),
                        read_timeout=self._silence_limit(deadline, opened),
                    ) as events:
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

    def _renewal_without_bookmarks(self, exc: Unreachable, opened: float) -> bool:
        """True for a watch gone silent (that lived) on a server that has sent no bookmark
        (it sends one only when the resourceVersion moves on, never with its watch cache
        off): not a broken watch, one to renew (said once)."""
        lived = self._clock.now() - opened >= MIN_WATCH_SECONDS
        if not isinstance(exc, WatchSilent) or self._bookmarks or not lived:
            return False
        if not self._silent_renewals:
            self._log.info(
                "no watch bookmarks from the API server so far (a quiet cluster, or its "
                "watch cache off): the Pod watch is renewed after each silence of this length",
                silence_seconds=BOOKMARK_SILENCE_SECONDS,
                error=str(exc),
            )
        self._silent_renewals += 1
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
            # Not a state of the Pod: only where the next watch may resume.
            self._bookmarks = True
            version = event.pod.metadata.resource_version
            if version and not is_older(version, self._version):
                self._version, self._expired = version, False
            return True
        self._take(event.pod)
        if event.type == "DELETED":
            self._on_gone()
            return False
        return True
