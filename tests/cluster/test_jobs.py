"""The reporter in real Jobs on a real single-node Kubernetes.

Unlike the integration tests, nothing here plays the kubelet: containerd runs the
containers, the kubelet reports their states (OOM kills, termination messages,
image errors), starts and stops native sidecars, mounts the projected token and
the shared emptyDir, and the Job controller writes its own conditions next to
the reporter's.
"""

from __future__ import annotations

import json
import os
import random
import re
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.controlplane import ROOT
from harness.node import Node, report
from harness.records import record_real_pod_memory
from harness.scenarios import (
    CONDITION,
    CRASH_MESSAGE,
    INSPECT,
    MODES,
    REPORTER,
    SCENARIOS,
    NotAdmitted,
    Outcome,
    admit_restricted,
    by_name,
    create_namespace,
    derive_job,
    launch,
    launch_all,
    pod_of,
    restricted_namespace,
    table,
    wait_running,
)
from lightkube import Client
from lightkube.resources.batch_v1 import Job

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
PYTHON = "/opt/status-reporter/bin/python"  # the image's virtualenv


@pytest.fixture(scope="module")
def outcomes(
    kube: Client, node: Node, reporter_image: str, pytestconfig: pytest.Config
) -> dict[tuple[str, str], Outcome]:
    """Every scenario in both modes, all Jobs at once, waited for together."""
    done = launch_all(kube, node, reporter_image).wait(kube)
    report(pytestconfig, table(done))
    return {(o.scenario.name, o.mode): o for o in done}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_condition_and_job_outcome(
    outcomes: dict[tuple[str, str], Outcome], kube: Client, name: str, mode: str
) -> None:
    """Our condition is right, and the Job controller's own verdict stands next to it."""
    outcome = outcomes[name, mode]
    assert not outcome.problems(), outcome.describe(kube)


def _pod_requests(node: Node, kube: Client, outcome: Outcome) -> list[str]:
    """The verbs of the reporter's requests that concern its own Pod."""
    pod = pod_of(kube, outcome.namespace, outcome.job)
    assert pod is not None
    assert pod.metadata is not None
    user = f"system:serviceaccount:{outcome.namespace}:{REPORTER}"
    return [
        e["verb"]
        for e in node.audit_events()
        if e["user"]["username"] == user
        and e.get("objectRef", {}).get("resource") == "pods"
        and str(pod.metadata.name) in e["requestURI"]
    ]


@pytest.mark.parametrize("mode", MODES)
def test_project_role_watches_the_pod(
    outcomes: dict[tuple[str, str], Outcome], node: Node, kube: Client, mode: str
) -> None:
    """With the project Role the adapter's crash is seen through a Pod watch."""
    verbs = _pod_requests(node, kube, outcomes["crash", mode])
    assert "watch" in verbs, verbs


@pytest.mark.parametrize("mode", MODES)
def test_reference_role_polls_the_pod(
    outcomes: dict[tuple[str, str], Outcome], node: Node, kube: Client, mode: str
) -> None:
    """With the reference Role (no watch) the Pod is read again instead."""
    verbs = _pod_requests(node, kube, outcomes["crash-reference-role", mode])
    assert "watch" not in verbs, verbs
    assert verbs.count("get") >= 2, verbs


# Run by the image's interpreter: msgspec writes the JSON (the image holds only the
# standard library's part that the reporter uses, and the reporter has no use for json).
REPORTER_PROBE = f"""
import errno, os, msgspec
def write(path):
    try:
        with open(path, "w") as handle:
            handle.write("x")
        return "written"
    except OSError as exc:
        return errno.errorcode[exc.errno]
print(msgspec.json.encode({{
    "uid": os.getuid(), "gid": os.getgid(),
    "root": write("/probe"), "results": write("/results/probe"),
    "token": os.path.exists("{TOKEN_DIR}/token"),
}}).decode())
"""


@dataclass
class Inspection:
    """What was seen inside one Pod's running containers."""

    adapter: str
    reporter: str
    problems: list[str] = field(default_factory=list)
    cgroup_peak: int | None = None


