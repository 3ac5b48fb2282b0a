"""The program behind the command line: ``status-reporter`` runs the sidecar;
``check-result PATH`` checks a result file.

This module wires the pieces together: configuration, logging, credentials, the
HTTP client, the API and the engine, plus signals and the exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import msgspec

from status_reporter import __version__
from status_reporter.api.auth import CredentialsError
from status_reporter.api.credentials import load as load_credentials
from status_reporter.api.kube import HttpApi
from status_reporter.api.protocol import Api, Operations
from status_reporter.api.transport import HttpClient, TcpKeepalive
from status_reporter.api.writer import CONFIG_ERROR_SECONDS, ConditionWriter
from status_reporter.base import logs
from status_reporter.base.clock import LoopClock
from status_reporter.core.config import (
    Config,
    ConfigError,
    LogFormat,
    LogLevel,
    error_report,
    load,
)
from status_reporter.core.contract import (
    ResultInvalid,
    ResultMissing,
    read_result,
    resolve_results_path,
)
from status_reporter.core.decision import result_verdict
from status_reporter.shell.engine import Reporter
from status_reporter.shell.outcome import ExitCode, record_config_error

if TYPE_CHECKING:
    import argparse

_USAGE_ERROR = 2
_STOP_SIGNALS: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
_CLOSE_SECONDS = 1.0
_LAST_LINES_SECONDS = 0.5


def _parser() -> argparse.ArgumentParser:
    import argparse  # noqa: PLC0415 - only commands and options need it, not the sidecar

    parser = argparse.ArgumentParser(
        prog="status-reporter",
        description="Kubernetes sidecar that records an adapter's result as a condition on its "
        "Job. Without a command it runs the sidecar, configured by environment variables.",
    )
    parser.add_argument("--version", action="version", version=f"status-reporter {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check-result",
        help="validate an adapter result file and print the condition it would produce",
        description="Validate an adapter result file offline and print the condition it would "
        "produce as one JSON object. Exit status: 0 valid, 1 invalid, 2 usage error.",
    )
    check.add_argument("path", help="the result file to check")
    return parser


def check_result(path: str) -> int:
    """Print the condition that the file at ``path`` would produce; 0 valid, 1 invalid."""
    state = read_result(resolve_results_path(path))
    if isinstance(state, ResultMissing):
        state = ResultInvalid(f"result file not found: {path}", 0)
    condition = result_verdict(state).condition
    document = {
        "status": condition.status,
        "reason": condition.reason,
        "message": condition.message,
    }
    sys.stdout.buffer.write(msgspec.json.encode(document) + b"\n")
    sys.stdout.flush()
    return 1 if isinstance(state, ResultInvalid) else 0


def _log_settings(env: Mapping[str, str]) -> tuple[LogLevel, LogFormat]:
    """Logging settings for a configuration error: the valid ones are honoured."""
    level, fmt = LogLevel.INFO, LogFormat.TEXT
    with contextlib.suppress(ValueError):
        level = LogLevel((env.get("LOG_LEVEL") or "info").strip().lower())
    with contextlib.suppress(ValueError):
        fmt = LogFormat((env.get("LOG_FORMAT") or "text").strip().lower())
    return level, fmt


def _connect(
    env: Mapping[str, str], pod: str, namespace: str, keepalive: TcpKeepalive | None
) -> tuple[HttpClient, HttpApi]:
    """The API for one Pod and its Job, from the in-cluster or kubeconfig credentials.

    Raises:
        CredentialsError: no usable credentials were found.
    """
    credentials = load_credentials(env, home=os.path.expanduser("~"))
    client = HttpClient(
        credentials.endpoint, keepalive=keepalive, user_agent=f"status-reporter/{__version__}"
    )
    return client, HttpApi(client, credentials, pod=pod, namespace=namespace)


async def _close(client: HttpClient, api: HttpApi) -> None:
    api.close()
    with contextlib.suppress(Exception, TimeoutError):
        await asyncio.wait_for(client.aclose(), _CLOSE_SECONDS)


async def _report_config_error(env: Mapping[str, str], line: str) -> None:
    """An invalid environment: on the Job when it can be named, and in the termination
    message in any case (start-up's configuration errors take the same way)."""
    report = error_report(env)
    log = logs.get_logger(job=report.job, namespace=report.namespace)
    clock = LoopClock()
    connection: tuple[HttpClient, HttpApi] | None = None
    writer: ConditionWriter | None = None
    if report.job:
        pod = (env.get("POD_NAME") or "").strip()
        try:
            connection = _connect(env, pod, report.namespace, None)
            api: Api = connection[1]
            ops = Operations.of(report.job, pod, report.namespace)
            writer = ConditionWriter(api, ops, report.condition_type, clock=clock, log=log)
        except CredentialsError as exc:
            log.debug("configuration error not recorded on the Job", error=str(exc))
    try:
        await record_config_error(
            writer,
            line,
            deadline=clock.now() + CONFIG_ERROR_SECONDS,
            condition_type=report.condition_type,
            termination_path=report.termination_path,
            log=log,
        )
    finally:
        if connection is not None:
            await _close(*connection)


def _on_signal(reporter: Reporter, log: logs.Logger, signum: int) -> None:
    if reporter.stopping:
        # A second stop: leave the last word and exit at once (the log lines said so
        # get a moment to leave, a stalled stdout no more).
        code = reporter.final_report()
        logs.flush(_LAST_LINES_SECONDS)
        os._exit(code)
    log.info("stop signal received", signal=signal.Signals(signum).name)
    reporter.stop()


def _exit_on_stop(code: int) -> None:
    """From now until the process ends, a stop exits at once with the decided ``code``.

    Installed while the event loop still runs, over its handlers, and never taken
    back: the loop is not closed (closing it would give the signals their default
    action, a death by signal, until the command line's own handler is in place).
    """

    def exit_now(_signum: int, _frame: object) -> None:
        logs.flush(_LAST_LINES_SECONDS)
        os._exit(code)

    for signum in _STOP_SIGNALS:
        signal.signal(signum, exit_now)


async def _run(config: Config, early: list[int], log: logs.Logger) -> int:
    try:
        client, api = _connect(
            os.environ,
            config.pod_name,
            config.job_namespace,
            # A watch on a connection that died silently is given up within two Pod
            # polling intervals (docs/design.md "Monitoring").
            TcpKeepalive.dead_within(2 * config.container_status_interval_seconds),
        )
    except CredentialsError as exc:
        log.error(f"cannot load Kubernetes credentials: {exc}")
        return ExitCode.WRITE_FAILED
    loop = asyncio.get_running_loop()
    reporter = Reporter(config, api, LoopClock(), log)
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, _on_signal, reporter, log, signum)
    for signum in early:
        _on_signal(reporter, log, signum)
    code: int = ExitCode.WRITE_FAILED
    try:
        code = await reporter.run()
    except Exception as exc:  # the last line of defence: one clear line, exit 3, last word left
        log.error("internal error", error=repr(exc))
        reporter.report_failure(f"internal error: {exc!r}")
    finally:
        _exit_on_stop(code)
        await _close(client, api)
    return code


