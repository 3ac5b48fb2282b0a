"""The termination message: the decided condition as one JSON line, never a new file."""

from __future__ import annotations

import json

import pytest

from status_reporter.core.conditions import Condition
from status_reporter.shell import termination


def test_termination_message_is_one_json_line() -> None:
    line = termination.message("Available", Condition("True", "Ok", "fine"), written=True)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {
        "type": "Available",
        "status": "True",
        "reason": "Ok",
        "message": "fine",
        "written": True,
    }


def test_termination_message_fits_the_kubelet_limit() -> None:
    message = "\x01" * 1024  # six bytes each once escaped
    line = termination.message("Available", Condition("False", "R", message), written=False)
    assert len(line) <= termination.LIMIT_BYTES
    assert json.loads(line)["message"].startswith("\x01")


def test_termination_message_file_is_never_created(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "termination-log"  # type: ignore[operator]
    assert not termination.write(str(path), b"x\n")
    assert not path.exists()
    path.write_bytes(b"old, longer content")
    assert termination.write(str(path), b"x\n")
    assert path.read_bytes() == b"x\n"
