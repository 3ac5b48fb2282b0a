"""The reporter's engine: start, watch, decide, write (README "Decision table" to "Exit codes
and lifecycle").

The engine races its sources in one event loop: result-file events and polls,
adapter updates from the Pod, the decision's own recheck time and the stop. Each
wake-up feeds :func:`decision.decide` with a snapshot of :class:`Observations`; the
first verdict is written to the Job. A stop always wins over waiting and retries:
whatever phase it interrupts, the reporter makes one last bounded attempt and
exits within :data:`STOP_EXIT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

from status_reporter.api.protocol import Api, Operations
from status_reporter.api.retry import KubeError, RetryPolicy, call
from status_reporter.api.writer import (
    CONFIG_ERROR_SECONDS,
    FORBIDDEN_GRACE_SECONDS,
    ConditionWriter,
    write_budget,
)
from status_reporter.base.clock import Clock
from status_reporter.base.logs import Logger, RawJson
from status_reporter.base.tasks import cancelled, first_done
from status_reporter.core.conditions import Condition
from status_reporter.core.config import Config, ConfigError, MonitorMode
from status_reporter.core.contract import ResultState, ResultValid, read_result, render_details
from status_reporter.core.decision import Pending, Rule, Stop, Verdict, decide
from status_reporter.core.events import job_event
from status_reporter.core.jobs import effective_wait
from status_reporter.core.models import Job, Pod
from status_reporter.core.observe import Observations
from status_reporter.core.pods import adapter_state, deletion, is_older
from status_reporter.monitors.filewatch import poll, watch_file
from status_reporter.monitors.podwatch import PodMonitor
from status_reporter.shell import termination
from status_reporter.shell.startup import Startup, Target, record_config_error

_T = TypeVar("_T")

# After a stop: exit within this many seconds (the kubelet's grace period is 30 s by
# default); the last write attempt gets what is left of it.
STOP_EXIT_SECONDS: Final = 10.0
_STOP_MARGIN_SECONDS: Final = 2.0
_LAST_ATTEMPT_SECONDS: Final = 4.0
# Reads of the Pod while a stop waits for the adapter's terminated state.
_STOP_READ_INTERVAL: Final = 0.5
_STOP_READ_TIMEOUT: Final = 1.0
# The last read of the Pod before row 7 (a crash since the last poll is the crash).
_DEADLINE_READ_SECONDS: Final = 5.0
# The Event that records the outcome is best effort, and bounded to this.
EVENT_SECONDS: Final = 2.0
_EVENT_POLICY: Final = RetryPolicy(initial=0.2, maximum=1.0, request_timeout=EVENT_SECONDS)
# Re-reads caused by file events are at least this far apart, however often the file
# changes; while every read finds new invalid content (an adapter rewriting it in a
# loop), the gap doubles up to the maximum, so the cost does not follow the writes.
MIN_READ_INTERVAL: Final = 0.025
MAX_READ_INTERVAL: Final = 0.5


class ExitCode(enum.IntEnum):
    """Process exit codes (README "Exit codes and lifecycle")."""

    RESULT = 0
    ADAPTER_PROBLEM = 1
    CONFIG_INVALID = 2
    WRITE_FAILED = 3


class _Stopped:
    """Returned by :meth:`Reporter._race` when the stop came first."""


_STOPPED: Final = _Stopped()


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
        self._read = read
        self._startup = Startup(config, api, clock=clock, log=log)
        self._writer = self._new_writer()
        self._job_uid = ""
        self._obs = Observations(
            deadline=clock.now() + config.max_wait_time_seconds,
            max_wait_seconds=config.max_wait_time_seconds,
            settle_seconds=config.poll_interval_seconds,
        )
        self._changed = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stop_at = 0.0
        # The file is read when it may have changed: at once for a poll tick, a
        # termination, a stop or a recheck; at most every MIN_READ_INTERVAL for file
        # events, however fast an adapter rewrites it.
        self._read_now = True
        self._file_dirty = False
        self._last_read = float("-inf")
        self._read_interval = MIN_READ_INTERVAL
        self._adapter_name: str | None = None
        # The newest Pod state seen (its resourceVersion): an older one never replaces it.
        self._pod_version = ""
        # Learned from the Pod when a stop cut start-up short (else from the Target).
        self._native = False
        # What the termination message reports: the decided condition, whether it reached
        # the Job, and the exit code.
        self._decided: Condition | None = None
        self._written = False
        self._code = ExitCode.WRITE_FAILED

    # --- stopping ---------------------------------------------------------------------

    def stop(self) -> None:
        """A stop signal (SIGTERM / SIGINT): decide with what can still be learned, and exit."""
        self._begin_stop(Stop(at=self._clock.now(), wall=self._clock.wall()))

    def _begin_stop(self, stop: Stop) -> None:
        self._obs.record_stop(stop)
        if not self._stopped.is_set():
            self._stop_at = self._clock.now()
            self._stopped.set()
        self._read_now = True
        self._changed.set()

    @property
    def stopping(self) -> bool:
        """True once a stop arrived."""
        return self._stopped.is_set()

    def _stop_deadline(self) -> float:
        return self._stop_at + STOP_EXIT_SECONDS - _STOP_MARGIN_SECONDS

    async def _race(self, work: Coroutine[Any, Any, _T]) -> _T | _Stopped:
        """Run ``work`` unless, or until, the stop comes first (then it is cancelled)."""
        task = asyncio.ensure_future(work)
        if self._stopped.is_set():
            task.cancel()
        await first_done(task, asyncio.ensure_future(self._stopped.wait()))
        if task.cancelled():
            return _STOPPED
        return task.result()

    def final_report(self) -> int:
        """For a second stop signal: record what is known now, and the exit code to use."""
        if self._code is ExitCode.WRITE_FAILED:
            self._log.error("stopped again before the condition was written; exiting now")
        self._report_termination()
        return int(self._code)

    def report_failure(self, error: str) -> None:
        """After an unexpected error: leave the decided condition (or the error) behind."""
        self._report_termination(error=error)

    # --- the run ----------------------------------------------------------------------

    async def run(self) -> ExitCode:
        """Run the sidecar until the condition is written (and, as a native sidecar, stopped)."""
        try:
            started = await self._race(self._startup.run(self._obs.deadline))
        except ConfigError as exc:
            self._log.error(str(exc))
            await self._report_config_error(str(exc))
            return ExitCode.CONFIG_INVALID
        except KubeError as exc:
            self._log.error(str(exc), status=exc.status)
            self._report_termination(error=str(exc))
            return ExitCode.WRITE_FAILED
        target = None if isinstance(started, _Stopped) else started
        if target is not None:
            self._begin(target)
        else:
            await self._learn_adapter_after_stop()
        verdict = await self._monitor(target)
        self._decided = verdict.condition
        code = await self._write(verdict)
        self._code = code
        self._report_termination()
        if self._written and target is not None and target.create_events:
            await self._record_event(verdict.condition)
        self._log_details()
        native = target.native_sidecar if target is not None else self._native
        if native and code is not ExitCode.WRITE_FAILED:
            # Exiting now would make the kubelet restart a native sidecar.
            if not self._stopped.is_set():
                self._log.info("condition recorded; idle until the Pod stops")
                await self._stopped.wait()
            return ExitCode.RESULT
        return code

    @property
    def _ops(self) -> Operations:
        return self._startup.ops

    def _new_writer(self) -> ConditionWriter:
        return ConditionWriter(
            self._api, self._ops, self._config.condition_type, clock=self._clock, log=self._log
        )

    def _begin(self, target: Target) -> None:
        """Take what start-up learned: the Job to write to, its deadline, the adapter."""
        config = self._config
        self._writer = self._new_writer()  # for the Job start-up named
        self._writer.hold(target.job)
        if target.patch_confirmed:
            self._writer.trust_permission(FORBIDDEN_GRACE_SECONDS)
        self._job_uid = target.job.metadata.uid
        self._clamp_to_job(target.job)
        self._adapter_name = target.adapter
        self._on_pod(target.pod)
        self._log.info(
            "monitoring adapter",
            adapter=target.adapter,
            results_path=config.results_path,
            native_sidecar=target.native_sidecar,
            monitor_mode=str(config.monitor_mode),
            pod_updates="watch" if target.watch_pods else "poll",
        )

    def _clamp_to_job(self, job: Job) -> None:
        """Let the Job's own deadline shorten the wait, so row 7 lands before it."""
        config = self._config
        wait = effective_wait(config.max_wait_time_seconds, job, self._clock.wall())
        if self._obs.shorten_wait(self._clock.now() + wait, wait):
            self._log.warning(
                "the Job's activeDeadlineSeconds ends first: waiting less than "
                "MAX_WAIT_TIME_SECONDS, so that AdapterTimeout is recorded before it",
                max_wait_time_seconds=config.max_wait_time_seconds,
                active_deadline_seconds=job.spec.active_deadline_seconds,
                wait_seconds=wait,
            )

    async def _learn_adapter_after_stop(self) -> None:
        """A stop cut start-up short: one quick read of the Pod to find the adapter."""
        timeout = max(0.2, min(_STOP_READ_TIMEOUT, self._stop_deadline() - self._clock.now()))
        learned = await self._startup.read_after_stop(timeout)
        if learned is None:
            return
        self._writer = self._new_writer()  # the Pod may have named the Job
        self._native = learned.native_sidecar
        if learned.adapter is not None:
            self._adapter_name = learned.adapter
            self._on_pod(learned.pod)

    # --- observations -----------------------------------------------------------------

    def _file_event(self) -> None:
        # Only the first event wakes the loop: it then waits for the next read anyway.
        if not self._file_dirty:
            self._file_dirty = True
            self._changed.set()

    def _file_tick(self) -> None:
        self._read_now = True
        self._changed.set()

    def _on_pod(self, pod: Pod) -> None:
        version = pod.metadata.resource_version
        if is_older(version, self._pod_version):
            # A read that raced a watch event: the newer state already counts.
            return
        self._pod_version = version or self._pod_version
        stop = deletion(pod, self._clock.now(), self._clock.wall())
        if stop is not None:
            self._begin_stop(stop)
        if self._adapter_name is None:
            return
        state = adapter_state(pod, self._adapter_name)
        if self._obs.record_adapter(state):
            assert state is not None
            assert state.terminated is not None
            # Read the file once more: it may have been completed just before the exit.
            self._read_now = True
            self._log.info(
                "adapter terminated",
                exit_code=state.terminated.exit_code,
                reason=state.terminated.reason,
            )
        self._changed.set()

    def _on_pod_gone(self) -> None:
        if not self._obs.pod_gone:
            self._log.info("the Pod was deleted")
        now, wall = self._clock.now(), self._clock.wall()
        stop = self._obs.stop or Stop(at=now, wall=wall)
        self._obs.record_pod_gone(stop)
        self._begin_stop(stop)

    def _refresh_result(self) -> float | None:
        """Read the file if it may have changed; the time of a postponed read, if any."""
        now = self._clock.now()
        if not self._read_now:
            if not self._file_dirty:
                return None
            next_read = self._last_read + self._read_interval
            if now < next_read:
                return next_read
        self._read_now = self._file_dirty = False
        self._last_read = now
        state = self._read(self._config.results_path)
        if self._obs.record_result(state, now):
            error = getattr(state, "error", "")
            self._log.info("result file is not valid yet", error=error)
            self._read_interval = min(MAX_READ_INTERVAL, self._read_interval * 2)
        else:
            self._read_interval = MIN_READ_INTERVAL
        return None

    # --- monitoring ---------------------------------------------------------------------

    def _monitor_tasks(self, target: Target | None) -> list[asyncio.Task[None]]:
        config = self._config
        tasks = [
            self._guarded(
                "file poll",
                lambda: poll(self._clock, config.poll_interval_seconds, self._file_tick),
            ),
        ]
        if config.monitor_mode is MonitorMode.AUTO:
            tasks.append(
                self._guarded(
                    "file events",
                    lambda: watch_file(
                        config.results_path,
                        self._clock,
                        config.poll_interval_seconds,
                        self._file_event,
                        self._log,
                    ),
                )
            )
        if target is not None:
            pods = self._pod_monitor(target)
            if target.watch_pods:
                tasks.append(self._guarded("Pod watch", pods.watch, fallback=pods.poll))
            else:
                # Start-up has just read the Pod: the first poll is one interval away.
                tasks.append(self._guarded("Pod poll", lambda: pods.poll(read_now=False)))
        return tasks

    def _pod_monitor(self, target: Target | None) -> PodMonitor:
        return PodMonitor(
            self._api,
            self._ops,
            clock=self._clock,
            log=self._log,
            interval=self._config.container_status_interval_seconds,
            deadline=self._obs.deadline,
            resource_version=target.pod.metadata.resource_version if target else "",
            on_pod=self._on_pod,
            on_gone=self._on_pod_gone,
        )

    def _guarded(
        self,
        name: str,
        monitor: Callable[[], Awaitable[None]],
        fallback: Callable[[], Awaitable[None]] | None = None,
    ) -> asyncio.Task[None]:
        """Run a monitor; if it fails, say so at once and run ``fallback`` instead."""

        async def supervise() -> None:
            try:
                await monitor()
            except Exception as exc:
                self._log.warning(
                    "monitor failed", monitor=name, error=repr(exc), fallback=bool(fallback)
                )
                if fallback is not None:
                    await fallback()

        return asyncio.create_task(supervise(), name=name)

    async def _monitor(self, target: Target | None) -> Verdict:
        if not self._stopped.is_set():
            # A result (or an ended adapter) already there at start-up needs no monitors.
            self._refresh_result()
            outcome = decide(self._obs.snapshot(self._clock.now()))
            if isinstance(outcome, Verdict) and outcome.rule is not Rule.TIMEOUT:
                return outcome
        tasks = self._monitor_tasks(target)
        try:
            return await self._decide_loop(target)
        finally:
            await cancelled(*tasks)

    async def _decide_loop(self, target: Target | None) -> Verdict:
        stop_reads: asyncio.Task[None] | None = None
        final_read = False
        try:
            while True:
                self._changed.clear()
                if self._stopped.is_set() and stop_reads is None:
                    stop_reads = asyncio.create_task(self._read_pod_while_stopping(target))
                read_at = self._refresh_result()
                outcome = decide(self._obs.snapshot(self._clock.now()))
                if isinstance(outcome, Verdict) and outcome.rule is Rule.TIMEOUT and not final_read:
                    # A crash since the last poll must be reported as the crash.
                    final_read = True
                    await self._read_pod_at_deadline(target)
                    self._read_now = True
                    continue
                if isinstance(outcome, Verdict):
                    return outcome
                recheck = (
                    outcome.recheck_at if read_at is None else min(outcome.recheck_at, read_at)
                )
                await self._wait(Pending(recheck))
        finally:
            await cancelled(stop_reads)

    async def _read_pod_at_deadline(self, target: Target | None) -> None:
        if target is None and self._adapter_name is None:
            return
        now = self._clock.now()
        limit = self._stop_deadline() if self._stopped.is_set() else now + _DEADLINE_READ_SECONDS
        timeout = max(0.2, min(_DEADLINE_READ_SECONDS, limit - now))
        await self._pod_monitor(target).read_once(timeout)

    async def _read_pod_while_stopping(self, target: Target | None) -> None:
        """After a stop, read the Pod often until the decision is made (bounded by the window)."""
        monitor = self._pod_monitor(target)
        while not self._obs.pod_gone:
            await monitor.read_once(_STOP_READ_TIMEOUT)
            if self._adapter_name is None:
                await self._learn_adapter_after_stop()
            await self._clock.sleep_until(self._clock.now() + _STOP_READ_INTERVAL)

    async def _wait(self, pending: Pending) -> None:
        timer = asyncio.ensure_future(self._clock.sleep_until(pending.recheck_at))
        await first_done(asyncio.ensure_future(self._changed.wait()), timer)
        if timer.done() and not timer.cancelled():
            self._read_now = True

    # --- writing --------------------------------------------------------------------------

    def _exit_code(self, verdict: Verdict) -> ExitCode:
        return ExitCode.RESULT if verdict.from_result else ExitCode.ADAPTER_PROBLEM

    async def _write(self, verdict: Verdict) -> ExitCode:
        condition = verdict.condition
        self._log.info(
            "decided",
            rule=int(verdict.rule),
            status=condition.status,
            reason=condition.reason,
            condition_message=condition.message,
        )
        if not self._ops.job:
            self._log.error(
                "condition not recorded on the Job: JOB_NAME is unset and the stop came "
                "before the Pod named its Job",
                status=condition.status,
                reason=condition.reason,
                condition_message=condition.message,
            )
            return ExitCode.WRITE_FAILED
        budget = write_budget(self._config.max_wait_time_seconds)
        try:
            outcome = await self._race(
                self._writer.write(condition, deadline=self._clock.now() + budget)
            )
            if isinstance(outcome, _Stopped):
                self._log.info("stopped while writing; one last attempt")
                last = min(self._stop_deadline(), self._clock.now() + _LAST_ATTEMPT_SECONDS)
                await self._writer.write(condition, deadline=last, read_first=False)
        except KubeError as exc:
            self._log.error(str(exc), status=exc.status)
            self._log.error(
                "condition not recorded on the Job",
                status=condition.status,
                reason=condition.reason,
                condition_message=condition.message,
            )
            return ExitCode.WRITE_FAILED
        self._written = True
        return self._exit_code(verdict)

    async def _record_event(self, condition: Condition) -> None:
        """Best effort, bounded, never retried past a stop: the outcome as an Event."""
        config = self._config
        event = job_event(
            condition,
            job=self._ops.job,
            job_uid=self._job_uid,
            namespace=config.job_namespace,
            pod=config.pod_name,
            now=self._clock.wall(),
        )
        deadline = self._clock.now() + EVENT_SECONDS
        stopping = self._stopped.is_set()
        if stopping:
            deadline = min(deadline, self._stop_deadline())
        attempts = call(
            self._ops.create_event,
            lambda timeout: self._api.create_event(event, timeout=timeout),
            clock=self._clock,
            deadline=deadline,
            log=self._log,
            policy=_EVENT_POLICY,
        )
        try:
            # A stop that comes later ends the attempts; one that came first bounds them.
            await (attempts if stopping else self._race(attempts))
        except KubeError as exc:
            self._log.debug("no Event recorded", error=str(exc))

    async def _report_config_error(self, line: str) -> None:
        """Best effort, bounded: record ``ReporterConfigInvalid`` with ``line``."""
        self._decided = Condition("False", "ReporterConfigInvalid", line)
        self._code = ExitCode.CONFIG_INVALID
        deadline = self._clock.now() + CONFIG_ERROR_SECONDS
        if self._stopped.is_set():
            deadline = min(deadline, self._stop_deadline())
        # A configuration error may come before the Pod named the Job.
        writer = self._new_writer() if self._ops.job else None
        self._written = await record_config_error(
            writer,
            line,
            deadline=deadline,
            condition_type=self._config.condition_type,
            termination_path=self._config.termination_message_path,
            log=self._log,
        )

    def _report_termination(self, error: str | None = None) -> None:
        """Leave the decided condition (or the fatal error) in the termination message."""
        path = self._config.termination_message_path
        if self._decided is not None:
            line = termination.message(self._config.condition_type, self._decided, self._written)
        elif error is not None:
            line = termination.error_message(error)
        else:
            return
        if not termination.write(path, line):
            self._log.debug("no termination message file to write", path=path)

    def _log_details(self) -> None:
        result = self._obs.result
        if isinstance(result, ResultValid) and result.result.details is not None:
            details, truncated = render_details(result.result.details)
            value: object = details if truncated else RawJson(result.result.details)
            self._log.info("adapter result details", details=value, details_truncated=truncated)
