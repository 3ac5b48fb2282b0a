"""Following the adapter's Pod: a watch, with polling as the fallback and safety net
(docs/design.md "Monitoring").

A watch whose connection dies silently (a NAT or load-balancer entry dropped) is
detected by TCP keepalive within twice the Pod polling interval, at no request
cost; a peer that stays connected but stops talking is detected by the read
timeout, since the API server sends a bookmark at least every minute. While the
watch is down the Pod is polled, and the watch is re-established with a backoff
capped at 5 s. Without ``watch`` permission the Pod is polled for good.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Final

from status_reporter.api.protocol import Api, ApiError, Operations, PodEvent, Unreachable
from status_reporter.api.retry import RetryPolicy, backoff
from status_reporter.api.transport import TcpKeepalive
from status_reporter.base.clock import Clock, ticks
from status_reporter.base.logs import Logger
from status_reporter.base.tasks import cancelled
from status_reporter.core.models import Pod

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


def keepalive_for(interval: int) -> TcpKeepalive:
    """TCP keepalive that declares a silent connection dead within ``2 × interval`` seconds.

    The first probe goes out after half the interval of silence; the rest of the
    budget is shared by up to four probes (more probes tolerate a lost one).
    """
    budget = 2 * interval
    idle = max(1, interval // 2)
    probe = max(1, (budget - idle) // 4)
    count = max(1, min(4, (budget - idle) // probe))
    return TcpKeepalive(idle=idle, interval=probe, count=count)


def watch_seconds(seconds_left: float) -> int:
    """The watch's ``timeoutSeconds``: until a little after the deadline, capped."""
    wanted = math.ceil(max(0.0, seconds_left)) + WATCH_MARGIN_SECONDS
    return min(WATCH_MAX_SECONDS, wanted)


class PodMonitor:
    """Reports every change of the Pod to ``on_pod``, and its disappearance to ``on_gone``."""

    def __init__(
        self,
        api: Api,
        ops: Operations,
        *,
        clock: Clock,
        log: Logger,
        interval: float,
        deadline: float,
        resource_version: str,
        on_pod: Callable[[Pod], None],
        on_gone: Callable[[], None],
    ) -> None:
        self._api = api
        self._ops = ops
        self._clock = clock
        self._log = log
        self._interval = interval
        self._deadline = deadline
        self._version = resource_version
        self._on_pod = on_pod
        self._on_gone = on_gone

    def _seen(self, pod: Pod) -> None:
        if pod.metadata.resource_version:
            self._version = pod.metadata.resource_version
        self._on_pod(pod)

    async def read_once(self, timeout: float = _READ_TIMEOUT) -> Pod | None:
        """One read of the Pod; None when it failed (logged), ``on_gone`` when it is deleted."""
        try:
            pod = await self._api.get_pod(timeout=timeout)
        except (ApiError, Unreachable) as exc:
            if isinstance(exc, ApiError) and exc.status == 404:
                self._on_gone()
            else:
                self._log.warning(
                    "cannot read the Pod", operation=self._ops.get_pod.describe(), error=str(exc)
                )
            return None
        self._seen(pod)
        return pod

    async def poll(self, *, read_now: bool = True) -> None:
        """Read the Pod now (unless ``read_now`` is False: it was just read) and every
        ``interval`` seconds, until cancelled."""
        if read_now:
            await self.read_once()
        async for _ in ticks(self._clock, self._interval):
            await self.read_once()

    async def watch(self) -> None:
        """Watch the Pod until cancelled, polling it whenever the watch is down.

        A watch that fails, or that the server ends within :data:`MIN_WATCH_SECONDS`
        of opening it, is a failed watch: the Pod is polled and the watch is tried again
        with a growing backoff, so that whatever the server does, watch requests stay
        below one per second on average. One warning per outage.
        """
        poller: asyncio.Task[None] | None = None
        failures = 0
        try:
            while True:
                opened = self._clock.now()
                ended_by_server = False
                try:
                    async with self._api.watch_pod(
                        self._version,
                        timeout_seconds=watch_seconds(self._deadline - opened),
                        read_timeout=self._silence_limit(opened),
                    ) as events:
                        await cancelled(poller)
                        poller = None
                        async for event in events:
                            if not self._handle(event):
                                return
                    ended_by_server = True
                    error = "the API server ended the watch at once"
                except ApiError as exc:
                    if exc.status in (401, 403):
                        await cancelled(poller)
                        poller = None
                        self._log.debug("cannot watch the Pod, polling it", error=str(exc))
                        await self.poll()
                        return
                    if exc.status == 410:
                        self._version = ""
                    error = str(exc)
                except Unreachable as exc:
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
                    poller = asyncio.create_task(self.poll())
                await self._clock.sleep_until(self._clock.now() + delay)
        finally:
            await cancelled(poller)

    def _silence_limit(self, now: float) -> float:
        """How long the watch may stay silent: until a bookmark is overdue, or just past
        the deadline (where the Pod is read anyway), whichever comes first."""
        return min(BOOKMARK_SILENCE_SECONDS, max(1.0, self._deadline - now + 1.0))

    def _handle(self, event: PodEvent) -> bool:
        """Apply one event; False when there is nothing more to watch."""
        if event.type == "ERROR":
            code = event.error.code if event.error is not None else 0
            message = event.error.message if event.error is not None else ""
            raise ApiError(code or 500, f"watch error {code}: {message}")
        if event.pod is None:
            return True
        if event.type == "BOOKMARK":
            self._version = event.pod.metadata.resource_version or self._version
            return True
        self._seen(event.pod)
        if event.type == "DELETED":
            self._on_gone()
            return False
        return True
