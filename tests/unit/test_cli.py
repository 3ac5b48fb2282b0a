"""The command line as users run it: the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from status_reporter import __version__

SCRIPT = str(Path(sys.executable).with_name("status-reporter"))


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": "/nonexistent"}
    return subprocess.run(
        [SCRIPT, *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=timeout,
        check=False,
    )


def test_version() -> None:
    out = run("--version")
    assert (out.returncode, out.stdout.strip()) == (0, f"status-reporter {__version__}")


def test_module_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "status_reporter", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0
    assert out.stdout.startswith("status-reporter ")


@pytest.mark.parametrize(
    ("content", "code", "expected"),
    [
        (
            '{"status":"success","reason":" Ok ","message":"fine"}',
            0,
            {"status": "True", "reason": "Ok", "message": "fine"},
        ),
        (
            '{"status":"failure"}',
            0,
            {"status": "False", "reason": "NoReasonProvided", "message": "No message provided"},
        ),
        (
            '{"status":"yes"}',
            1,
            {
                "status": "False",
                "reason": "InvalidResultFormat",
                "message": "Failed to parse adapter result: "
                "status: must be either 'success' or 'failure'",
            },
        ),
    ],
)
def test_check_result(tmp_path: Path, content: str, code: int, expected: dict[str, str]) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)
    out = run("check-result", str(path))
    assert out.returncode == code
    assert json.loads(out.stdout) == expected
    assert out.stdout.count("\n") == 1


def test_check_result_prints_unicode_as_is(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"status":"success","message":"Grüße ✓"}', encoding="utf-8")
    out = subprocess.run(
        [SCRIPT, "check-result", str(path)], capture_output=True, check=False, env={"LANG": "C"}
    )
    assert json.loads(out.stdout.decode("utf-8"))["message"] == "Grüße ✓"


def test_check_result_missing_file() -> None:
    out = run("check-result", "/nonexistent/result.json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["message"] == (
        "Failed to parse adapter result: result file not found: /nonexistent/result.json"
    )


@pytest.mark.parametrize(
    "args", [["check-result"], ["check-result", "a", "b"], ["bogus"], ["--nope"]]
)
def test_usage_errors_exit_two(args: list[str]) -> None:
    out = run(*args)
    assert out.returncode == 2
    assert "usage:" in out.stderr
    assert out.stdout == ""


def test_configuration_error_is_one_line_and_exit_two() -> None:
    out = run(
        env={"JOB_NAME": "j", "JOB_NAMESPACE": "n", "POD_NAME": "p", "POLL_INTERVAL_SECONDS": "x"}
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        'invalid configuration: POLL_INTERVAL_SECONDS="x": must be an integer greater than 0 '
        "and less than MAX_WAIT_TIME_SECONDS (300)"
    ]
    assert "Traceback" not in out.stdout + out.stderr


def test_configuration_error_with_unreachable_api_still_exits_quickly(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://127.0.0.1:1",
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "secret-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    out = run(
        env={
            "JOB_NAME": "j",
            "JOB_NAMESPACE": "n",
            "LOG_LEVEL": "debug",
            "KUBECONFIG": str(kubeconfig),
        },
        timeout=15,
    )
    assert out.returncode == 2
    assert (
        out.stderr.strip() == "invalid configuration: POD_NAME=(unset): required, must not be empty"
    )
    assert "secret-token" not in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_missing_credentials_exit_three() -> None:
    out = run(
        env={"JOB_NAME": "j", "JOB_NAMESPACE": "n", "POD_NAME": "p", "KUBECONFIG": "/nonexistent"}
    )
    assert out.returncode == 3
    assert "cannot load Kubernetes credentials" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
