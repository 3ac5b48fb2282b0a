"""The adapter result contract (README "The adapter contract"): reading the result file
safely and parsing it.

:func:`read_result` and :func:`resolve_results_path` are the only functions here that
touch the file system; the rest is pure and turns bytes into a :data:`ResultState`.

Parsing never builds Python objects for ``details`` or for keys the contract does
not read: msgspec validates the whole document but keeps ``details`` as a slice of
the input. A 1 MiB file of ``[[],[],…]`` therefore costs about its own size in
memory, not the tens of MiB that a full ``json.loads`` would take. Nothing else on
the way grows with the number of values or escapes in the file either: at most a
copy of it, the ``reason`` and ``message`` strings, and ``details``.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
import stat
import sys
import threading
from itertools import accumulate
from typing import Final, Literal

import msgspec

MAX_RESULT_BYTES: Final = 1024 * 1024
REASON_LIMIT_BYTES: Final = 128
MESSAGE_LIMIT_BYTES: Final = 1024
DEFAULT_REASON: Final = "NoReasonProvided"
DEFAULT_MESSAGE: Final = "No message provided"
DETAILS_LOG_LIMIT_BYTES: Final = 60 * 1024
# Go's encoding/json refuses a document nested deeper than this, its top-level value
# counted (maxNestingDepth): 9,999 levels inside the result's object.
MAX_NESTING_DEPTH: Final = 10_000
_TOO_DEEP: Final = "invalid JSON: nested too deeply"
# A document with at most this many brackets and braces cannot nest deeper, and any
# caller has that much stack to spare: it is decoded where it is read.
_SHALLOW: Final = 100
# msgspec takes about 300 bytes of C stack a level (3 MiB at Go's limit); a default
# thread stack can be much smaller (128 KiB with musl), so the decode's thread asks.
_DEEP_STACK_BYTES: Final = 16 * 1024 * 1024

_TOO_LARGE: Final = f"file is larger than 1 MiB ({MAX_RESULT_BYTES} bytes)"

# Unicode White_Space: what Go's strings.TrimSpace removes. str.strip() would also
# remove U+001C..U+001F, which are not white space, and differ from the reference.
_WHITESPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_BOM: Final = b"\xef\xbb\xbf"
# This module's regular expressions are patterns that re compiles (and caches) on first
# use: a valid result needs none of them, and compiling them at import cost every
# start-up about 3 M instructions (0.8 ms of CPU).
# A byte that starts a JSON value (not RFC 8259 white space).
_VALUE_START: Final = rb"[^ \t\r\n]"
_UTF8_SLICE: Final = 64 * 1024
# What the nesting count keeps of a document: brackets (a brace counts as one) and quotes.
_BRACKETS: Final = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE: Final = bytes(sorted(set(range(256)) - set(b'[]{}"')))
# A bracket as a step of depth, read as a signed byte: +1 or -1.
_STEPS: Final = bytes.maketrans(b"[]", b"\x01\xff")
_STRING_WINDOW: Final = 16 * 1024

# A \uXXXX escape of a UTF-16 surrogate (an odd run of backslashes before the "u"),
# with the low half that may follow a high one. Unpaired halves are replaced by
# U+FFFD before decoding, as Go's encoding/json does: the escape is valid JSON
# syntax, and msgspec would refuse it. "\ufffd" is as long as the escape it replaces,
# so every byte offset is kept.
_SURROGATE_ESCAPE: Final = (
    rb"(?<!\\)((?:\\\\)*)\\u([dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
    rb"|(?<!\\)((?:\\\\)*)\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_MALFORMED: Final = r"JSON is malformed: (.*) \(byte (\d+)\)"
# The JSON type of a validated value, from its first byte.
_JSON_TYPES: Final = {
    ord("{"): "object",
    ord("["): "array",
    ord('"'): "string",
    ord("t"): "boolean",
    ord("f"): "boolean",
    ord("n"): "null",
}

Status = Literal["success", "failure"]


class AdapterResult(msgspec.Struct, frozen=True):
    """A valid, normalised adapter result.

    ``details`` is the raw JSON text of the ``details`` value (None when absent),
    kept for the log only.
    """

    status: Status
    reason: str
    message: str
    details: bytes | None = None


class ResultMissing(msgspec.Struct, frozen=True):
    """No file at the results path (or its directory does not exist yet)."""


class ResultInvalid(msgspec.Struct, frozen=True):
    """Something is at the results path but it is not a valid result.

    ``fingerprint`` identifies what was read, so that a caller can tell whether an
    invalid file is still being written (it changes) or has settled (it does not).
    ``empty`` is True for a file of nothing but white space: what an adapter that
    truncates and then writes its file shows for an instant.
    """

    error: str
    fingerprint: int
    empty: bool = False


class ResultValid(msgspec.Struct, frozen=True):
    """A valid result was read."""

    result: AdapterResult


ResultState = ResultMissing | ResultInvalid | ResultValid


class _Document(msgspec.Struct):
    """The keys the contract reads; every other key is validated and skipped."""

    status: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    reason: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    message: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    details: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_DECODER: Final = msgspec.json.Decoder(_Document)
_TEXT: Final = msgspec.json.Decoder(str | None)


# The recursion limit and a new thread's stack size are process-wide: one deep decode at
# a time sets and restores them.
_DEEP_DECODE_LOCK: Final = threading.Lock()


class _Invalid(Exception):
    """Raised inside the parser; becomes a ResultInvalid."""


class _Empty(_Invalid):
    """The file holds nothing but white space."""

    def __init__(self) -> None:
        super().__init__("file is empty")


def _utf8_cut(encoded: bytes, limit: int) -> int:
    """Where to cut UTF-8 ``encoded``, longer than ``limit``, so that the head fits."""
    cut = limit
    # Step back over continuation bytes (0b10xxxxxx) to the start of a character.
    while encoded[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut


def truncate_utf8(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` bytes of UTF-8 without splitting a character."""
    # At most ``limit`` characters fit: encode only those, not the whole text.
    head = text[:limit]
    encoded = head.encode("utf-8")
    if len(encoded) <= limit:
        return head
    return encoded[: _utf8_cut(encoded, limit)].decode("utf-8")


