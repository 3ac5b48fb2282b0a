"""Structured logging in the HyperFleet convention, on the standard library's ``logging``.

Every entry carries ``timestamp``, ``level``, ``message``, ``component``, ``version``
and ``hostname``, plus the ``job``, ``namespace`` and ``pod`` it is about.
``LOG_FORMAT=json`` writes one JSON object per line; ``text`` writes
``{timestamp} {LEVEL} [{component}] [{version}] [{hostname}] {message} key=value...``.

Logging never fails and never floods: any ``str`` renders (lone surrogates are
escaped), text values are quoted and escaped as logfmt does in text logs (no text can
add a field or a line), every line stays under 64 KiB, and an identical line repeated
within :data:`REPEAT_WINDOW_SECONDS` is dropped and counted.
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import BinaryIO, Final, Protocol

import msgspec

from status_reporter import __version__
from status_reporter.core.config import LogContextField, LogFormat, LogLevel, MetadataSource

COMPONENT: Final = "status-reporter"
# A rendered line, newline included, stays below 64 KiB.
LINE_LIMIT_BYTES: Final = 64 * 1024 - 1
REPEAT_WINDOW_SECONDS: Final = 10.0
# Lines that may wait for a stalled stdout (each below 64 KiB) before more are dropped.
BACKLOG_LINES: Final = 256
_REPEAT_KEYS: Final = 256
# A carried label or annotation value (LOG_CONTEXT) is cut to this many characters:
# label values have at most 63, annotations may hold kilobytes.
CONTEXT_VALUE_LIMIT: Final = 256
_LEVELS: Final = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARN: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}
_NAMES: Final = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn"}
_FIELDS: Final = "status_reporter_fields"
_LOGGER: Final = logging.getLogger("status_reporter")

# Inside a quoted text value, as logfmt escapes (JSON's escapes): the quote, the
# backslash, C0 and C1 controls and DEL. Anything else that is not printable (line
# separators, lone surrogates, format characters) is escaped as \uXXXX after this.
_QUOTED_ESCAPES: Final = {
    **{code: f"\\u{code:04x}" for code in (*range(0x20), *range(0x7F, 0xA0))},
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
# A bare value ends at a space, and a reader takes "=" or a quote in one as the start
# of another field; a backslash is kept out of bare text so that it never reads as an
# escape.
_NOT_BARE_VALUE: Final = (" ", "=", '"', "\\")
# A message is free text, so spaces stay bare in it; the rest needs quotes as in a value.
_NOT_BARE_MESSAGE: Final = ("=", '"', "\\")
# What JSON leaves raw inside strings of the same set: DEL, the C1 controls and the
# line separators. In valid UTF-8 these bytes only occur as those characters. A
# pattern that re compiles on first use: most lines are ASCII without DEL and never
# need it, and compiling it at import cost every start-up 0.6 M instructions.
_JSON_UNESCAPED: Final = rb"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]"


class RawJson(msgspec.Struct, frozen=True):
    """A value that is already JSON text (such as a result's ``details``)."""

    text: bytes


def _unicode_escape(char: str) -> str:
    """``char`` as a JSON escape (a UTF-16 pair beyond U+FFFF)."""
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _quoted(text: str) -> str:
    """``text`` as a quoted logfmt value: one token, whatever it holds, on one line."""
    escaped = text.translate(_QUOTED_ESCAPES)
    if not escaped.isprintable():
        escaped = "".join(ch if ch.isprintable() else _unicode_escape(ch) for ch in escaped)
    return f'"{escaped}"'


def _logfmt(text: str, unsafe: tuple[str, ...]) -> str:
    """``text`` bare when no character of it could end it or start another field."""
    if text and text.isprintable() and not any(char in text for char in unsafe):
        return text
    return _quoted(text)


def _text_value(value: object) -> str:
    """A field's value in a text line: quoted as logfmt quotes it, so that no text an
    adapter supplies (a result's ``details``, an error) can add or fake a field."""
    if isinstance(value, RawJson):
        text = value.text.decode("utf-8", "backslashreplace")
    elif isinstance(value, str):
        text = value
    else:
        text = _json(value).decode("utf-8")
    return _logfmt(text, _NOT_BARE_VALUE)


def _enc_hook(value: object) -> object:
    return str(value)


def _encodable(value: object) -> object:
    return msgspec.Raw(value.text) if isinstance(value, RawJson) else value


def _sanitised(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _json(document: object) -> bytes:
    try:
        encoded = msgspec.json.encode(document, enc_hook=_enc_hook)
    except UnicodeEncodeError:
        if not isinstance(document, dict):
            document = _sanitised(document)
        else:
            document = {key: _sanitised(value) for key, value in document.items()}
        encoded = msgspec.json.encode(document, enc_hook=_enc_hook)
    if encoded.isascii() and b"\x7f" not in encoded:
        return encoded
    return re.sub(_JSON_UNESCAPED, _json_escape, encoded)


def _json_escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode("utf-8"))


class _Formatter(logging.Formatter):
    """Renders a record as one line of bytes, text or JSON, below the size limit."""

    def __init__(self, fmt: LogFormat) -> None:
        super().__init__()
        self._json = fmt is LogFormat.JSON
        self._static = {
            "component": COMPONENT,
            "version": __version__,
            "hostname": socket.gethostname(),
        }

    def render(self, record: logging.LogRecord) -> bytes:
        """The record as one line, newline included, shrinking fields that are too long."""
        fields: dict[str, object] = dict(getattr(record, _FIELDS, {}))
        message = record.getMessage()
        for _ in range(6):
            line = self._line(record, message, fields)
            excess = len(line) - LINE_LIMIT_BYTES
            if excess <= 0:
                return line
            key = max(fields, key=lambda k: _size(fields[k]), default=None)
            if key is None or not _size(fields[key]):
                break
            fields[key] = self._shorten(fields[key], excess)
            fields[f"{key}_truncated"] = True
        return self._line(record, message[:1024], {"log_line_truncated": True})

    def _shorten(self, value: object, excess: int) -> str:
        """Cut a text so that its rendering loses at least ``excess`` bytes (and a margin)."""
        text = (
            value.text.decode("utf-8", "backslashreplace") if isinstance(value, RawJson) else value
        )
        assert isinstance(text, str)
        rendered = len(_json(text)) if self._json else len(_text_value(text).encode())
        keep = len(text) * max(0, rendered - excess - 256) // max(1, rendered)
        return text[:keep] + "…"

    def _line(self, record: logging.LogRecord, message: str, fields: dict[str, object]) -> bytes:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        timestamp = f"{stamp}.{int(record.msecs):03d}Z"
        level = _NAMES.get(record.levelno, "error")
        if self._json:
            document = {
                "timestamp": timestamp,
                "level": level,
                "message": message,
                **self._static,
                **{k: _encodable(v) for k, v in fields.items() if k not in self._static},
            }
            return _json(document) + b"\n"
        static = self._static
        head = (
            f"{timestamp} {level.upper():<5} [{static['component']}] [{static['version']}] "
            f"[{static['hostname']}] {_logfmt(message, _NOT_BARE_MESSAGE)}"
        )
        parts = [head, *(f"{key}={_text_value(value)}" for key, value in fields.items())]
        return (" ".join(parts) + "\n").encode("utf-8", "backslashreplace")


def _size(value: object) -> int:
    if isinstance(value, RawJson):
        return len(value.text)
    return len(value) if isinstance(value, str) else 0


class _Repeats(logging.Filter):
    """Drops a line identical to one logged less than the window ago, and counts it."""

    def __init__(self, window: float = REPEAT_WINDOW_SECONDS) -> None:
        super().__init__()
        self._window = window
        self._recent: OrderedDict[tuple[object, ...], tuple[float, int]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        """True to emit ``record``; adds ``repeated=N`` after dropped repeats."""
        fields = getattr(record, _FIELDS, {})
        key = (record.levelno, record.msg, repr(sorted(fields.items())))
        now = time.monotonic()
        last, dropped = self._recent.pop(key, (None, 0))
        if last is not None and now - last < self._window:
            self._recent[key] = (last, dropped + 1)
            return False
        if dropped:
            setattr(record, _FIELDS, {**fields, "repeated": dropped})
        self._recent[key] = (now, 0)
        while len(self._recent) > _REPEAT_KEYS:
            self._recent.popitem(last=False)
        return True


def _write(stream: BinaryIO | None, line: bytes) -> None:
    """Write one line to ``stream`` (by default stdout as it is now); failures are dropped."""
    try:
        out = stream or sys.stdout.buffer
        out.write(line)
        out.flush()
    except Exception:
        return


class _Background:
    """Writes lines from a thread of its own, so that a stalled stdout (a log pipe that
    nobody reads) never blocks the caller: the event loop, and so the condition's
    write, go on. At most :data:`BACKLOG_LINES` lines wait; more are dropped, counted,
    and the count is written once the stream moves again."""

    def __init__(self, stream: BinaryIO | None) -> None:
        self._stream = stream
        self._lines: queue.SimpleQueue[bytes | threading.Event] = queue.SimpleQueue()
        self._waiting = 0
        self._dropped = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="log-writer", daemon=True).start()

    def put(self, line: bytes) -> None:
        """Queue ``line``; drop it when the backlog is full."""
        with self._lock:
            if self._waiting >= BACKLOG_LINES:
                self._dropped += 1
                return
            self._waiting += 1
        self._lines.put(line)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every queued line to be written."""
        done = threading.Event()
        self._lines.put(done)
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._lines.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            _write(self._stream, item)
            with self._lock:
                self._waiting -= 1
                dropped, self._dropped = self._dropped, 0
            if dropped:
                _write(self._stream, f"{dropped} log lines dropped: stdout was not read\n".encode())


class _Handler(logging.Handler):
    """Renders a record and writes it: at once, or through a background writer."""

    def __init__(self, formatter: _Formatter, stream: BinaryIO | None, background: bool) -> None:
        super().__init__()
        self._render = formatter.render
        self._stream = stream
        self.background = _Background(stream) if background else None

    def emit(self, record: logging.LogRecord) -> None:
        """Render and write one line; a failure is dropped, never raised into the caller."""
        try:
            line = self._render(record)
        except Exception:
            return
        if self.background is not None:
            self.background.put(line)
        else:
            _write(self._stream, line)


class Labelled(Protocol):
    """An object's metadata as far as the log context reads it."""

    @property
    def labels(self) -> Mapping[str, str]:
        """``metadata.labels``."""

    @property
    def annotations(self) -> Mapping[str, str]:
        """``metadata.annotations``."""


def carried(fields: Sequence[LogContextField], *objects: Labelled) -> dict[str, str]:
    """The ``LOG_CONTEXT`` fields found on ``objects`` (the first that has the key
    wins), each value cut to :data:`CONTEXT_VALUE_LIMIT` characters; a key found on
    none of them is left out."""
    context: dict[str, str] = {}
    for field in fields:
        for item in objects:
            found = item.labels if field.source is MetadataSource.LABEL else item.annotations
            value = found.get(field.key)
            if value is not None:
                cut = len(value) > CONTEXT_VALUE_LIMIT
                context[field.name] = value[:CONTEXT_VALUE_LIMIT] + "…" if cut else value
                break
    return context


class Logger:
    """A logger with bound context fields: ``log.info("message", key=value)``."""

    __slots__ = ("_context",)

    def __init__(self, context: dict[str, object]) -> None:
        self._context = context

    def bind(self, **context: object) -> None:
        """Add or replace context fields for every later line of this logger (and its
        sharers): the Job's name once the Pod's owner has told it."""
        self._context.update(context)

    def _log(self, level: int, message: str, fields: dict[str, object]) -> None:
        if _LOGGER.isEnabledFor(level):
            _LOGGER.log(level, message, extra={_FIELDS: {**self._context, **fields}})

    def debug(self, message: str, **fields: object) -> None:
        """Log at debug level."""
        self._log(logging.DEBUG, message, fields)

    def info(self, message: str, **fields: object) -> None:
        """Log at info level."""
        self._log(logging.INFO, message, fields)

    def warning(self, message: str, **fields: object) -> None:
        """Log at warn level."""
        self._log(logging.WARNING, message, fields)

    def error(self, message: str, **fields: object) -> None:
        """Log at error level."""
        self._log(logging.ERROR, message, fields)


def configure(
    level: LogLevel = LogLevel.INFO,
    fmt: LogFormat = LogFormat.TEXT,
    stream: BinaryIO | None = None,
    *,
    background: bool = False,
) -> None:
    """Set up the process-wide logger. Safe to call again (tests, configuration errors).

    With ``background`` lines are written by a thread of their own (the sidecar: a
    stalled stdout must never delay the condition); :func:`flush` waits for them.
    """
    logging.raiseExceptions = False
    handler = _Handler(_Formatter(fmt), stream, background)
    handler.addFilter(_Repeats())
    for old in list(_LOGGER.handlers):
        _LOGGER.removeHandler(old)
    _LOGGER.addHandler(handler)
    _LOGGER.setLevel(_LEVELS[level])
    _LOGGER.propagate = False


def flush(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the background writer; True when all is out."""
    for handler in _LOGGER.handlers:
        if isinstance(handler, _Handler) and handler.background is not None:
            return handler.background.flush(timeout)
    return True


def get_logger(**context: object) -> Logger:
    """Return a logger bound to ``context`` (for example job, namespace and pod)."""
    return Logger(dict(context))
