"""Structured logging in the HyperFleet convention.

Every entry carries ``timestamp``, ``level``, ``message``, ``component``,
``version`` and ``hostname``, plus the ``job``, ``namespace`` and ``pod`` it is
about. ``LOG_FORMAT=json`` writes one JSON object per line; ``text`` writes
``{timestamp} {LEVEL} [{component}] [{version}] [{hostname}] {message} key=value...``.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

from status_reporter import __version__
from status_reporter.config import LogFormat, LogLevel

COMPONENT = "status-reporter"
_HEADER = ("timestamp", "level", "message", "component", "version", "hostname")
_LEVELS = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARN: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}

Logger = structlog.typing.FilteringBoundLogger


def _stamp(_: object, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    now = datetime.now(UTC)
    event["timestamp"] = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    # structlog calls the level "warning"; the convention's name is "warn".
    event["level"] = "warn" if method in ("warn", "warning") else method
    event["message"] = event.pop("event", "")
    return event


def _text_value(value: object) -> str:
    if not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if value and not any(ch.isspace() or ch in '"=' for ch in value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _render_text(_: object, __: str, event: MutableMapping[str, Any]) -> str:
    head = (
        f"{event['timestamp']} {event['level'].upper():<5} [{event['component']}] "
        f"[{event['version']}] [{event['hostname']}] {event['message']}"
    )
    fields = " ".join(f"{k}={_text_value(v)}" for k, v in event.items() if k not in _HEADER)
    return f"{head} {fields}" if fields else head


def _render_json(_: object, __: str, event: MutableMapping[str, Any]) -> str:
    ordered = {key: event[key] for key in _HEADER} | {
        key: value for key, value in event.items() if key not in _HEADER
    }
    return json.dumps(ordered, ensure_ascii=False, default=str)


def configure(
    level: LogLevel = LogLevel.INFO,
    fmt: LogFormat = LogFormat.TEXT,
    stream: TextIO | None = None,
) -> None:
    """Set up the process-wide logger. Safe to call again (tests, configuration errors)."""
    static = {"component": COMPONENT, "version": __version__, "hostname": socket.gethostname()}

    def add_static(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in static.items():
            event.setdefault(key, value)
        return event

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _stamp,
            add_static,
            _render_json if fmt is LogFormat.JSON else _render_text,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        # None: print to whatever sys.stdout is at the time of each entry.
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**context: object) -> Logger:
    """Return a logger bound to ``context`` (for example job, namespace and pod)."""
    logger: Logger = structlog.get_logger().bind(**context)
    return logger