def trim(text: str) -> str:
    """Remove leading and trailing Unicode white space."""
    return text.strip(_WHITESPACE)


def _json_type(raw: bytes | msgspec.Raw) -> str:
    """The JSON type of a value that the decoder has accepted (so never empty)."""
    return _JSON_TYPES.get(memoryview(raw)[0], "number")


def _text_field(raw: msgspec.Raw | msgspec.UnsetType, key: str, default: str, limit: int) -> str:
    if raw is msgspec.UNSET:
        return default
    try:
        value = _TEXT.decode(raw)
    except msgspec.ValidationError:
        raise _Invalid(f"{key}: must be a string or null, got {_json_type(raw)}") from None
    if value is None:
        return default
    trimmed = trim(value)
    if not trimmed:
        return default
    return truncate_utf8(trimmed, limit)


def _check_utf8(data: bytes) -> None:
    """Raise unless ``data`` is UTF-8.

    Decoded a slice at a time: a str of the whole file can take four times its size
    (one character beyond U+FFFF makes every character four bytes wide).
    """
    view = memoryview(data)
    start = 0
    while start < len(view):
        end = start + _UTF8_SLICE
        try:
            # Not final: a character cut by the slice's end is left for the next slice.
            _, used = codecs.utf_8_decode(view[start:end], "strict", end >= len(view))
        except UnicodeDecodeError as exc:
            offset = start + exc.start
            raise _Invalid(f"file is not valid UTF-8 (invalid byte at offset {offset})") from None
        start += used


def _replace_unpaired_surrogates(body: memoryview) -> memoryview | bytearray:
    r"""``body``, or a copy with each unpaired surrogate escape made ``\ufffd``.

    Pairs need no change, so most bodies are not copied. The copy is overwritten in
    place: re.sub would build a piece per escape, over 10 MiB for a 1 MiB file of them.
    """
    copy: bytearray | None = None
    for match in re.finditer(_SURROGATE_ESCAPE, body):
        if match.group(3) is None:
            if copy is None:
                copy = bytearray(body)
            # The escape's four hex digits end the match.
            copy[match.end() - 4 : match.end()] = b"fffd"
    return body if copy is None else copy


