"""deploy/: every manifest is accepted by the real API server, and the native example
runs end to end (static checks of the manifests are in tests/unit/deploy/test_manifests.py)."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from harness.cluster import (
    DEPLOY,
    EXAMPLES,
    create_job_from_manifest,
    create_namespace,
    kustomization,
    load_manifest,
    renamed,
    reporter_env,
)
from harness.controlplane import ControlPlane
from harness.reporter import start_reporter
from lightkube import Client
from lightkube.codecs import load_all_yaml
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Namespace

pytestmark = pytest.mark.integration


def test_every_manifest_is_accepted_by_the_api_server(admin: Client) -> None:
    namespace = f"deploy-{id(admin) % 100000}"
    admin.create(Namespace(metadata=ObjectMeta(name=namespace)))
    for path in kustomization(DEPLOY / "base"):
        base: list[Any] = load_all_yaml(path.read_text())
        for obj in base:
            admin.create(obj, namespace=namespace)
    for path in EXAMPLES:
        jobs: list[Any] = load_all_yaml(path.read_text())
        for obj in jobs:
            admin.create(obj, namespace=namespace, dry_run=True)  # server-side dry run


def _readme_yaml(marker: str) -> dict[str, Any]:
    """The README's YAML block that contains ``marker``."""
    readme = (DEPLOY.parent / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    (block,) = [b for b in blocks if marker in b]
    document: dict[str, Any] = yaml.safe_load(textwrap.dedent(block))
    return document


def test_the_readmes_pod_failure_policy_is_accepted_with_both_examples(admin: Client) -> None:
    recipe = _readme_yaml("podFailurePolicy:")
    namespace = create_namespace(admin)
    for path in EXAMPLES:
        job = load_manifest(path)
        job["spec"].update(recipe["spec"])
        admin.create(cast(Job, Job.from_dict(job)), namespace=namespace, dry_run=True)


def test_native_example_end_to_end(admin: Client, plane: ControlPlane, tmp_path: Path) -> None:
    namespace = create_namespace(admin)
    manifest = renamed(load_manifest(DEPLOY / "examples" / "native-sidecar-job.yaml"), "native-e2e")
    job = create_job_from_manifest(admin, namespace, manifest, tmp_path / "results")
    job.running()
    env = {**reporter_env(manifest, job), "RESULTS_PATH": str(job.results_path)}
    run = start_reporter(plane, job, tmp_path, env)
    job.write_result({"status": "success", "reason": "Native", "message": "from the example"})
    deadline = time.monotonic() + 15
    while job.condition() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.condition() is not None, run.output
    assert run.running, run.output  # a native sidecar stays until stopped
    run.signal()
    assert run.wait() == 0, run.output
