"""The reporter's engine: start, watch, decide, write (README "Decision table" to "Exit codes
and lifecycle").

One run is three phases. Start-up, which a stop cuts short. Watching, in one scope: the
monitors report facts (result-file changes, the Pod's facts), the engine records them
and wakes the decision loop, which feeds :func:`decision.decide` a snapshot of the
:class:`Record` until a verdict comes; a stop is one more fact, after which the Pod is
read often until the decision is made. Then the outcome: the verdict written to the
Job, the last word, the Event. A stop always wins over waiting and retries: the
reporter makes one last bounded attempt and exits within
:data:`~status_reporter.shell.outcome.STOP_EXIT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Final

from status_reporter.api.protocol import Api, Operations
from status_reporter.api.retry import KubeError
from status_reporter.base.clock import Clock
from status_reporter.base.logs import Logger, RawJson
from status_reporter.base.tasks import Cut, Interrupt, Scope, scope, supervised
from status_reporter.core.config import Config, ConfigError, MonitorMode
from status_reporter.core.contract import ResultState, ResultValid, read_result, render_details
from status_reporter.core.decision import Rule, Stop, Verdict, decide, result_verdict
from status_reporter.core.jobs import effective_wait
from status_reporter.core.models import Job
from status_reporter.core.pods import PodFacts
from status_reporter.core.record import Record
from status_reporter.monitors.pod import PodMonitor
from status_reporter.monitors.resultfile import ResultFile
from status_reporter.shell.outcome import ExitCode, Outcome, exit_by
from status_reporter.shell.startup import Startup, StartupFacts

# Reads of the Pod while a stop waits for the adapter's terminated state.
_STOP_READ_INTERVAL: Final = 0.5
_STOP_READ_TIMEOUT: Final = 1.0
# The last read of the Pod before row 7 (a crash since the last poll is the crash).
_DEADLINE_READ_SECONDS: Final = 5.0

_Monitor = tuple[str, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]] | None]
# Start-up running beside the file monitors: its facts, or where a stop cut it.
_Starting = asyncio.Future[StartupFacts | Cut]


class Reporter:
    """One run of the sidecar for one Job."""

    def __init__(
        self,
        config: Config,
        api: Api,
        clock: Clock,
        log: Logger,
        read: Callable[[str], ResultState] = read_result,
    ) -> None:
        self._config = config
        self._api = api
        self._clock = clock
        self._log = log
        self._stop = Interrupt(clock)
        # Set by every fact that may change the decision: the decision loop waits on it.
        self._wake = asyncio.Event()
        self._record = Record(
            deadline=clock.now() + config.max_wait_time_seconds,
            max_wait_seconds=config.max_wait_time_seconds,
            settle_seconds=config.poll_interval_seconds,
        )
        self._file = ResultFile(
            config.results_path,
            interval=config.poll_interval_seconds,
            clock=clock,
            log=log,
            read=read,
            wake=self._wake.set,
        )
        self._pods = PodMonitor(
            api,
            Operations.of(config.job_name, config.pod_name, config.job_namespace).get_pod,
            clock=clock,
            log=log,
            interval=config.container_status_interval_seconds,
            on_facts=self._on_pod,
            on_gone=self._on_pod_gone,
        )
        self._startup = Startup(config, api, self._pods, clock=clock, log=log)
        self._outcome = Outcome(config, api, clock=clock, log=log, stop=self._stop)
        self._log_details = functools.partial(_log_details, self._record, log)

    # --- stopping ---------------------------------------------------------------------

    def stop(self) -> None:
        """A stop signal (SIGTERM / SIGINT): decide with what can still be learned, and exit."""
        self._begin_stop(Stop(at=self._clock.now(), wall=self._clock.wall()))

    def _begin_stop(self, stop: Stop) -> None:
        self._record.record_stop(stop)
        self._stop.set()
        self._file.look_again()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """True once a stop arrived."""
        return self._stop.is_set()

    def final_report(self) -> int:
        """For a second stop signal: record what is known now, and the exit code to use."""
        return self._outcome.final_report()

    def report_failure(self, error: str) -> None:
        """After an unexpected error: leave the decided condition (or the error) behind."""
        self._outcome.leave_last_word(error=error)

    # --- the run ----------------------------------------------------------------------

    async def run(self) -> ExitCode:
        """Run the sidecar until the condition is written (and, as a native sidecar, stopped).

        The result file is watched from the start, whatever the API server does: start-up
        (which needs it) runs meanwhile, and a valid result decides without waiting for it.
        """
        starting = asyncio.ensure_future(self._stop.cut(self._startup.run(self._record.deadline)))
        # Whatever ends start-up (done, failed, cut by a stop) is one more fact.
        starting.add_done_callback(lambda _: self._wake.set())
        try:
            return await self._run(starting)
        finally:
            await _end_start_up(starting, self._pods)

    async def _run(self, starting: _Starting) -> ExitCode:
        facts: StartupFacts | None = None
        try:
            async with scope() as children:
                for name, monitor in _file_monitors(self._config, self._file):
                    children.spawn(supervised(name, monitor, self._log), name)
                early = await self._until_started(starting, children)
                if early is None:
                    started = starting.result()
                    facts = None if isinstance(started, Cut) else started
                    verdict = await self._watch(children, facts)
        except ConfigError as exc:
            self._log.error(str(exc))
            await self._outcome.record_config_error(str(exc), self._startup.writer)
            return ExitCode.CONFIG_INVALID
        except KubeError as exc:
            self._log.error(str(exc), status=exc.status)
            self._outcome.leave_last_word(error=str(exc))
            return ExitCode.WRITE_FAILED
        if early is not None:
            return await self._outcome.conclude_early(
                early, self._startup, starting, self._read_pod_after_stop, self._log_details
            )
        return await self._outcome.conclude(verdict, self._startup, facts, self._log_details)

    async def _until_started(self, starting: _Starting, children: Scope) -> Verdict | None:
        """Wait for start-up while watching the result file: the verdict of a valid result
        that came first, or None once start-up has ended (its result is then ``starting``'s)."""
        while not starting.done():
            self._wake.clear()
            read_at = self._file.refresh(self._record)
            result = self._record.result
            if isinstance(result, ResultValid):
                return result_verdict(result)
            if read_at is None:
                await self._wake.wait()
                continue
            alarm = children.spawn(self._recheck_at(read_at), "recheck")
            try:
                await self._wake.wait()
            finally:
                alarm.cancel()
        return None

    def _begin(self, facts: StartupFacts) -> None:
        """Take what start-up learned: the Job to write to, its deadline, the adapter."""
        config = self._config
        self._startup.plan_write(facts)
        _clamp_to_job(
            self._record, self._config, facts.job, _server_now(self._api, self._clock), self._log
        )
        self._pods.follow(facts.adapter, facts.pod)
        self._log.info(
            "monitoring adapter",
            adapter=facts.adapter,
            results_path=config.results_path,
            native_sidecar=facts.native_sidecar,
            monitor_mode=str(config.monitor_mode),
            pod_updates="watch" if facts.watch_pods else "poll",
        )

    # --- facts ------------------------------------------------------------------------

    def _on_pod(self, facts: PodFacts) -> None:
        if facts.deletion is not None:
            self._begin_stop(facts.deletion)
        if not self._pods.following:
            return
        state = facts.adapter
        if self._record.record_adapter(state):
            assert state is not None
            assert state.terminated is not None
            # Read the file once more: it may have been completed just before the exit.
            self._file.look_again()
            self._log.info(
                "adapter terminated",
                exit_code=state.terminated.exit_code,
                reason=state.terminated.reason,
            )
        self._wake.set()

    def _on_pod_gone(self) -> None:
        if not self._record.pod_gone:
            self._log.info("the Pod was deleted")
        stop = self._record.stop or Stop(at=self._clock.now(), wall=self._clock.wall())
        self._record.record_pod_gone(stop)
        self._begin_stop(stop)

    # --- watching and deciding ----------------------------------------------------------

    async def _watch(self, children: Scope, facts: StartupFacts | None) -> Verdict:
        """After start-up: follow the Pod too, and decide (``facts`` is None when a stop
        cut start-up short)."""
        if facts is not None:
            self._begin(facts)
        else:
            await self._read_pod_after_stop()
        if not self._stop.is_set():
            # A result (or an ended adapter) already there needs no Pod monitor.
            self._file.refresh(self._record)
            outcome = decide(self._record.snapshot(self._clock.now()))
            if isinstance(outcome, Verdict) and outcome.rule is not Rule.TIMEOUT:
                return outcome
        for name, monitor, fallback in _pod_monitors(self._pods, facts, self._record.deadline):
            children.spawn(supervised(name, monitor, self._log, fallback), name)
        return await self._decide(children)

    async def _decide(self, children: Scope) -> Verdict:
        stop_reads: asyncio.Task[None] | None = None
        final_read = False
        while True:
            self._wake.clear()
            if self._stop.is_set() and stop_reads is None:
                reads = supervised("Pod reads after a stop", self._read_while_stopping, self._log)
                stop_reads = children.spawn(reads, "Pod reads after a stop")
            read_at = self._file.refresh(self._record)
            outcome = decide(self._record.snapshot(self._clock.now()))
            if isinstance(outcome, Verdict) and outcome.rule is Rule.TIMEOUT and not final_read:
                # A crash since the last poll must be reported as the crash.
                final_read = True
                await self._read_pod_at_deadline()
                self._file.look_again()
                continue
            if isinstance(outcome, Verdict):
                return outcome
            recheck = outcome.recheck_at if read_at is None else min(outcome.recheck_at, read_at)
            alarm = children.spawn(self._recheck_at(recheck), "recheck")
            try:
                await self._wake.wait()
            finally:
                alarm.cancel()

    async def _recheck_at(self, when: float) -> None:
        await self._clock.sleep_until(when)
        self._file.look_again()
        self._wake.set()

    async def _read_pod(self, timeout: float) -> None:
        """One read of the Pod; when start-up was cut short, it may teach the adapter."""
        pod = await self._pods.read(timeout)
        if pod is not None and not self._pods.following:
            adapter = self._startup.learn_after_stop(pod)
            if adapter is not None:
                self._pods.follow(adapter, pod)

    async def _read_pod_after_stop(self) -> None:
        """A stop cut start-up short: one read of the Pod, bounded by the stop's exit."""
        now = self._clock.now()
        await self._read_pod(max(0.2, exit_by(self._stop, now + _STOP_READ_TIMEOUT) - now))

    async def _read_pod_at_deadline(self) -> None:
        if not self._pods.following:
            return
        now = self._clock.now()
        limit = exit_by(self._stop, now + _DEADLINE_READ_SECONDS)
        await self._pods.read(max(0.2, limit - now))

    async def _read_while_stopping(self) -> None:
        """After a stop, read the Pod often until the decision is made (bounded by the window)."""
        while not self._record.pod_gone:
            await self._read_pod(_STOP_READ_TIMEOUT)
            await self._clock.sleep_until(self._clock.now() + _STOP_READ_INTERVAL)


async def _end_start_up(starting: _Starting, pods: PodMonitor) -> None:
    """Cancel start-up if it still runs, and close its Pod watch if no monitor went on
    with it."""
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await starting
    await pods.close()


def _file_monitors(
    config: Config, file: ResultFile
) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    """The result file's monitors: polling, and inotify events in auto mode."""
    monitors: list[tuple[str, Callable[[], Awaitable[None]]]] = [("file poll", file.poll)]
    if config.monitor_mode is MonitorMode.AUTO:
        monitors.append(("file events", file.watch))
    return monitors


def _pod_monitors(pods: PodMonitor, facts: StartupFacts | None, deadline: float) -> list[_Monitor]:
    """The Pod's monitor after start-up (none when a stop cut it short): its watch with
    polling as the fallback, or polling alone."""
    if facts is not None and facts.watch_pods:
        return [("Pod watch", lambda: pods.watch(deadline), pods.poll)]
    if facts is not None:
        # Start-up has just read the Pod: the first poll is one interval away.
        return [("Pod poll", lambda: pods.poll(read_now=False), None)]
    return []


def _clamp_to_job(
    record: Record, config: Config, job: Job, now: tuple[float, float], log: Logger
) -> None:
    """Let the Job's own deadline shorten the wait, so row 7 lands before it. ``now`` is
    (monotonic, the API server's clock): the Job's times are the server's, and what is
    left of them is counted on the monotonic clock."""
    monotonic, server = now
    wait = effective_wait(config.max_wait_time_seconds, job, server)
    if record.shorten_wait(monotonic + wait, wait):
        log.warning(
            "the Job's activeDeadlineSeconds ends first: waiting less than "
            "MAX_WAIT_TIME_SECONDS, so that AdapterTimeout is recorded before it",
            max_wait_time_seconds=config.max_wait_time_seconds,
            active_deadline_seconds=job.spec.active_deadline_seconds,
            wait_seconds=wait,
        )


def _server_now(api: Api, clock: Clock) -> tuple[float, float]:
    """Now on the monotonic clock and on the API server's (the node's when unknown)."""
    now, server = clock.now(), api.server_time()
    return now, clock.wall() if server is None else server.now(now)


def _log_details(record: Record, log: Logger) -> None:
    """The valid result's details, after the write (logging never delays it)."""
    result = record.result
    if isinstance(result, ResultValid) and result.result.details is not None:
        details, truncated = render_details(result.result.details)
        value: object = details if truncated else RawJson(result.result.details)
        log.info("adapter result details", details=value, details_truncated=truncated)
