"""The termination message: the last word of the reporter, kept by the kubelet in the Pod's
status (README "How the condition is written").

Whether or not the condition reached the Job, the decided condition is written as
one JSON line to the container's termination message file, so that it is never
lost silently.
"""

from __future__ import annotations

import os
import stat
from typing import Final

import msgspec

from status_reporter.core.conditions import Condition
from status_reporter.core.contract import truncate_utf8

# The kubelet keeps at most 4096 bytes of a termination message.
LIMIT_BYTES: Final = 4096


def message(
    condition_type: str, condition: Condition, written: bool, error: str | None = None
) -> bytes:
    """The decided condition as one JSON line of at most :data:`LIMIT_BYTES`; ``error``
    says why it was not written, when a check or the API refused it."""
    text = condition.message.encode("utf-8", "backslashreplace").decode()
    document: dict[str, object] = {
        "type": condition_type,
        "status": condition.status,
        "reason": condition.reason,
        "message": text,
        "written": written,
    }
    if error is not None:
        document["error"] = truncate_utf8(
            error.encode("utf-8", "backslashreplace").decode(), LIMIT_BYTES // 4
        )
    while True:
        document["message"] = text
        line = msgspec.json.encode(document)
        if len(line) < LIMIT_BYTES or not text:
            return line + b"\n"
        # Escapes can make the JSON longer than the message itself: cut and try again.
        text = truncate_utf8(text, len(text.encode()) // 2)


def error_message(error: str) -> bytes:
    """A fatal error that left no condition to report, as one JSON line."""
    text = truncate_utf8(error.encode("utf-8", "backslashreplace").decode(), LIMIT_BYTES // 2)
    return msgspec.json.encode({"error": text}) + b"\n"


def write(path: str, line: bytes) -> bool:
    """Write ``line`` to the termination message file; False when it is not writable.

    The file is never created: the kubelet creates it in a container, and outside one
    there is nothing to write to. It is written over, then cut to the new length, so
    that a SIGKILL at any instant leaves a complete first line (never an empty file)
    once one was written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.pwrite(fd, line, 0)
            os.ftruncate(fd, len(line))
        else:  # a pipe or a terminal, say: a stream to append to
            os.write(fd, line)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
