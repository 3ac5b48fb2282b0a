"""Running the installed ``status-reporter`` console script against the harness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cluster import AdapterJob, service_account_token
from harness.controlplane import ControlPlane

SCRIPT = Path(sys.executable).with_name("status-reporter")


@dataclass
class ReporterRun:
    """One reporter process. ``output`` holds its stdout and stderr once it has ended."""

    process: subprocess.Popen[str]
    log_path: Path
    termination_path: Path
    # Wall-clock time right before the process was created: the token request and
    # file writes before it are the harness's time, not the reporter's.
    spawned: float

    def last_word(self) -> dict[str, Any]:
        """The termination message the reporter left (what the kubelet would keep)."""
        text = self.termination_path.read_text()
        return dict(json.loads(text)) if text.strip() else {}

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the exit code (kills the process and fails after ``timeout``)."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"reporter still running after {timeout}s:\n{self.output}"
            ) from None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send a signal, as the kubelet does when stopping the container."""
        self.process.send_signal(signum)

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    @property
    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.running:
            self.process.kill()
            self.process.wait()


def start_reporter(
    plane: ControlPlane,
    job: AdapterJob,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    account: str = "status-reporter",
    server: str | None = None,
    token_file: Path | None = None,
    script: Path = SCRIPT,
    stdout: int | None = None,
) -> ReporterRun:
    """Start the reporter for ``job`` as its ServiceAccount (kubeconfig with a bound token).

    ``server`` points the kubeconfig elsewhere (a fault proxy); ``token_file`` makes the
    reporter read its token from that file rather than from the kubeconfig; ``script`` is
    the console script to run (by default the one of this interpreter's environment);
    ``stdout`` is a file descriptor for its output instead of the run's log file.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    token = None if token_file else service_account_token(job.client, job.namespace, account)
    kubeconfig = plane.kubeconfig(
        workdir / f"kubeconfig-{job.name}-{time.monotonic_ns()}",
        token,
        job.namespace,
        server=server,
        token_file=token_file,
    )
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "KUBECONFIG": str(kubeconfig),
        "JOB_NAME": job.name,
        "JOB_NAMESPACE": job.namespace,
        "POD_NAME": job.pod,
        "RESULTS_PATH": str(job.results_path),
        "POLL_INTERVAL_SECONDS": "1",
        "MAX_WAIT_TIME_SECONDS": "30",
        "LOG_LEVEL": "debug",
        **(env or {}),
    }
    stamp = f"{job.name}-{time.monotonic_ns()}"
    log_path = workdir / f"reporter-{stamp}.log"
    termination_path = workdir / f"termination-{stamp}"
    termination_path.write_text("")  # the kubelet creates the file; the reporter never does
    environment.setdefault("TERMINATION_MESSAGE_PATH", str(termination_path))
    with log_path.open("w") as log:
        spawned = time.time()
        process = subprocess.Popen(
            [str(script)],
            env=environment,
            stdout=log if stdout is None else stdout,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return ReporterRun(process, log_path, termination_path, spawned)