def _peak_rss_mib() -> float | None:
    """Peak resident memory of this process (VmHWM), in MiB.

    Not ``ru_maxrss``: Linux carries that across exec, so it would report the
    peak of whatever process forked this one (the container runtime, a test).
    """
    # Bytes: decoding as text would import a codec for this one read at exit.
    try:
        with open("/proc/self/status", "rb", buffering=0) as status:
            text = status.read()
    except OSError:
        return None
    _, found, rest = text.partition(b"\nVmHWM:")
    if not found:
        return None
    return round(int(rest.split(maxsplit=1)[0]) / 1024, 1)


def run_sidecar(env: Mapping[str, str], early: list[int]) -> int:
    """Run the sidecar configured by ``env``; returns the exit code."""
    try:
        config = load(env)
    except ConfigError as exc:
        print(exc, file=sys.stderr, flush=True)
        logs.configure(*_log_settings(env), background=True)
        asyncio.run(_report_config_error(env, str(exc)))
        return ExitCode.CONFIG_INVALID
    logs.configure(config.log_level, config.log_format, background=True)
    log = logs.get_logger(job=config.job_name, namespace=config.job_namespace, pod=config.pod_name)
    # The loop is never closed: see _exit_on_stop (the process ends soon after).
    code = asyncio.Runner().run(_run(config, early, log))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    log.info(
        "exiting",
        exit_code=code,
        max_rss_mib=_peak_rss_mib(),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
    )
    return code


def main(argv: Sequence[str] | None, early: list[int]) -> int:
    """Run the command line; ``early`` holds stop signals received before this point."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments:
        # The sidecar takes no arguments: no need to build the parser on its start-up path.
        return run_sidecar(os.environ, early)
    try:
        args = _parser().parse_args(arguments)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else _USAGE_ERROR
    if args.command == "check-result":
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        for signum in early:
            signal.raise_signal(signum)
        return check_result(args.path)
    return run_sidecar(os.environ, early)
