"""The reporter's engine: watch, decide, write (SPEC §4–§6).

The engine owns the observations and races their sources in one event loop:
result-file events and polls, adapter updates from the Pod, the decision's own
recheck time and the stop signal. Each wake-up feeds :func:`decision.decide`;
the first verdict is written to the Job. I/O goes through small interfaces
(:class:`Clock`, :class:`status_reporter.kube.Cluster`) so that tests can drive
every path without sleeping.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from lightkube.resources.core_v1 import Pod

from status_reporter.config import Config, ConfigError, MonitorMode
from status_reporter.contract import (
    ResultInvalid,
    ResultMissing,
    ResultState,
    ResultValid,
    read_result,
    render_details,
)
from status_reporter.decision import AdapterState, Observation, Pending, Verdict, decide
from status_reporter.kube import Cluster, KubeError
from status_reporter.logs import Logger
from status_reporter.pods import adapter_state, find_adapter, has_container, is_native_sidecar
from status_reporter.watch import Clock, poll, watch_file

# Condition types owned by the Job controller (batch/v1 JobConditionType).
JOB_CONTROLLER_CONDITIONS = frozenset(
    {"Complete", "Failed", "Suspended", "FailureTarget", "SuccessCriteriaMet"}
)


class ExitCode(enum.IntEnum):
    """Process exit codes (SPEC §6)."""

    RESULT = 0
    ADAPTER_PROBLEM = 1
    CONFIG_INVALID = 2
    WRITE_FAILED = 3


@dataclass(frozen=True, slots=True)
class Target:
    """What start-up learned from the Pod (the adapter's name is kept on the Reporter)."""

    native_sidecar: bool
    watch_pods: bool


class Reporter:
    """One run of the sidecar for one Job."""

    def __init__(
        self,
        config: Config,
        cluster: Cluster,
        clock: Clock,
        log: Logger,
        read: Callable[[str], ResultState] = read_result,
    ) -> None:
        self._config = config
        self._cluster = cluster
        self._clock = clock
        self._log = log
        self._read = read
        self._changed = asyncio.Event()
        self._stopped = asyncio.Event()
        self._file_dirty = True
        self._result: ResultState = ResultMissing()
        self._invalid_since: float | None = None
        self._adapter: AdapterState | None = None
        self._adapter_name = ""
        self._deadline = 0.0

    def stop(self) -> None:
        """Ask for a final evaluation and stop (SIGTERM / SIGINT)."""
        self._stopped.set()
        self._file_dirty = True
        self._changed.set()

    async def run(self) -> ExitCode:
        """Run the sidecar until the condition is written (and, as a native sidecar, stopped)."""
        self._deadline = self._clock.now() + self._config.max_wait_time_seconds
        try:
            target = await self._start()
        except ConfigError as exc:
            self._log.error(str(exc))
            await self._cluster.report_config_error(str(exc))
            return ExitCode.CONFIG_INVALID
        except KubeError as exc:
            self._log.error(str(exc), status=exc.status)
            return ExitCode.WRITE_FAILED
        verdict = await self._supervise(target)
        code = await self._write(verdict)
        if target.native_sidecar and code is not ExitCode.WRITE_FAILED:
            # Exiting now would make the kubelet restart a native sidecar.
            self._log.info("condition recorded; idle until the Pod stops")
            await self._stopped.wait()
            return ExitCode.RESULT
        return code

    async def _start(self) -> Target:
        config = self._config
        await self._cluster.read_job()
        try:
            pod = await self._cluster.read_pod()
        except KubeError as exc:
            if exc.status != 404:
                raise
            raise ConfigError(
                "POD_NAME", config.pod_name, f"no such Pod in namespace {config.job_namespace}"
            ) from None
        adapter = find_adapter(pod, config.adapter_container_name, config.reporter_container_name)
        if not has_container(pod, config.reporter_container_name):
            self._log.warning(
                "REPORTER_CONTAINER_NAME is not a container of this Pod; "
                "set it so the reporter is never taken for the adapter",
                reporter_container=config.reporter_container_name,
            )
        if config.condition_type in JOB_CONTROLLER_CONDITIONS:
            self._log.warning(
                "CONDITION_TYPE is a condition the Job controller itself manages; "
                "writing it can change how the Job ends",
                condition_type=config.condition_type,
            )
        access = await self._cluster.check_access()
        native = is_native_sidecar(pod, config.reporter_container_name)
        self._adapter_name = adapter
        self._adapter = adapter_state(pod, adapter)
        watch_pods = config.monitor_mode is MonitorMode.AUTO and access.watch_pods
        self._log.info(
            "monitoring adapter",
            adapter=adapter,
            results_path=config.results_path,
            native_sidecar=native,
            monitor_mode=str(config.monitor_mode),
            pod_updates="watch" if watch_pods else "poll",
        )
        return Target(native_sidecar=native, watch_pods=watch_pods)

    def _notify_file(self) -> None:
        self._file_dirty = True
        self._changed.set()

    def _on_pod(self, pod: Pod) -> None:
        state = adapter_state(pod, self._adapter_name)
        if state is None or state == self._adapter:
            return
        if state.terminated is not None and (
            self._adapter is None or self._adapter.terminated is None
        ):
            # Read the file once more: it may have been completed just before the exit.
            self._file_dirty = True
            self._log.info(
                "adapter terminated",
                exit_code=state.terminated.exit_code,
                reason=state.terminated.reason,
            )
        self._adapter = state
        self._changed.set()

    def _monitors(self, target: Target) -> list[Coroutine[Any, Any, None]]:
        config = self._config
        monitors = [poll(self._clock, config.poll_interval_seconds, self._notify_file)]
        if config.monitor_mode is MonitorMode.AUTO:
            monitors.append(
                watch_file(
                    config.results_path,
                    self._clock,
                    config.poll_interval_seconds,
                    self._notify_file,
                    self._log,
                )
            )
        interval = config.container_status_interval_seconds
        if target.watch_pods:
            monitors.append(self._cluster.watch_pod(interval, self._on_pod))
        else:
            monitors.append(self._cluster.poll_pod(interval, self._on_pod))
        return monitors

    async def _supervise(self, target: Target) -> Verdict:
        tasks = [asyncio.create_task(monitor) for monitor in self._monitors(target)]
        try:
            return await self._decide_loop()
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for outcome in results:
                if isinstance(outcome, Exception):
                    self._log.warning("monitor failed", error=repr(outcome))

    def _refresh_result(self) -> None:
        if not self._file_dirty:
            return
        self._file_dirty = False
        state = self._read(self._config.results_path)
        previous = self._result
        if isinstance(state, ResultInvalid):
            same = isinstance(previous, ResultInvalid) and previous.fingerprint == state.fingerprint
            if not same:
                self._invalid_since = self._clock.now()
                self._log.info("result file is not valid yet", error=state.error)
        else:
            self._invalid_since = None
        self._result = state

    async def _decide_loop(self) -> Verdict:
        while True:
            self._changed.clear()
            if self._stopped.is_set():
                await self._refresh_adapter()
            self._refresh_result()
            outcome = decide(
                Observation(
                    result=self._result,
                    adapter=self._adapter,
                    now=self._clock.now(),
                    deadline=self._deadline,
                    max_wait_seconds=self._config.max_wait_time_seconds,
                    settle_seconds=self._config.poll_interval_seconds,
                    invalid_since=self._invalid_since,
                    interrupted=self._stopped.is_set(),
                )
            )
            if isinstance(outcome, Verdict):
                return outcome
            await self._wait(outcome)

    async def _refresh_adapter(self) -> None:
        """On stop, read the Pod once more so the final evaluation sees the latest state."""
        pod = await self._cluster.read_pod_once()
        if pod is not None:
            self._on_pod(pod)

    async def _wait(self, pending: Pending) -> None:
        changed = asyncio.ensure_future(self._changed.wait())
        timer = asyncio.ensure_future(self._clock.sleep_until(pending.recheck_at))
        try:
            await asyncio.wait((changed, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (changed, timer):
                task.cancel()
            await asyncio.gather(changed, timer, return_exceptions=True)
        if timer.done() and not timer.cancelled():
            self._file_dirty = True

    async def _write(self, verdict: Verdict) -> ExitCode:
        condition = verdict.condition
        if isinstance(self._result, ResultValid) and self._result.result.has_details:
            details, truncated = render_details(self._result.result.details)
            self._log.info(
                "adapter result details",
                details=details if truncated else self._result.result.details,
                details_truncated=truncated,
            )
        self._log.info(
            "decided",
            rule=int(verdict.rule),
            status=condition.status,
            reason=condition.reason,
            condition_message=condition.message,
        )
        try:
            await self._cluster.write_condition(condition)
        except KubeError as exc:
            self._log.error(str(exc), status=exc.status)
            return ExitCode.WRITE_FAILED
        return ExitCode.RESULT if verdict.from_result else ExitCode.ADAPTER_PROBLEM
