"""The adapter result contract (SPEC §2): reading the result file safely and parsing it.

:func:`read_result` is the only function here that touches the file system; the
rest is pure and turns bytes into a :data:`ResultState`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from typing import Final, Literal

MAX_RESULT_BYTES: Final = 1024 * 1024
REASON_LIMIT_BYTES: Final = 128
MESSAGE_LIMIT_BYTES: Final = 1024
DEFAULT_REASON: Final = "NoReasonProvided"
DEFAULT_MESSAGE: Final = "No message provided"
DETAILS_LOG_LIMIT_BYTES: Final = 60 * 1024

# Unicode White_Space: what Go's strings.TrimSpace removes. str.strip() would also
# remove U+001C..U+001F, which are not white space, and differ from the reference.
_WHITESPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Python's int() refuses numbers longer than this; such numbers are valid JSON.
_MAX_INT_DIGITS: Final = 4000

Status = Literal["success", "failure"]


@dataclass(frozen=True, slots=True)
class AdapterResult:
    """A valid, normalised adapter result."""

    status: Status
    reason: str
    message: str
    details: object = None
    has_details: bool = False


@dataclass(frozen=True, slots=True)
class ResultMissing:
    """No file at the results path (or its directory does not exist yet)."""


@dataclass(frozen=True, slots=True)
class ResultInvalid:
    """Something is at the results path but it is not a valid result.

    ``fingerprint`` identifies what was read, so that a caller can tell whether an
    invalid file is still being written (it changes) or has settled (it does not).
    """

    error: str
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class ResultValid:
    """A valid result was read."""

    result: AdapterResult


ResultState = ResultMissing | ResultInvalid | ResultValid


class _Invalid(Exception):
    """Raised inside the parser; becomes a ResultInvalid."""


def truncate_utf8(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` bytes of UTF-8 without splitting a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    cut = limit
    # Step back over continuation bytes (0b10xxxxxx) to the start of a character.
    while cut > 0 and encoded[cut] & 0xC0 == 0x80:
        cut -= 1
    return encoded[:cut].decode("utf-8")


def trim(text: str) -> str:
    """Remove leading and trailing Unicode white space."""
    return text.strip(_WHITESPACE)


def _text_field(document: dict[str, object], key: str, default: str, limit: int) -> str:
    value = document.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _Invalid(f"{key}: must be a string or null, got {_json_type(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid(f"{key}: contains an unpaired UTF-16 surrogate escape") from None
    trimmed = trim(value)
    if not trimmed:
        return default
    return truncate_utf8(trimmed, limit)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _reject_constant(name: str) -> object:
    raise _Invalid(f"invalid JSON: {name} is not allowed")


def _parse_int(digits: str) -> object:
    return int(digits) if len(digits) <= _MAX_INT_DIGITS else float(digits)


def _decode(data: bytes) -> object:
    if not data.strip():
        raise _Invalid("file is empty")
    if len(data) > MAX_RESULT_BYTES:
        raise _Invalid(f"file is larger than 1 MiB ({MAX_RESULT_BYTES} bytes)")
    try:
        # A leading byte order mark is tolerated, as RFC 8259 §8.1 allows.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Invalid(f"file is not valid UTF-8 (invalid byte at offset {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _Invalid("invalid JSON: nested too deeply") from None


def parse_result(data: bytes) -> ResultValid | ResultInvalid:
    """Parse and normalise the bytes of a result file. Never raises."""
    fingerprint = hashlib.blake2b(data, digest_size=16).digest()
    try:
        document = _decode(data)
        if not isinstance(document, dict):
            raise _Invalid(f"top level must be a JSON object, got {_json_type(document)}")
        status = document.get("status")
        if status not in ("success", "failure"):
            raise _Invalid("status: must be either 'success' or 'failure'")
        reason = _text_field(document, "reason", DEFAULT_REASON, REASON_LIMIT_BYTES)
        message = _text_field(document, "message", DEFAULT_MESSAGE, MESSAGE_LIMIT_BYTES)
    except _Invalid as exc:
        return ResultInvalid(error=str(exc), fingerprint=fingerprint)
    return ResultValid(
        AdapterResult(
            status=status,
            reason=reason,
            message=message,
            details=document.get("details"),
            has_details="details" in document,
        )
    )


_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(mode: int) -> ResultInvalid | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    error = f"result path is {kind}, not a regular file"
    return ResultInvalid(error=error, fingerprint=error.encode())


def _os_error(exc: OSError) -> ResultInvalid:
    error = f"cannot read result file: {os.strerror(exc.errno or 0)}"
    return ResultInvalid(error=error, fingerprint=error.encode())


def read_result(path: str) -> ResultState:
    """Read and parse the result file at ``path`` without following symlinks or blocking.

    A missing file (or a missing directory) is :class:`ResultMissing`. Whatever size
    ``stat`` reports, at most ``MAX_RESULT_BYTES + 1`` bytes are read.
    """
    try:
        # lstat first so that devices and FIFOs are never opened at all.
        invalid = _not_regular(os.lstat(path).st_mode)
        if invalid is not None:
            return invalid
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return ResultMissing()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _not_regular(stat.S_IFLNK) or _os_error(exc)
        return _os_error(exc)
    try:
        # Checked again on the descriptor: the path may have been replaced since lstat.
        invalid = _not_regular(os.fstat(fd).st_mode)
        if invalid is not None:
            return invalid
        chunks: list[bytes] = []
        remaining = MAX_RESULT_BYTES + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 256 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        return _os_error(exc)
    finally:
        os.close(fd)
    return parse_result(b"".join(chunks))


def render_details(details: object, limit: int = DETAILS_LOG_LIMIT_BYTES) -> tuple[str, bool]:
    """Serialise ``details`` for the log as compact JSON, cut to ``limit`` bytes.

    Returns the text and whether it was truncated, so a log entry stays under 64 KiB.
    """
    text = json.dumps(details, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        cut = truncate_utf8(text, limit)
    except UnicodeError:
        text = json.dumps(details, separators=(",", ":"), default=str)
        cut = truncate_utf8(text, limit)
    return cut, cut != text
