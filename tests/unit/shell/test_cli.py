"""The command line as users run it: the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


@pytest.mark.parametrize("job", ["j", ""])
def test_an_environment_error_leaves_the_termination_message(tmp_path: Path, job: str) -> None:
    """The same way as start-up's configuration errors: on the Job when it can be named
    (here the API refuses: not written), and in the termination message in any case."""
    last_word = tmp_path / "termination-log"
    last_word.write_bytes(b"")
    out = run(
        env={
            "JOB_NAME": job,
            "JOB_NAMESPACE": "n",
            "POD_NAME": "p",
            "POLL_INTERVAL_SECONDS": "0",
            "CONDITION_TYPE": "Validated",
            "KUBECONFIG": str(_refusing_kubeconfig(tmp_path)),
            "TERMINATION_MESSAGE_PATH": str(last_word),
        },
        timeout=15,
    )
    assert out.returncode == 2
    line = out.stderr.strip()
    assert line.startswith('invalid configuration: POLL_INTERVAL_SECONDS="0"')
    assert json.loads(last_word.read_bytes()) == {
        "type": "Validated",
        "status": "False",
        "reason": "ReporterConfigInvalid",
        "message": line,
        "written": False,
    }


def _refusing_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig for an API server that refuses every connection."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "secret-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return kubeconfig


def _sidecar_env(tmp_path: Path, last_word: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "KUBECONFIG": str(_refusing_kubeconfig(tmp_path)),
        "JOB_NAME": "j",
        "JOB_NAMESPACE": "n",
        "POD_NAME": "p",
        "RESULTS_PATH": str(tmp_path / "result.json"),
        "TERMINATION_MESSAGE_PATH": str(last_word),
    }


def _sidecar(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    last_word = tmp_path / "termination-log"
    last_word.write_bytes(b"")
    env = _sidecar_env(tmp_path, last_word)
    process = subprocess.Popen([SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return process, last_word


def _wait_for_stop_handler(pid: int, timeout: float = 10.0) -> None:
    """Return once the process catches SIGTERM (its ``SigCgt`` mask in /proc), so that a
    loaded machine's slow interpreter start cannot make the signal land before it."""
    bit = 1 << (signal.SIGTERM - 1)
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & bit:
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} installed no SIGTERM handler within {timeout} s")


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3])
def test_a_stop_right_after_exec_is_handled(tmp_path: Path, delay: float) -> None:
    """A SIGTERM at once after the handler is in place, while the rest of the program is
    still being imported, is handled like any other stop."""
    process, last_word = _sidecar(tmp_path)
    _wait_for_stop_handler(process.pid)
    time.sleep(delay)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=20)
    # Never a death by signal; the API refuses, so the condition is left in the
    # termination message and the exit code says it could not be written.
    assert process.returncode == 3, out.decode()
    assert time.monotonic() - started < 10
    assert json.loads(last_word.read_bytes())["reason"] == "ReporterInterrupted"
    assert b"Traceback" not in out


# The run decided exit code 1; a SIGTERM then lands just after the event loop has
# returned, before the command line's own last handler (the exit's resource reading).
_LATE_STOP = """
import os, resource, signal, time
from status_reporter.shell import cli, engine

async def decided(self):
    return 1

def stop_then_read(who):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)
    return real(who)

real = resource.getrusage
engine.Reporter.run = decided
resource.getrusage = stop_then_read
cli.main([])
"""


def test_a_stop_after_the_run_ends_exits_with_the_decided_code(tmp_path: Path) -> None:
    """No window at the end: a stop between the event loop's return and the exit is
    handled (the decided code), never a death by signal."""
    last_word = tmp_path / "termination-log"
    last_word.write_bytes(b"")
    env = _sidecar_env(tmp_path, last_word)
    done = subprocess.run(
        [sys.executable, "-c", _LATE_STOP], env=env, capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 1, done


def test_a_second_stop_exits_at_once(tmp_path: Path) -> None:
    process, _ = _sidecar(tmp_path)
    time.sleep(1.5)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=20)
    assert time.monotonic() - started < 1.0
    assert process.returncode == 3, out.decode()
    assert b"stopped again before the condition was written" in out


def test_missing_credentials_exit_three() -> None:
    out = run(
        env={"JOB_NAME": "j", "JOB_NAMESPACE": "n", "POD_NAME": "p", "KUBECONFIG": "/nonexistent"}
    )
    assert out.returncode == 3
    assert "cannot load Kubernetes credentials" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