def _outside_strings(marks: bytes) -> bytes:
    """The brackets of ``marks`` (brackets and unescaped quotes) that no string holds.

    A window at a time: splitting the whole text at its quotes could make an object of
    every string.
    """
    kept = []
    inside = False
    for start in range(0, len(marks), _STRING_WINDOW):
        parts = marks[start : start + _STRING_WINDOW].split(b'"')
        kept.append(b"".join(parts[int(inside) :: 2]))
        inside ^= len(parts) % 2 == 0
    return b"".join(kept)


def _structure(data: bytes) -> bytes:
    """The brackets of JSON text ``data`` outside its strings, braces made brackets."""
    if b"\\" in data:
        # Escapes occur only in strings. Escaped backslashes go first, so that the quote
        # in \\" stays (it ends a string); then every quote left opens or closes one.
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = data.translate(_BRACKETS, _NOT_STRUCTURE)
    # A string without a bracket is "" now, and these pairs match from the left; a string
    # holding a bracket leaves quotes behind, which the split sorts out.
    brackets = marks.replace(b'""', b"")
    return _outside_strings(marks) if b'"' in brackets else brackets


def nests_deeper_than(data: bytes, limit: int) -> bool:
    """Whether JSON text ``data`` nests deeper than ``limit`` levels, counted without recursion.

    Exact for valid JSON, whatever the interpreter or the caller's stack; for anything
    else the decoder has the last word.
    """
    brackets = _structure(data)
    # A pass removing every innermost pair takes one level off the deepest nesting: a
    # cheap step while it halves the text (many shallow values).
    while brackets:
        inner = brackets.replace(b"[]", b"")
        if len(inner) * 2 > len(brackets):
            break
        brackets, limit = inner, limit - 1
    if limit < 0:
        return True
    steps = memoryview(brackets.translate(_STEPS)).cast("b")
    # The depth moves one level a step: a running sum from -(limit + 1) reaches 0 exactly
    # where the nesting first exceeds the limit.
    return 0 in accumulate(steps, initial=-(limit + 1))


def _decode_deep(body: memoryview | bytearray) -> _Document:
    """Decode ``body``, known to nest no deeper than Go's limit, on a thread of its own.

    msgspec counts each level against the interpreter's recursion budget, which a new
    thread has whole, whatever the caller's depth. On 3.11 that budget is the recursion
    limit, raised by Go's limit for this decode. 3.12 and 3.13 count C calls against a
    fixed budget instead, which stops the decode first (README "The adapter contract").
    """
    outcome: list[_Document | Exception] = []

    def decode() -> None:
        try:
            outcome.append(_DECODER.decode(body))
        except Exception as exc:  # handed to the reading thread, which sorts it out
            outcome.append(exc)

    with _DEEP_DECODE_LOCK:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + MAX_NESTING_DEPTH)
        try:
            thread = threading.Thread(target=decode, name="deep-json")
            stack = threading.stack_size(_DEEP_STACK_BYTES)
            try:
                thread.start()
            except RuntimeError:
                # No thread to be had (a pids limit): the caller's stack has to do.
                decode()
            else:
                thread.join()
            finally:
                threading.stack_size(stack)
        finally:
            sys.setrecursionlimit(limit)
    result = outcome[0]
    if isinstance(result, Exception):
        raise result
    return result


def _decode_nested(data: bytes, body: memoryview | bytearray) -> _Document:
    """Decode ``body`` (``data`` from its first value on), refusing what Go's nesting limit does."""
    if data.count(b"[") + data.count(b"{") <= _SHALLOW:
        return _DECODER.decode(body)
    if nests_deeper_than(data, MAX_NESTING_DEPTH):
        raise _Invalid(_TOO_DEEP)
    return _decode_deep(body)


