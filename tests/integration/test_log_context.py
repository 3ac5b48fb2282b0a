"""README "Logs": once start-up has read the Pod and the Job, every line carries the
Job's HyperFleet correlation (``LOG_CONTEXT``), with no request added for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.checks import SUCCESS, eventually, summary, verbs
from harness.cluster import AdapterJob, create_job_from_manifest
from harness.controlplane import ControlPlane
from harness.reporter import ReporterRun
from lightkube import Client

Reporter = Callable[..., ReporterRun]
CLUSTER = "HF-Integration-7"


def _hyperfleet_job(admin: Client, namespace: str, results: Path) -> AdapterJob:
    """A Job labelled and annotated as HyperFleet's validation adapter creates it."""
    containers = [
        {
            "name": name,
            "image": f"example.com/{name}:1",
            "volumeMounts": [{"name": "results", "mountPath": "/results"}],
        }
        for name in ("adapter", "status-reporter")
    ]
    manifest: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "gcp-validator-hf-integration-7-4",
            "labels": {"hyperfleet.io/cluster-id": CLUSTER},
            "annotations": {"hyperfleet.io/generation": "4"},
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"hyperfleet.io/cluster-id": CLUSTER}},
                "spec": {
                    "serviceAccountName": "status-reporter",
                    "restartPolicy": "Never",
                    "volumes": [{"name": "results", "emptyDir": {}}],
                    "containers": containers,
                },
            },
        },
    }
    return create_job_from_manifest(admin, namespace, manifest, results)


def test_later_lines_carry_the_cluster_and_the_generation(
    admin: Client, namespace: str, tmp_path: Path, reporter: Reporter, plane: ControlPlane
) -> None:
    job = _hyperfleet_job(admin, namespace, tmp_path / "results")
    job.running()
    run = reporter(job)
    eventually(lambda: "monitoring adapter" in run.output)
    job.write_result(SUCCESS)
    assert run.wait() == 0, run.output
    written_condition = summary(job.condition())
    assert written_condition is not None
    assert written_condition[0] == "True"
    lines = run.output.splitlines()
    written = next(line for line in lines if "condition written" in line)
    exiting = next(line for line in lines if " exiting " in line)
    for line in (written, exiting):
        assert f"cluster_id={CLUSTER} generation=4" in line, run.output
    # The usual requests (README "How the condition is written"): no read added for it.
    assert verbs(plane, job) == [
        "create selfsubjectrulesreviews 201",
        "watch pods 200",
        "get jobs 200",
        "patch jobs/status 200",
        "create events 201",
    ]


def test_a_bad_log_context_is_a_configuration_error(
    admin: Client, namespace: str, tmp_path: Path, reporter: Reporter
) -> None:
    job = _hyperfleet_job(admin, namespace, tmp_path / "results")
    run = reporter(job, {"LOG_CONTEXT": "cluster_id=env:CLUSTER"})
    assert run.wait() == 2, run.output
    condition = summary(job.condition())
    assert condition is not None
    status, reason, message = condition
    assert (status, reason) == ("False", "ReporterConfigInvalid")
    assert message.startswith('invalid configuration: LOG_CONTEXT="cluster_id=env:CLUSTER"')
