"""make demo (``python -m harness.demo``): the reporter against a real local
kube-apiserver, scenario by scenario.

Starts etcd + kube-apiserver, applies deploy/base (ServiceAccount, Role,
RoleBinding) and creates the Job of deploy/examples/classic-sidecar-job.yaml once
per scenario. The harness then plays the kubelet and the adapter while the real
status-reporter process runs as the Job's ServiceAccount, and prints what lands
on the Job. Exits 1 if any scenario ends with the wrong condition.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.cluster import (
    AdapterJob,
    create_job_from_manifest,
    create_namespace,
    load_manifest,
    renamed,
    reporter_env,
)
from harness.controlplane import ROOT, ControlPlane, binaries
from harness.reporter import start_reporter

EXAMPLE = ROOT / "deploy" / "examples" / "classic-sidecar-job.yaml"


def succeed(job: AdapterJob) -> None:
    job.write_result_atomically(
        {"status": "success", "reason": "ValidationPassed", "message": "All checks passed"}
    )
    job.terminated(0, "Completed")


def fail(job: AdapterJob) -> None:
    job.write_result_atomically(
        {
            "status": "failure",
            "reason": "MissingPermissions",
            "message": "Service account lacks required IAM permissions",
            "details": {"missing": ["compute.instances.list"]},
        }
    )
    job.terminated(0, "Completed")


def crash(job: AdapterJob) -> None:
    job.terminated(1, "Error", "connecting to cloud API\npanic: credentials rejected")


def oom(job: AdapterJob) -> None:
    job.terminated(137, "OOMKilled")


def hang(job: AdapterJob) -> None:
    """The adapter keeps running and never writes a result."""


@dataclass(frozen=True)
class Scenario:
    name: str
    act: Callable[[AdapterJob], None]
    expected: tuple[str, str]
    exit_code: int
    env: dict[str, str]


SCENARIOS = [
    Scenario("success", succeed, ("True", "ValidationPassed"), 0, {}),
    Scenario("failure", fail, ("False", "MissingPermissions"), 0, {}),
    Scenario("crash", crash, ("False", "AdapterExitedWithError"), 1, {}),
    Scenario("oomkilled", oom, ("False", "AdapterOOMKilled"), 1, {}),
    Scenario("timeout", hang, ("False", "AdapterTimeout"), 1, {"MAX_WAIT_TIME_SECONDS": "5"}),
]


def run(plane: ControlPlane, workdir: Path, scenario: Scenario) -> tuple[bool, str, float]:
    client = plane.admin_client()
    namespace = create_namespace(client)
    manifest = renamed(load_manifest(EXAMPLE), f"demo-{scenario.name}")
    job = create_job_from_manifest(client, namespace, manifest, workdir / scenario.name / "results")
    job.running()
    env = {
        **reporter_env(manifest, job),
        "RESULTS_PATH": str(job.results_path),  # the host path of the shared volume
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "info",
        **scenario.env,
    }
    reporter = start_reporter(plane, job, workdir / scenario.name, env)
    deadline = time.monotonic() + 10
    while "monitoring adapter" not in reporter.output and time.monotonic() < deadline:
        time.sleep(0.02)
    acted = time.monotonic()
    scenario.act(job)
    while job.condition() is None and reporter.running and time.monotonic() - acted < 30:
        time.sleep(0.01)
    elapsed = time.monotonic() - acted
    code = reporter.wait(timeout=30)
    condition = job.condition()
    order = ("type", "status", "reason", "message", "lastTransitionTime")
    conditions = [{k: c[k] for k in order if k in c} for c in job.conditions()]
    print(f"\n=== {scenario.name}: Job {namespace}/{job.name}, reporter exit code {code}")
    print(
        yaml.safe_dump({"status": {"conditions": conditions}}, sort_keys=False, width=100), end=""
    )
    got = (condition["status"], condition["reason"]) if condition else ("-", "-")
    ok = got == scenario.expected and code == scenario.exit_code
    if not ok:
        print(f"--- reporter output\n{reporter.output}")
    return ok, f"{got[0]}/{got[1]} exit {code}", elapsed


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="status-reporter-demo-") as tmp:
        workdir = Path(tmp)
        print("Starting etcd and kube-apiserver ...")
        plane = ControlPlane.start(binaries(), workdir / "controlplane")
        try:
            print(f"kube-apiserver {plane.version} ready at {plane.url} (RBAC enforced)")
            print(f"RBAC from {ROOT / 'deploy' / 'base'}, Job from {EXAMPLE.relative_to(ROOT)}")
            results = [(s, *run(plane, workdir, s)) for s in SCENARIOS]
        finally:
            plane.stop()
    print(f"\n     {'scenario':<10} {'expected':<37} {'got':<37} time to report")
    for scenario, ok, got, elapsed in results:
        expected = "/".join(scenario.expected) + f" exit {scenario.exit_code}"
        mark = "ok  " if ok else "FAIL"
        print(f"{mark} {scenario.name:<10} {expected:<37} {got:<37} {elapsed * 1000:8.0f} ms")
    failures = [s.name for s, ok, _, _ in results if not ok]
    right = len(results) - len(failures)
    print(f"\n{right}/{len(results)} scenarios right in {time.monotonic() - started:.1f}s")
    if failures:
        print(f"wrong: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
