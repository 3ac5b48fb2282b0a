"""The reporter when the API server is out of reach from its very start, is killed outright
while it retries the write, or gets its credentials from a slow plugin: through the fault
proxy, against the real API server.

A valid result decides without the API and is left in the termination message at once;
it is written when the API answers within the write's budget, and a start-up check that
then fails leaves it with the error naming the check. A SIGKILL during the write's
retries leaves it too. A credential plugin slower than the stop's bound does not make
the stop any longer.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from harness.checks import SUCCESS, eventually, summary
from harness.cluster import AdapterJob, create_job, create_namespace, service_account_token
from harness.controlplane import ControlPlane
from harness.faultproxy import FaultProxy
from harness.reporter import ReporterRun, start_reporter
from lightkube import Client

from tests.faults.conftest import Start, monitoring, record

pytestmark = pytest.mark.faults

PASSED = ("True", "ValidationPassed", "GCP environment validated")
PASSED_WORD = {
    "type": "Available",
    "status": "True",
    "reason": "ValidationPassed",
    "message": "GCP environment validated",
}
# The project's Role without the status patch: a start-up check refuses it.
NO_PATCH_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "status-reporter"},
    "rules": [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch"]},
    ],
}


def left_word(run: ReporterRun) -> dict[str, Any]:
    """The termination message as it is now ({} while empty)."""
    return run.last_word()


def without_error(word: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in word.items() if key != "error"}


# --- an API server out of reach from the start (row 1) -------------------------------------


def test_a_result_while_the_api_is_out_of_reach_from_the_start_is_left_then_written(
    job: AdapterJob, reporter: Start, proxy: FaultProxy
) -> None:
    proxy.mode = "refuse"
    run = reporter(job, {"MAX_WAIT_TIME_SECONDS": "10"}, proxy=proxy)
    time.sleep(1)
    job.write_result(SUCCESS)
    decided = time.monotonic()
    # Decided without the API: the termination message has it at once, not written.
    eventually(lambda: left_word(run) == {**PASSED_WORD, "written": False}, timeout=5)
    left = time.monotonic() - decided
    # Back after MAX_WAIT_TIME_SECONDS, within the write's budget (60 s).
    time.sleep(max(0.0, 15 - (time.monotonic() - decided)))
    assert run.running, run.output
    proxy.mode = "pass"
    back = time.monotonic()
    assert run.wait(timeout=30) == 0, run.output
    outcome = record(
        "API out of reach from the start, result at +1 s, back at +16 s",
        job,
        run,
        back,
        f"left in the termination message {left:.2f} s after the result",
    )
    assert summary(job.condition()) == PASSED
    assert left_word(run) == {**PASSED_WORD, "written": True}
    assert outcome.seconds <= 8


def test_a_start_up_check_that_fails_when_the_api_answers_leaves_the_result_naming_it(
    plane: ControlPlane, admin: Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    namespace = create_namespace(admin, role=NO_PATCH_ROLE)
    job = create_job(admin, namespace, tmp_path / "results")
    job.running()
    proxy.mode = "refuse"
    run = start_reporter(
        plane,
        job,
        tmp_path,
        {"MAX_WAIT_TIME_SECONDS": "30"},
        server=f"https://127.0.0.1:{proxy.port}",
    )
    try:
        time.sleep(1)
        job.write_result(SUCCESS)
        eventually(lambda: left_word(run) == {**PASSED_WORD, "written": False}, timeout=5)
        time.sleep(2)
        proxy.mode = "pass"
        back = time.monotonic()
        assert run.wait(timeout=30) == 3, run.output
        record("API out of reach from the start, then patch forbidden", job, run, back)
        assert job.condition() is None
        word = left_word(run)
        assert without_error(word) == {**PASSED_WORD, "written": False}
        assert 'missing permission to patch jobs/status "' in word["error"]
    finally:
        run.stop()


# --- a SIGKILL while the write is retried (row 9) -------------------------------------------


def test_a_sigkill_during_the_writes_retries_leaves_the_decided_outcome(
    job: AdapterJob, reporter: Start, proxy: FaultProxy
) -> None:
    run = monitoring(reporter(job, proxy=proxy))
    proxy.mode = "refuse"
    proxy.reset_all()
    job.write_result(SUCCESS)
    eventually(lambda: "patch jobs/status" in run.output and "retrying" in run.output, timeout=20)
    run.signal(signal.SIGKILL)
    assert run.wait(timeout=10) == -signal.SIGKILL
    assert job.condition() is None
    assert left_word(run) == {**PASSED_WORD, "written": False}


# --- a slow credential plugin and a stop (row 7) --------------------------------------------

PLUGIN = """#!/bin/sh
echo $$ > "{pids}"
sleep {seconds}
cat "{answer}"
"""


def plugin_kubeconfig(plane: ControlPlane, job: AdapterJob, workdir: Path, seconds: int) -> Path:
    """A kubeconfig whose credentials come from a plugin that takes ``seconds``."""
    answer = workdir / "answer"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": service_account_token(job.client, job.namespace)},
    }
    answer.write_text(json.dumps(credential))
    script = workdir / "plugin.sh"
    script.write_text(PLUGIN.format(pids=workdir / "plugin-pid", seconds=seconds, answer=answer))
    script.chmod(0o755)
    path = plane.kubeconfig(workdir / "kubeconfig-exec", "unused", job.namespace)
    config = json.loads(path.read_text())
    config["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(script),
            "interactiveMode": "Never",
        }
    }
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("seconds", [12, 25])
def test_a_stop_while_a_slow_credential_plugin_runs_exits_within_ten_seconds(
    plane: ControlPlane, job: AdapterJob, tmp_path: Path, seconds: int
) -> None:
    workdir = tmp_path / f"plugin-{seconds}"
    workdir.mkdir()
    kubeconfig = plugin_kubeconfig(plane, job, workdir, seconds)
    run = start_reporter(plane, job, workdir, {"KUBECONFIG": str(kubeconfig)})
    try:
        pid_file = workdir / "plugin-pid"
        eventually(lambda: pid_file.exists() and pid_file.read_text().strip() != "", timeout=10)
        time.sleep(1)
        stopped = time.monotonic()
        run.signal(signal.SIGTERM)
        code = run.wait(timeout=30)
        outcome = record(f"credential plugin taking {seconds} s, SIGTERM", job, run, stopped)
        assert outcome.seconds <= 10, run.output
        # Interrupted, and the API never answered in time: left, not written.
        assert code == 3, run.output
        assert left_word(run)["reason"] == "ReporterInterrupted"
        # The plugin was ended with the reporter (its sleep too), not left behind.
        plugin = int(pid_file.read_text())
        eventually(lambda: not _running_in_group(plugin), timeout=5)
    finally:
        run.stop()


def _running_in_group(group: int) -> bool:
    """True while a live process (not a zombie) belongs to process group ``group``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False
