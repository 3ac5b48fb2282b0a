"""The outcome of a run (README "How the condition is written" and "Exit codes and
lifecycle"): the decided condition, whether it reached the Job, the exit code, the
termination message and the Event.

A stop always wins over retries: a write that a stop interrupts gets one last attempt,
and everything after a stop ends within :data:`STOP_EXIT_SECONDS` of it.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Final

from status_reporter.api.protocol import Api, Operations
from status_reporter.api.retry import KubeError, RetryPolicy, call
from status_reporter.api.writer import CONFIG_ERROR_SECONDS, ConditionWriter, write_budget
from status_reporter.base.clock import Clock
from status_reporter.base.logs import Logger
from status_reporter.base.tasks import Cut, Interrupt
from status_reporter.core.conditions import Condition
from status_reporter.core.config import Config, ConfigError
from status_reporter.core.decision import Verdict
from status_reporter.core.events import job_event
from status_reporter.shell import termination
from status_reporter.shell.startup import Startup, StartupFacts

# After a stop: exit within this many seconds (the kubelet's grace period is 30 s by
# default); the last write attempt gets what is left of it.
STOP_EXIT_SECONDS: Final = 10.0
_STOP_MARGIN_SECONDS: Final = 2.0
_LAST_ATTEMPT_SECONDS: Final = 4.0
# The Event that records the outcome is best effort, and bounded to this.
EVENT_SECONDS: Final = 2.0
_EVENT_POLICY: Final = RetryPolicy(initial=0.2, maximum=1.0, request_timeout=EVENT_SECONDS)


class ExitCode(enum.IntEnum):
    """Process exit codes (README "Exit codes and lifecycle")."""

    RESULT = 0
    ADAPTER_PROBLEM = 1
    CONFIG_INVALID = 2
    WRITE_FAILED = 3


def exit_by(stop: Interrupt, otherwise: float) -> float:
    """``otherwise``, or sooner after a stop: the time by which what is left of the run
    must end, a margin before the exit that the stop promises."""
    if stop.since is None:
        return otherwise
    return min(otherwise, stop.since + STOP_EXIT_SECONDS - _STOP_MARGIN_SECONDS)


async def record_config_error(
    writer: ConditionWriter | None,
    line: str,
    *,
    deadline: float,
    condition_type: str,
    termination_path: str,
    log: Logger,
) -> bool:
    """Record ``ReporterConfigInvalid`` with ``line`` on the Job, best effort until
    ``deadline``, and leave it in the termination message; True when it reached the Job.

    The one way a configuration error is reported, whether the environment or start-up
    found it. Without a writer (no Job can be named) only the termination message is
    left.
    """
    condition = Condition("False", "ReporterConfigInvalid", line)
    written = False
    if writer is not None:
        try:
            await writer.write(condition, deadline=deadline)
            written = True
        except KubeError as exc:
            log.warning("could not record the configuration error on the Job", error=str(exc))
    if not termination.write(
        termination_path, termination.message(condition_type, condition, written)
    ):
        log.debug("no termination message file to write", path=termination_path)
    return written


class Outcome:
    """What one run decided, whether it reached the Job, and the exit code to use."""

    def __init__(
        self, config: Config, api: Api, *, clock: Clock, log: Logger, stop: Interrupt
    ) -> None:
        self._config = config
        self._api = api
        self._clock = clock
        self._log = log
        self._stop = stop
        self.decided: Condition | None = None
        self.written = False
        # Why the decided condition was not written, when a check or the API said so.
        self.error: str | None = None
        self.code = ExitCode.WRITE_FAILED

    def decide(self, verdict: Verdict) -> None:
        """Take the verdict, and leave it in the termination message at once (not written
        yet): a SIGKILL during the write's retries still leaves it (README "How the
        condition is written")."""
        condition = verdict.condition
        self.decided = condition
        self._log.info(
            "decided",
            rule=int(verdict.rule),
            status=condition.status,
            reason=condition.reason,
            condition_message=condition.message,
        )
        self.leave_last_word()

    def refuse(self, error: str, code: ExitCode) -> ExitCode:
        """The decided condition cannot be written: a start-up check failed (``error``
        names it). It stays in the termination message with the error; the exit code."""
        self.error, self.code = error, code
        self.leave_last_word()
        return code

    async def record(
        self, verdict: Verdict, writer: ConditionWriter | None, *, deadline: float | None = None
    ) -> ExitCode:
        """Write the decided condition (None: no Job was named) until ``deadline`` (by
        default the write's whole budget from now) and leave the last word; the exit code."""
        if self.decided is None:
            self.decide(verdict)
        if deadline is None:
            deadline = self._clock.now() + write_budget(self._config.max_wait_time_seconds)
        self.code = await self._write(verdict, writer, deadline)
        self.leave_last_word()
        return self.code

    async def conclude_early(
        self,
        verdict: Verdict,
        startup: Startup,
        starting: Awaitable[StartupFacts | Cut],
        read_pod: Callable[[], Awaitable[None]],
        details: Callable[[], None],
    ) -> ExitCode:
        """A valid result came before start-up ended (an API server unreachable from the
        start, say): it decides alone and goes to the termination message at once. The
        start-up checks still run when the API answers, within the write's budget; one
        that fails leaves the verdict there, not written, with the error that names it.
        After a stop that cut start-up short, ``read_pod`` may still name the Job."""
        self.decide(verdict)
        deadline = self._clock.now() + write_budget(self._config.max_wait_time_seconds)
        try:
            started = await startup.finish(starting, deadline, self._stop)
        except ConfigError as exc:
            self._log.error(str(exc))
            return self.refuse(str(exc), ExitCode.CONFIG_INVALID)
        except KubeError as exc:
            self._log.error(str(exc), status=exc.status)
            self._log.error("condition not recorded on the Job")
            return self.refuse(str(exc), ExitCode.WRITE_FAILED)
        facts = None
        if isinstance(started, Cut):
            await read_pod()
        else:
            facts = started
            startup.plan_write(facts)
        return await self.conclude(verdict, startup, facts, details, deadline=deadline)

    async def conclude(
        self,
        verdict: Verdict,
        startup: Startup,
        facts: StartupFacts | None,
        details: Callable[[], None],
        *,
        deadline: float | None = None,
    ) -> ExitCode:
        """Write the verdict (until ``deadline``), record the Event, log the result's
        ``details``; as a native sidecar, stay until stopped. The exit code."""
        code = await self.record(verdict, startup.writer, deadline=deadline)
        if self.written and facts is not None and facts.create_events:
            await self.record_event(startup.ops, facts.job.metadata.uid)
        details()
        native = facts.native_sidecar if facts is not None else startup.native_sidecar
        if native and code is not ExitCode.WRITE_FAILED:
            # Exiting now would make the kubelet restart a native sidecar.
            if not self._stop.is_set():
                self._log.info("condition recorded; idle until the Pod stops")
                await self._stop.wait()
            return ExitCode.RESULT
        return code

    async def _write(
        self, verdict: Verdict, writer: ConditionWriter | None, deadline: float
    ) -> ExitCode:
        condition = verdict.condition
        fields = {
            "status": condition.status,
            "reason": condition.reason,
            "condition_message": condition.message,
        }
        if writer is None:
            self._log.error(
                "condition not recorded on the Job: JOB_NAME is unset and the stop came "
                "before the Pod named its Job",
                **fields,
            )
            return ExitCode.WRITE_FAILED
        try:
            written = await self._stop.cut(writer.write(condition, deadline=deadline))
            if isinstance(written, Cut):
                self._log.info("stopped while writing; one last attempt")
                last = exit_by(self._stop, self._clock.now() + _LAST_ATTEMPT_SECONDS)
                await writer.write(condition, deadline=last, read_first=False)
        except KubeError as exc:
            self._log.error(str(exc), status=exc.status)
            self._log.error("condition not recorded on the Job", **fields)
            return ExitCode.WRITE_FAILED
        self.written = True
        return ExitCode.RESULT if verdict.from_result else ExitCode.ADAPTER_PROBLEM

    async def record_event(self, ops: Operations, job_uid: str) -> None:
        """Best effort, bounded, never retried past a stop: the outcome as an Event."""
        assert self.decided is not None
        config = self._config
        event = job_event(
            self.decided,
            job=ops.job,
            job_uid=job_uid,
            namespace=config.job_namespace,
            pod=config.pod_name,
            now=self._clock.wall(),
        )
        stopping = self._stop.is_set()
        attempts = call(
            ops.create_event,
            lambda timeout: self._api.create_event(event, timeout=timeout),
            clock=self._clock,
            deadline=exit_by(self._stop, self._clock.now() + EVENT_SECONDS),
            log=self._log,
            policy=_EVENT_POLICY,
        )
        try:
            # A stop that comes later ends the attempts; one that came first bounds them.
            await (attempts if stopping else self._stop.cut(attempts))
        except KubeError as exc:
            self._log.debug("no Event recorded", error=str(exc))

    async def record_config_error(self, line: str, writer: ConditionWriter | None) -> None:
        """Best effort, bounded: ``ReporterConfigInvalid`` with ``line``, on the Job when
        it was named (``writer``) and in the termination message."""
        self.decided = Condition("False", "ReporterConfigInvalid", line)
        self.code = ExitCode.CONFIG_INVALID
        self.written = await record_config_error(
            writer,
            line,
            deadline=exit_by(self._stop, self._clock.now() + CONFIG_ERROR_SECONDS),
            condition_type=self._config.condition_type,
            termination_path=self._config.termination_message_path,
            log=self._log,
        )

    def leave_last_word(self, error: str | None = None) -> None:
        """Leave the decided condition (or the fatal error) in the termination message."""
        path = self._config.termination_message_path
        if self.decided is not None:
            line = termination.message(
                self._config.condition_type, self.decided, self.written, self.error or error
            )
        elif error is not None:
            line = termination.error_message(error)
        else:
            return
        if not termination.write(path, line):
            self._log.debug("no termination message file to write", path=path)

    def final_report(self) -> int:
        """For a second stop: leave what is known now; the exit code to use."""
        if self.code is ExitCode.WRITE_FAILED:
            self._log.error("stopped again before the condition was written; exiting now")
        self.leave_last_word()
        return int(self.code)
