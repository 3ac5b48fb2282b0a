"""deploy/: the kustomizations and example Jobs are wired the way the README says
(static checks; tests/integration/test_deploy.py has the API server accept them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness.cluster import (
    DEPLOY,
    EXAMPLES,
    REPORTER,
    AdapterJob,
    kustomization,
    load_manifest,
    reporter_container,
    reporter_env,
)
from harness.controlplane import ROOT

from status_reporter.core.config import load
from status_reporter.shell.outcome import STOP_EXIT_SECONDS

# The variables of the README's configuration table.
DOCUMENTED_VARIABLES = {
    "JOB_NAME", "JOB_NAMESPACE", "POD_NAME", "RESULTS_PATH", "POLL_INTERVAL_SECONDS",
    "MAX_WAIT_TIME_SECONDS", "CONDITION_TYPE", "LOG_LEVEL", "ADAPTER_CONTAINER_NAME",
    "LOG_FORMAT", "REPORTER_CONTAINER_NAME", "MONITOR_MODE", "CONTAINER_STATUS_INTERVAL_SECONDS",
    "TERMINATION_MESSAGE_PATH", "LOG_CONTEXT",
}  # fmt: skip
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def test_kustomizations_list_every_manifest() -> None:
    base = kustomization(DEPLOY / "base")
    assert sorted(p.name for p in base) == sorted(
        p.name for p in (DEPLOY / "base").glob("*.yaml") if p.name != "kustomization.yaml"
    )
    examples = kustomization(DEPLOY / "examples")
    assert DEPLOY / "examples" / ".." / "base" in examples
    assert {p.name for p in examples if p.suffix == ".yaml"} == {p.name for p in EXAMPLES}


def test_the_readme_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in DOCUMENTED_VARIABLES:
        assert f"| `{name}` |" in readme, name


@pytest.fixture(params=EXAMPLES, ids=lambda p: p.stem)
def example(request: pytest.FixtureRequest) -> dict[str, Any]:
    manifest: dict[str, Any] = load_manifest(request.param)
    return manifest


def test_example_environment_is_a_valid_configuration(example: dict[str, Any]) -> None:
    reporter = reporter_container(example)
    names = [item["name"] for item in reporter["env"]]
    assert set(names) <= DOCUMENTED_VARIABLES
    # The Job is the Pod's owner: nothing to keep in step with the Job's name.
    assert "JOB_NAME" not in names
    job = AdapterJob(None, "ns", example["metadata"]["name"], "pod-x", Path("/results"))  # type: ignore[arg-type]
    config = load(reporter_env(example, job))
    assert config.job_name == ""
    spec = example["spec"]["template"]["spec"]
    adapter = next(c for c in spec["containers"] if c["name"] == config.adapter_container_name)
    # The reporter reads RESULTS_PATH from the volume the adapter writes to.
    results_dir = str(Path(config.results_path).parent)
    mounts = {m["mountPath"]: m["name"] for m in reporter["volumeMounts"]}
    assert mounts[results_dir] == next(
        m["name"] for m in adapter["volumeMounts"] if m["mountPath"] == results_dir
    )
    assert example["spec"]["activeDeadlineSeconds"] > config.max_wait_time_seconds
    # The kubelet waits longer than the reporter needs to exit after SIGTERM.
    assert spec["terminationGracePeriodSeconds"] > STOP_EXIT_SECONDS


def test_example_isolates_the_token_and_hardens_the_containers(example: dict[str, Any]) -> None:
    spec = example["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == "status-reporter"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    reporter = reporter_container(example)
    token_volume = next(m["name"] for m in reporter["volumeMounts"] if m["mountPath"] == TOKEN_PATH)
    volume = next(v for v in spec["volumes"] if v["name"] == token_volume)
    kinds = [next(iter(source)) for source in volume["projected"]["sources"]]
    assert kinds == ["serviceAccountToken", "configMap", "downwardAPI"]
    for container in [*spec["containers"], *spec.get("initContainers", [])]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        if container["name"] != REPORTER:
            assert all(m["mountPath"] != TOKEN_PATH for m in container.get("volumeMounts", []))
            # The crash report carries the last line of the adapter's log if it left
            # no termination message.
            assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert reporter["resources"]["requests"]["memory"]
    assert reporter["resources"]["limits"]["memory"]


def test_native_example_is_a_native_sidecar() -> None:
    manifest = load_manifest(DEPLOY / "examples" / "native-sidecar-job.yaml")
    spec = manifest["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == [REPORTER]
    assert spec["initContainers"][0]["restartPolicy"] == "Always"
    assert REPORTER not in [c["name"] for c in spec["containers"]]
