"""Command line: ``status-reporter`` runs the sidecar; ``check-result PATH`` checks a file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
from collections.abc import Mapping, Sequence

from status_reporter import __version__, logs
from status_reporter.config import Config, ConfigError, LogFormat, LogLevel, job_ref, load
from status_reporter.contract import ResultInvalid, ResultMissing, read_result
from status_reporter.decision import result_verdict
from status_reporter.engine import ExitCode, Reporter
from status_reporter.kube import KubeCluster, KubeError, load_client
from status_reporter.watch import LoopClock

_USAGE_ERROR = 2


def _parser() -> argparse.ArgumentParser:
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
    state = read_result(path)
    if isinstance(state, ResultMissing):
        state = ResultInvalid(f"result file not found: {path}", b"")
    condition = result_verdict(state).condition
    document = {
        "status": condition.status,
        "reason": condition.reason,
        "message": condition.message,
    }
    sys.stdout.buffer.write(json.dumps(document, ensure_ascii=False).encode() + b"\n")
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


async def _report_config_error(env: Mapping[str, str], line: str) -> None:
    ref = job_ref(env)
    if ref is None:
        return
    log = logs.get_logger(job=ref.name, namespace=ref.namespace)
    try:
        client = load_client(timeout=2.0)
    except KubeError as exc:
        log.debug("configuration error not recorded on the Job", error=str(exc))
        return
    async with client:
        cluster = KubeCluster(
            client,
            job=ref.name,
            namespace=ref.namespace,
            pod=(env.get("POD_NAME") or "").strip(),
            condition_type=ref.condition_type,
            clock=LoopClock(),
            log=log,
        )
        await cluster.report_config_error(line)


async def _run(config: Config) -> int:
    log = logs.get_logger(job=config.job_name, namespace=config.job_namespace, pod=config.pod_name)
    try:
        client = load_client()
    except KubeError as exc:
        log.error(str(exc))
        return ExitCode.WRITE_FAILED
    loop = asyncio.get_running_loop()
    async with client:
        clock = LoopClock()
        cluster = KubeCluster(
            client,
            job=config.job_name,
            namespace=config.job_namespace,
            pod=config.pod_name,
            condition_type=config.condition_type,
            clock=clock,
            log=log,
            watch_timeout=config.max_wait_time_seconds + 60,
        )
        reporter = Reporter(config, cluster, clock, log)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _on_signal, reporter, log, signum)
        code: int = ExitCode.WRITE_FAILED
        try:
            code = await reporter.run()
        except Exception as exc:  # last line of defence: one clear line and exit 3
            log.error(
                "internal error", error=repr(exc), exc_info=config.log_level is LogLevel.DEBUG
            )
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    log.info(
        "exiting",
        exit_code=int(code),
        max_rss_mib=_peak_rss_mib(),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
    )
    return int(code)


def _peak_rss_mib() -> float | None:
    """Peak resident memory of this process (VmHWM), in MiB.

    Not ``ru_maxrss``: Linux carries that across exec, so it would report the
    peak of whatever process forked this one (the container runtime, a test).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _on_signal(reporter: Reporter, log: logs.Logger, signum: int) -> None:
    log.info("stop signal received", signal=signal.Signals(signum).name)
    reporter.stop()


def run_sidecar(env: Mapping[str, str]) -> int:
    """Run the sidecar configured by ``env``; returns the exit code (SPEC §6)."""
    try:
        config = load(env)
    except ConfigError as exc:
        print(exc, file=sys.stderr, flush=True)
        logs.configure(*_log_settings(env))
        asyncio.run(_report_config_error(env, str(exc)))
        return ExitCode.CONFIG_INVALID
    logs.configure(config.log_level, config.log_format)
    return asyncio.run(_run(config))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``status-reporter`` console script."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else _USAGE_ERROR
    if args.command == "check-result":
        return check_result(args.path)
    return run_sidecar(os.environ)
