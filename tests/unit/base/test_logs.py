"""Log entries follow the HyperFleet convention in both formats, honour LOG_LEVEL, and
never fail, flood or let adapter text forge lines."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from harness.checks import stalled_pipe
from harness.logfmt import logfmt_fields
from hypothesis import given, settings
from hypothesis import strategies as st

from status_reporter import __version__
from status_reporter.base import logs
from status_reporter.base.logs import LINE_LIMIT_BYTES, RawJson
from status_reporter.core.config import LogFormat, LogLevel


@pytest.fixture(autouse=True)
def _restore_default_logging() -> Iterator[None]:
    yield
    logs.configure()


def capture(level: LogLevel = LogLevel.INFO, fmt: LogFormat = LogFormat.TEXT) -> io.BytesIO:
    stream = io.BytesIO()
    logs.configure(level, fmt, stream)
    return stream


def lines(stream: io.BytesIO) -> list[str]:
    return stream.getvalue().decode("utf-8").splitlines()


def test_json_entries_carry_the_convention_fields() -> None:
    stream = capture(fmt=LogFormat.JSON)
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
    stream = capture()
    logs.get_logger(job="j").warning(
        "slow API", retry_in=1.5, error='said "no"', details={"a": [1]}, gone=None
    )
    (line,) = lines(stream)
    assert re.fullmatch(
        r"\S+Z WARN  \[status-reporter\] \[[^\]]+\] \[[^\]]+\] slow API "
        r'job=j retry_in=1.5 error="said \\"no\\"" details="\{\\"a\\":\[1\]\}" gone=null',
        line,
    ), line


def test_raw_json_is_embedded_as_json() -> None:
    stream = capture(fmt=LogFormat.JSON)
    logs.get_logger().info("details", details=RawJson(b'{"a": [1, 2]}'))
    assert json.loads(stream.getvalue())["details"] == {"a": [1, 2]}
    stream = capture()
    logs.get_logger().info("details", details=RawJson(b'{"a":\n [1, 2]}'))
    assert lines(stream)[0].endswith('details="{\\"a\\":\\n [1, 2]}"')


def test_level_filter_and_warn_name() -> None:
    stream = capture(LogLevel.WARN, LogFormat.JSON)
    log = logs.get_logger()
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [json.loads(line)["level"] for line in lines(stream)] == ["warn", "error"]
    stream = capture(LogLevel.DEBUG, LogFormat.JSON)
    logs.get_logger().debug("d")
    assert json.loads(stream.getvalue())["level"] == "debug"


def test_unicode_is_written_as_is() -> None:
    stream = capture(fmt=LogFormat.JSON)
    logs.get_logger().info("Grüße ✓")
    assert "Grüße ✓" in stream.getvalue().decode()


# --- adapter-supplied text cannot forge lines or escape sequences ------------------------

HOSTILE = "ok\x1b[31mred\x07\x00\x85next\u2028line\u2029para\nnew\rline\x7f"


@pytest.mark.parametrize("fmt", [LogFormat.TEXT, LogFormat.JSON])
def test_control_characters_are_escaped(fmt: LogFormat) -> None:
    stream = capture(fmt=fmt)
    logs.get_logger().info(HOSTILE, reason=HOSTILE)
    raw = stream.getvalue().decode("utf-8")
    assert raw.count("\n") == 1
    assert raw.endswith("\n")
    for char in "\x1b\x07\x00\x85\u2028\u2029\r\x7f":
        assert char not in raw
    if fmt is LogFormat.JSON:
        assert json.loads(raw)["reason"] == HOSTILE
    else:
        quoted = (
            '"ok\\u001b[31mred\\u0007\\u0000\\u0085next\\u2028line\\u2029para\\nnew\\rline\\u007f"'
        )
        # The message and the value alike: quoted, with logfmt's (JSON's) escapes.
        assert f"] {quoted} reason={quoted}" in raw


# --- text logs quote as logfmt does: no text can add or fake a field ------------------------


FORGED = " job=victim-job level=error reason=Forged "


def test_a_forged_field_in_details_stays_inside_its_value() -> None:
    stream = capture()
    details = json.dumps({"note": FORGED}).encode()
    logs.get_logger(job="j").info("adapter result details", details=RawJson(details))
    (line,) = lines(stream)
    assert logfmt_fields(line) == {"job": "j", "details": details.decode()}


@pytest.mark.parametrize(
    "value",
    [FORGED, json.dumps(FORGED), "a=b", '"', "\\", "", "x\\", 'x\\" job=v', "a\xa0b=c", "\u2028"],
)
def test_text_values_are_quoted_when_a_reader_could_split_them(value: str) -> None:
    stream = capture()
    logs.get_logger(job="j").info("adapter result", reason=value, error=value)
    (line,) = lines(stream)
    assert logfmt_fields(line) == {"job": "j", "reason": value, "error": value}


def test_safe_values_stay_bare() -> None:
    stream = capture()
    logs.get_logger(job="j").info("condition written", reason="Ok", path="/results/r.json")
    assert lines(stream)[0].endswith(" condition written job=j reason=Ok path=/results/r.json")


def test_a_message_that_could_hold_a_field_is_quoted() -> None:
    stream = capture()
    logs.get_logger(job="j").error(f"cannot load credentials:{FORGED}")
    (line,) = lines(stream)
    assert logfmt_fields(line) == {"job": "j"}
    assert f'"cannot load credentials:{FORGED}" job=j' in line


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["reason", "error", "details", "path"]), st.text()))
def test_any_text_reads_back_as_exactly_its_fields(values: dict[str, str]) -> None:
    stream = capture()
    logs.get_logger(job="j").info("adapter result", **values)
    (line,) = lines(stream)
    assert logfmt_fields(line) == {"job": "j", **values}


@pytest.mark.parametrize("fmt", [LogFormat.TEXT, LogFormat.JSON])
def test_lone_surrogates_render(fmt: LogFormat) -> None:
    stream = capture(fmt=fmt)
    logs.get_logger().info("bad \udcff", path="/results/\udcfe.json")
    raw = stream.getvalue().decode("utf-8")
    assert "\\udcff" in raw
    assert "\\udcfe" in raw


def test_lone_surrogates_reach_a_real_stdout() -> None:
    # Through the process's own stdout, whose encoding a StringIO would not exercise.
    script = (
        "from status_reporter.base import logs\n"
        "logs.configure()\n"
        "logs.get_logger().info('x\\udcff', field='y\\ud800')\n"
        "print('after', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        env={"PYTHONIOENCODING": "ascii"},
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("utf-8")
    assert "x\\udcff" in out
    assert "after" in out


@pytest.mark.parametrize("fmt", [LogFormat.TEXT, LogFormat.JSON])
@pytest.mark.parametrize(
    "details",
    [
        RawJson(json.dumps('"' * 200_000).encode()),
        RawJson(b"[" + b",".join([b'"\\u0001"'] * 30_000) + b"]"),
        "\x01" * 100_000,
        "x" * 500_000,
    ],
)
def test_every_line_stays_below_64_kib(fmt: LogFormat, details: object) -> None:
    stream = capture(fmt=fmt)
    logs.get_logger(job="j").info("adapter result details", details=details, other="kept")
    (line,) = lines(stream)
    assert len(line.encode()) + 1 <= LINE_LIMIT_BYTES
    assert "details_truncated" in line
    if fmt is LogFormat.JSON:
        assert json.loads(line)["other"] == "kept"


def test_a_huge_message_is_cut_too() -> None:
    stream = capture()
    logs.get_logger().info("m" * 200_000)
    (line,) = lines(stream)
    assert len(line.encode()) < LINE_LIMIT_BYTES
    assert "log_line_truncated=true" in line


# --- repeats ---------------------------------------------------------------------------------


def test_identical_lines_are_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("status_reporter.base.logs.time.monotonic", lambda: now[0])
    stream = capture()
    log = logs.get_logger()
    for _ in range(500):
        log.info("result file is not valid yet", error="invalid JSON")
    log.info("result file is not valid yet", error="another error")
    now[0] += logs.REPEAT_WINDOW_SECONDS
    log.info("result file is not valid yet", error="invalid JSON")
    out = lines(stream)
    assert len(out) == 3
    assert out[0].endswith('error="invalid JSON"')
    assert out[2].endswith('error="invalid JSON" repeated=499')


def test_a_stalled_stdout_never_blocks_the_caller() -> None:
    read_end, write_end = stalled_pipe()
    with os.fdopen(write_end, "wb", buffering=0) as stream, os.fdopen(read_end, "rb") as reader:
        logs.configure(stream=stream, background=True)
        log = logs.get_logger()
        started = time.monotonic()
        for number in range(logs.BACKLOG_LINES + 100):
            log.info("line", number=number)
        assert time.monotonic() - started < 1.0  # nothing waited for the pipe
        assert not logs.flush(0.2)  # the lines are still waiting
        drained = bytearray()
        reading = threading.Thread(target=lambda: drained.extend(reader.read()))
        reading.start()
        assert logs.flush(5.0)
        stream.close()
        reading.join(5.0)
    text = drained.replace(b"x", b"").decode()
    numbers = [int(n) for n in re.findall(r"number=(\d+)", text)]
    # What fitted the backlog arrives in order; the rest is counted, not lost silently.
    assert numbers == list(range(len(numbers)))
    assert logs.BACKLOG_LINES <= len(numbers) <= logs.BACKLOG_LINES + 1
    dropped = int(re.search(r"(\d+) log lines dropped: stdout was not read", text).group(1))  # type: ignore[union-attr]
    assert len(numbers) + dropped == logs.BACKLOG_LINES + 100