def _condition_written(kube: Client, namespace: str, job: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = kube.get(Job, job, namespace=namespace).status
        if status and any(c.type == CONDITION for c in status.conditions or []):
            return
        time.sleep(0.1)
    raise TimeoutError(f"no {CONDITION} condition on {namespace}/{job} after {timeout:.0f}s")


def _logged_peak(kube: Client, namespace: str) -> float | None:
    """The peak resident memory (MiB) the native reporter logged when it exited."""
    pod = pod_of(kube, namespace, "inspect-native")
    assert pod is not None
    assert pod.metadata is not None
    for line in kube.log(str(pod.metadata.name), namespace=namespace, container=REPORTER):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("message") == "exiting" and entry.get("max_rss_mib") is not None:
            return float(entry["max_rss_mib"])
    return None


@pytest.fixture(scope="module")
def inspected(
    kube: Client, node: Node, reporter_image: str, pytestconfig: pytest.Config
) -> dict[str, Inspection]:
    """Both modes of a slow adapter, looked at from inside the running containers."""
    namespace = create_namespace(kube)
    plan = [(INSPECT, mode, namespace, f"inspect-{mode}") for mode in MODES]
    batch = launch(kube, node, reporter_image, plan)
    seen: dict[str, Inspection] = {}
    reporter_ids: dict[str, str] = {}
    for mode in MODES:
        _, ids = wait_running(kube, namespace, f"inspect-{mode}", [REPORTER, "adapter"])
        adapter = node.exec(ids["adapter"], "/bin/sh", "-c", f"id -u; ls {TOKEN_DIR} 2>&1; true")
        reporter = node.exec(ids[REPORTER], PYTHON, "-c", REPORTER_PROBE)
        assert reporter.returncode == 0, reporter
        seen[mode] = Inspection(adapter=adapter.stdout, reporter=reporter.stdout)
        reporter_ids[mode] = ids[REPORTER]
    # A native sidecar idles after reporting until the adapter exits: its cgroup
    # then holds the peak of the whole run.
    _condition_written(kube, namespace, "inspect-native")
    cgroup = node.memory_cgroup(reporter_ids["native"])
    peak = int((cgroup / "memory.max_usage_in_bytes").read_text())
    seen["native"].cgroup_peak = peak
    for outcome in batch.wait(kube):
        seen[outcome.mode].problems = outcome.problems()
    logged = _logged_peak(kube, namespace)
    report(
        pytestconfig,
        f"reporter peak memory in a real Pod (native sidecar, cgroup max usage): "
        f"{peak / 2**20:.1f} MiB; its own VmHWM at exit: "
        + (f"{logged} MiB" if logged is not None else "not logged"),
    )
    record_real_pod_memory(peak, logged)
    return seen


@pytest.mark.parametrize("mode", MODES)
def test_adapter_has_no_service_account_token(inspected: dict[str, Inspection], mode: str) -> None:
    """automountServiceAccountToken: false, and the projected token is the reporter's only."""
    lines = inspected[mode].adapter.splitlines()
    assert lines[0] == "65532"
    assert "No such file or directory" in lines[1], lines


@pytest.mark.parametrize("mode", MODES)
def test_reporter_runs_as_65532_on_a_read_only_root(
    inspected: dict[str, Inspection], mode: str
) -> None:
    """Non-root, read-only root file system and results volume, token present."""
    assert json.loads(inspected[mode].reporter) == {
        "uid": 65532,
        "gid": 65532,
        "root": "EROFS",
        "results": "EROFS",
        "token": True,
    }


@pytest.mark.parametrize("mode", MODES)
def test_inspected_jobs_still_report(inspected: dict[str, Inspection], mode: str) -> None:
    """Looking inside the containers did not change the outcome."""
    assert inspected[mode].problems == []


def test_reporter_peak_memory_in_a_real_pod(inspected: dict[str, Inspection]) -> None:
    """The cgroup's max usage stays within the request the examples set (48Mi)."""
    peak = inspected["native"].cgroup_peak
    assert peak is not None
    assert 0 < peak <= 48 * 2**20, f"{peak / 2**20:.1f} MiB"


def test_native_sidecar_reports_every_crash(
    kube: Client, node: Node, reporter_image: str, pytestconfig: pytest.Config
) -> None:
    """20 adapters that exit 1 next to a native sidecar: 20 AdapterExitedWithError.

    The kubelet stops the sidecar within a second of the adapter's exit, sometimes
    before the adapter's terminated state is in the API; the reporter must still
    report the crash, not an interruption.
    """
    namespace = create_namespace(kube)
    crash = by_name("crash")
    done: list[Outcome] = []
    for wave in range(2):
        plan = [(crash, "native", namespace, f"crash-{wave * 10 + i:02d}") for i in range(10)]
        done += launch(kube, node, reporter_image, plan).wait(kube)
    reasons = Counter(o.ours["reason"] if o.ours else None for o in done)
    report(pytestconfig, f"native sidecar, adapter exit 1, 20 runs: {dict(reasons)}")
    failed = [o.describe(kube) for o in done if o.problems()]
    assert reasons == {"AdapterExitedWithError": 20}, "\n\n".join(failed)


# --- Pod Security, OpenShift, the Event ----------------------------------------------


def test_restricted_admission_refuses_what_it_must(
    kube: Client, node: Node, reporter_image: str
) -> None:
    """The admission that every Job above passed is real: a privilege it must refuse."""
    namespace = restricted_namespace(kube)
    job = derive_job("classic", INSPECT, "too-free", reporter_image, node, "run")
    job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"] = {
        "add": ["NET_ADMIN"]
    }
    with pytest.raises(NotAdmitted, match="restricted"):
        admit_restricted(kube, namespace, job)