def _top_level_type(body: memoryview | bytearray) -> str:
    """The JSON type of a document's top-level value."""
    value = re.search(_VALUE_START, body)
    # The decoder refused a value of the wrong type, so one is there.
    assert value is not None
    return _json_type(value[0])


def _malformed(exc: msgspec.DecodeError, data: bytes, start: int) -> str:
    """The decoder's error, at its line and column in the body from ``data[start]``."""
    found = re.fullmatch(_MALFORMED, str(exc))
    if found is None:
        return "invalid JSON: unexpected end of data"
    offset = start + int(found.group(2))
    line = data.count(b"\n", start, offset) + 1
    column = offset - max(data.rfind(b"\n", start, offset), start - 1)
    return f"invalid JSON: {found.group(1)} at line {line} column {column}"


def _decode(data: bytes) -> _Document:
    # The size first: no check before it costs more for a larger input.
    if len(data) > MAX_RESULT_BYTES:
        raise _Invalid(_TOO_LARGE)
    # Blank as bytes.strip() sees it (the same ASCII white space), without its copy.
    if not data or data.isspace():
        raise _Empty
    _check_utf8(data)
    # A leading byte order mark is tolerated, as RFC 8259 §8.1 allows.
    start = len(_BOM) if data.startswith(_BOM) else 0
    view = memoryview(data)[start:]
    body = _replace_unpaired_surrogates(view) if b"\\u" in data else view
    try:
        return _decode_nested(data, body)
    except msgspec.ValidationError:
        raise _Invalid(f"top level must be a JSON object, got {_top_level_type(body)}") from None
    except msgspec.DecodeError as exc:
        # The replacements keep every offset, so the error is found in ``data``.
        raise _Invalid(_malformed(exc, data, start)) from None
    except RecursionError:
        raise _Invalid(_TOO_DEEP) from None


def _fingerprint(data: bytes) -> int:
    # Only compared with the fingerprint of the next read, in this process: a keyed
    # hash of the bytes is enough, and needs no hashing library. read_result reads
    # no more than these bytes; a longer input would only take longer to hash.
    return hash(memoryview(data)[: MAX_RESULT_BYTES + 1])


def parse_result(data: bytes) -> ResultValid | ResultInvalid:
    """Parse and normalise the bytes of a result file. Never raises."""
    try:
        document = _decode(data)
        status = document.status
        value = None
        if status is not msgspec.UNSET and _json_type(status) == "string":
            value = _TEXT.decode(status)
        if value not in ("success", "failure"):
            raise _Invalid("status: must be either 'success' or 'failure'")
        reason = _text_field(document.reason, "reason", DEFAULT_REASON, REASON_LIMIT_BYTES)
        message = _text_field(document.message, "message", DEFAULT_MESSAGE, MESSAGE_LIMIT_BYTES)
    except _Invalid as exc:
        return ResultInvalid(str(exc), _fingerprint(data), empty=isinstance(exc, _Empty))
    details = document.details
    return ResultValid(
        AdapterResult(
            status=value,
            reason=reason,
            message=message,
            details=None if details is msgspec.UNSET else bytes(details),
        )
    )


# Every file type Linux has besides a regular file.
_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _wrong_kind(mode: int) -> ResultInvalid:
    kind = next(name for test, name in _KINDS if test(mode))
    error = f"result path is {kind}, not a regular file"
    return ResultInvalid(error=error, fingerprint=hash(error))


def _not_regular(mode: int) -> ResultInvalid | None:
    return None if stat.S_ISREG(mode) else _wrong_kind(mode)


def _os_error(exc: OSError) -> ResultInvalid:
    error = f"cannot read result file: {exc.strerror or exc}"
    return ResultInvalid(error=error, fingerprint=hash(error))


