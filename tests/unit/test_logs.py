"""Log entries follow the HyperFleet convention in both formats and honour LOG_LEVEL."""

from __future__ import annotations

import io
import json
import re
import socket
from collections.abc import Iterator

import pytest

from status_reporter import __version__, logs
from status_reporter.config import LogFormat, LogLevel


@pytest.fixture(autouse=True)
def _restore_default_logging() -> Iterator[None]:
    yield
    logs.configure()


def capture(level: LogLevel, fmt: LogFormat) -> io.StringIO:
    stream = io.StringIO()
    logs.configure(level, fmt, stream)
    return stream


def test_json_entries_carry_the_convention_fields() -> None:
    stream = capture(LogLevel.INFO, LogFormat.JSON)
    logs.get_logger(job="j", namespace="n", pod="p").info("condition written", reason="Ok")
    entry = json.loads(stream.getvalue())
    assert list(entry)[:6] == ["timestamp", "level", "message", "component", "version", "hostname"]
    assert entry["level"] == "info"
    assert entry["message"] == "condition written"
    assert entry["component"] == "status-reporter"
    assert entry["version"] == __version__
    assert entry["hostname"] == socket.gethostname()
    assert (entry["job"], entry["namespace"], entry["pod"], entry["reason"]) == (
        "j",
        "n",
        "p",
        "Ok",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["timestamp"])


def test_text_entries() -> None:
    stream = capture(LogLevel.INFO, LogFormat.TEXT)
    logs.get_logger(job="j").warning(
        "slow API", retry_in=1.5, error='said "no"', details={"a": [1]}
    )
    line = stream.getvalue().rstrip("\n")
    assert "\n" not in line
    assert re.fullmatch(
        r"\S+Z WARN  \[status-reporter\] \[[^\]]+\] \[[^\]]+\] slow API "
        r'job=j retry_in=1.5 error="said \\"no\\"" details=\{"a":\[1\]\}',
        line,
    ), line


def test_level_filter_and_warn_name() -> None:
    stream = capture(LogLevel.WARN, LogFormat.JSON)
    log = logs.get_logger()
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    levels = [json.loads(line)["level"] for line in stream.getvalue().splitlines()]
    assert levels == ["warn", "error"]
    stream = capture(LogLevel.DEBUG, LogFormat.JSON)
    logs.get_logger().debug("d")
    assert json.loads(stream.getvalue())["level"] == "debug"


def test_unicode_is_written_as_is() -> None:
    stream = capture(LogLevel.INFO, LogFormat.JSON)
    logs.get_logger().info("Grüße ✓")
    assert "Grüße ✓" in stream.getvalue()