def _security_fields(document: Any) -> list[str]:
    """Every runAsUser, runAsGroup and fsGroup anywhere in ``document``."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("runAsUser", "runAsGroup", "fsGroup"):
                found.append(key)
            found += _security_fields(value)
    elif isinstance(document, list):
        for item in document:
            found += _security_fields(item)
    return found


@pytest.mark.parametrize("mode", MODES)
def test_openshift_variant_runs_as_an_arbitrary_uid(
    kube: Client, node: Node, reporter_image: str, mode: str
) -> None:
    """deploy/openshift as restricted-v2 runs it: a UID and fsGroup from the namespace's
    range, no group set (so the runtime gives GID 0), read-only root."""
    rendered = node.kubectl("kustomize", str(ROOT / "deploy" / "openshift"))
    assert rendered.returncode == 0, rendered.stderr
    jobs = {
        ("native" if doc["spec"]["template"]["spec"].get("initContainers") else "classic"): doc
        for doc in yaml.safe_load_all(rendered.stdout)
        if doc and doc["kind"] == "Job"
    }
    assert _security_fields(jobs) == []
    uid = random.randint(1_000_600_000, 1_000_699_999)  # noqa: S311 - a UID, not a secret
    namespace = create_namespace(kube)
    name = f"openshift-{mode}"
    batch = launch(
        kube,
        node,
        reporter_image,
        [(INSPECT, mode, namespace, name)],
        sources=jobs,
        pod_security={"runAsUser": uid, "fsGroup": uid},
    )
    _, ids = wait_running(kube, namespace, name, [REPORTER, "adapter"])
    probe = node.exec(ids[REPORTER], PYTHON, "-c", REPORTER_PROBE)
    assert probe.returncode == 0, probe
    assert json.loads(probe.stdout) == {
        "uid": uid,
        "gid": 0,
        "root": "EROFS",
        "results": "EROFS",
        "token": True,
    }
    (outcome,) = batch.wait(kube)
    assert not outcome.problems(), outcome.describe(kube)


def test_kubectl_describe_job_shows_the_outcome_as_an_event(
    outcomes: dict[tuple[str, str], Outcome], node: Node, pytestconfig: pytest.Config
) -> None:
    """The project Role may create Events: the decided condition is one on the Job."""
    outcome = outcomes["crash", "classic"]
    described = node.kubectl("describe", "job", outcome.job, "-n", outcome.namespace)
    assert described.returncode == 0, described.stderr
    events = described.stdout[described.stdout.index("Events:") :]
    report(pytestconfig, f"kubectl describe job {outcome.job} (its Events):\n{events}")
    line = next(line for line in events.splitlines() if "AdapterExitedWithError" in line)
    assert line.split()[:2] == ["Warning", "AdapterExitedWithError"]
    assert "status-reporter" in line
    assert CRASH_MESSAGE in line


def test_the_readmes_commands_read_the_condition(
    outcomes: dict[tuple[str, str], Outcome], node: Node
) -> None:
    """Every ``kubectl get job ... -o jsonpath=...`` of the README prints the condition."""
    outcome = outcomes["crash", "classic"]
    readme = (ROOT / "README.md").read_text()
    command = r"kubectl get job example-adapter [^\n]*?\n?\s*-o jsonpath='([^']+)'"
    paths = re.findall(command, readme)
    assert len(paths) >= 2, paths
    for path in paths:
        got = node.kubectl(
            "get", "job", outcome.job, "-n", outcome.namespace, "-o", f"jsonpath={path}"
        )
        assert got.returncode == 0, got.stderr
        printed = json.loads(got.stdout)
        conditions = printed if isinstance(printed, list) else [printed]
        ours = next(c for c in conditions if c["type"] == CONDITION)
        assert (ours["reason"], ours["message"]) == ("AdapterExitedWithError", CRASH_MESSAGE)


def test_the_readmes_image_override_renames_the_reporter_image(node: Node, tmp_path: Path) -> None:
    """The README's overlay points the examples' one image name at a registry."""
    readme = (ROOT / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL) if "newName:" in b]
    overlay = yaml.safe_load(textwrap.dedent(block))
    examples = os.path.relpath(ROOT / "deploy" / "examples", tmp_path)
    overlay["resources"] = [examples]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    rendered = node.kubectl("kustomize", str(tmp_path))
    assert rendered.returncode == 0, rendered.stderr
    jobs = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Job"]
    images = {
        c["image"]
        for job in jobs
        for c in [
            *job["spec"]["template"]["spec"]["containers"],
            *job["spec"]["template"]["spec"].get("initContainers", []),
        ]
        if c["name"] == REPORTER
    }
    assert len(jobs) == 2
    assert images == {"registry.example.com/status-reporter:0.1.0"}


def test_reference_role_records_no_event(
    outcomes: dict[tuple[str, str], Outcome], node: Node
) -> None:
    """Without create on events, nothing is sent and nothing else changes."""
    outcome = outcomes["crash-reference-role", "classic"]
    described = node.kubectl("describe", "job", outcome.job, "-n", outcome.namespace)
    assert described.returncode == 0, described.stderr
    assert "AdapterExitedWithError" not in described.stdout.split("Events:")[1]