def resolve_results_path(path: str) -> str:
    """``path`` made absolute, with the directories on it that exist now resolved.

    For the sidecar's start-up: those directories belong to the image or to the volume
    mount (Debian's ``/var/run`` is a symlink to ``/run``), so their symlinks are
    followed, once. The first directory that does not exist yet, everything below it and
    the file's own name are kept as written: :func:`read_result` refuses a symlink there.
    """
    directory, name = os.path.split(os.path.abspath(path))
    resolved = "/"
    parts = [part for part in directory.split("/") if part]
    for index, part in enumerate(parts):
        candidate = os.path.join(resolved, part)
        if not os.path.isdir(candidate):
            return os.path.join(candidate, *parts[index + 1 :], name)
        resolved = os.path.realpath(candidate)
    return os.path.join(resolved, name)


class _NotADirectory(Exception):
    """A directory of the result path is something else; ``invalid`` says what."""

    def __init__(self, invalid: ResultInvalid) -> None:
        super().__init__(invalid.error)
        self.invalid = invalid


# A directory opened only to look names up in it: no read permission needed, and a
# symlink is not followed (with O_PATH it fails O_DIRECTORY: ENOTDIR).
_DIRECTORY_FLAGS: Final = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _open_directory(path: str) -> int:
    """A descriptor of the directory that holds the file at ``path``, each of its
    components opened from the one above without following a symlink.

    Raises:
        _NotADirectory: a component is a symlink.
        OSError: a component is missing (FileNotFoundError) or cannot be opened.
    """
    fd = os.open("/" if os.path.isabs(path) else ".", _DIRECTORY_FLAGS)
    walked = "/" if os.path.isabs(path) else ""
    try:
        for part in os.path.dirname(path).split("/"):
            if not part:
                continue
            walked = os.path.join(walked, part)
            try:
                below = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
            except NotADirectoryError:
                if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                    error = f"result directory {walked} is a symbolic link, which is not followed"
                    raise _NotADirectory(ResultInvalid(error, hash(error))) from None
                raise
            os.close(fd)
            fd = below
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_result(path: str) -> ResultState:
    """Read and parse the result file at ``path`` without following symlinks or blocking.

    No component of ``path`` is followed if it is a symlink: the sidecar reads the path
    that :func:`resolve_results_path` made at start-up. A missing file (or a missing
    directory) is :class:`ResultMissing`. A file that ``fstat`` finds larger than
    ``MAX_RESULT_BYTES`` is not read at all; of any other, at most
    ``MAX_RESULT_BYTES + 1`` bytes are read, as it may have grown since.
    """
    name = os.path.basename(path)
    try:
        directory = _open_directory(path)
    except FileNotFoundError:
        return ResultMissing()
    except _NotADirectory as exc:
        return exc.invalid
    except OSError as exc:
        return _os_error(exc)
    try:
        return _read_in(directory, name)
    finally:
        os.close(directory)


def _read_in(directory: int, name: str) -> ResultState:
    """Read and parse the result file ``name`` in the open ``directory``."""
    try:
        # The type first, so that devices and FIFOs are never opened at all.
        invalid = _not_regular(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)
        if invalid is not None:
            return invalid
        fd = os.open(name, _FILE_FLAGS, dir_fd=directory)
    except FileNotFoundError:
        return ResultMissing()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _wrong_kind(stat.S_IFLNK)
        return _os_error(exc)
    try:
        # Checked again on the descriptor: the path may have been replaced since.
        info = os.fstat(fd)
        invalid = _not_regular(info.st_mode)
        if invalid is not None:
            return invalid
        if info.st_size > MAX_RESULT_BYTES:
            # Not read, so an adapter that keeps rewriting a large file costs a stat per
            # look; its size and modification time tell whether it is still changing.
            fingerprint = hash((info.st_size, info.st_mtime_ns))
            return ResultInvalid(error=_TOO_LARGE, fingerprint=fingerprint)
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


def render_details(details: bytes, limit: int = DETAILS_LOG_LIMIT_BYTES) -> tuple[str, bool]:
    """The raw JSON text of ``details`` for the log, cut to ``limit`` bytes.

    Returns the text and whether it was cut, so a log entry stays under 64 KiB.
    """
    if len(details) <= limit:
        return details.decode("utf-8"), False
    # Cut as bytes: a str of the whole value can take four times its size.
    return details[: _utf8_cut(details, limit)].decode("utf-8"), True
