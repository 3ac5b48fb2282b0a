"""HyperFleet's own dummy-validator Job on the real node, for every ``SIMULATE_RESULT``,
checked the way HyperFleet's adapter reads it (``harness/consumer.py``).

The Role is the one the adapter creates (the reference Role: no ``watch``, no
Events), the sidecar keeps its environment and its 128Mi / 200m CPU limits.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, cast

import pytest
import yaml
from harness import consumer
from harness.node import Node, report
from harness.scenarios import wait_root_ca
from lightkube import Client
from lightkube.codecs import load_all_yaml
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Namespace

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

SIMULATED = "(simulated)"
EXPECTED: dict[str, tuple[str, str, str]] = {
    "success": (
        "True",
        "ValidationPassed",
        "GCP environment validated successfully (simulated)",
    ),
    "failure": (
        "False",
        "MissingPermissions",
        "Service account lacks required IAM permissions (simulated)",
    ),
    "hang": ("False", "AdapterTimeout", "Adapter did not produce results within 20s"),
    "crash": ("False", "AdapterExitedWithError", "Adapter container exited with code 1: Error"),
    "invalid-json": (
        "False",
        "InvalidResultFormat",
        "Failed to parse adapter result: invalid JSON: ",
    ),
    "missing-status": (
        "False",
        "InvalidResultFormat",
        "Failed to parse adapter result: status: must be either 'success' or 'failure'",
    ),
    "something-else": (
        "True",
        "ValidationPassed",
        "GCP environment validated successfully (default simulation)",
    ),
}
# The messages of invalid results may end with "; adapter exited with code 0" (when the
# adapter's exit is seen before the invalid file settles): compared by prefix.
PREFIX_ONLY = {"invalid-json", "missing-status"}
# The hanging adapter is given a short wait; the others keep the template's default.
MAX_WAIT = {"hang": 20}


def _create(kube: Client, manifest: dict[str, Any], namespace: str) -> None:
    objects: list[Any] = load_all_yaml(yaml.safe_dump(manifest))
    for obj in objects:
        kube.create(obj, namespace=namespace)


@pytest.fixture(scope="module")
def consumer_views(
    kube: Client, node: Node, reporter_image: str, pytestconfig: pytest.Config
) -> dict[str, tuple[str, str, str]]:
    """Every SIMULATE_RESULT value as one Job of one HyperFleet cluster namespace."""
    cluster_id = f"HF-{uuid.uuid4().hex[:8]}"
    namespace = cluster_id.lower()
    kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
    first = consumer.params(cluster_id, 1, "success", 300)
    for manifest in consumer.rbac(first):
        _create(kube, manifest, namespace)
    wait_root_ca(kube, namespace)
    jobs: dict[str, str] = {}
    for generation, simulate in enumerate(consumer.SIMULATE_RESULTS, start=1):
        values = consumer.params(cluster_id, generation, simulate, MAX_WAIT.get(simulate, 300))
        manifest = consumer.job(values, node, reporter_image)
        kube.create(cast(Job, Job.from_dict(manifest)), namespace=namespace)
        jobs[simulate] = manifest["metadata"]["name"]
    views: dict[str, tuple[str, str, str]] = {}
    deadline = time.monotonic() + 180
    while len(views) < len(jobs) and time.monotonic() < deadline:
        for simulate, name in jobs.items():
            status = kube.get(Job, name, namespace=namespace).status
            conditions = [c.to_dict() for c in (status.conditions or [])] if status else []
            if any(c["type"] == "Available" for c in conditions):
                views[simulate] = consumer.consumer_view(conditions)
        time.sleep(0.5)
    lines = ["| SIMULATE_RESULT | status | reason | message |", "|---|---|---|---|"]
    lines += [f"| {s} | {' | '.join(views.get(s, ('-', '-', '-')))} |" for s in jobs]
    report(pytestconfig, "HyperFleet dummy-validator Jobs, as the adapter reads them:")
    report(pytestconfig, "\n".join(lines))
    return views


@pytest.mark.parametrize("simulate", consumer.SIMULATE_RESULTS)
def test_the_consumer_reads_the_right_outcome(
    consumer_views: dict[str, tuple[str, str, str]], simulate: str
) -> None:
    assert simulate in consumer_views, f"no Available condition for {simulate}"
    status, reason, message = consumer_views[simulate]
    want_status, want_reason, want_message = EXPECTED[simulate]
    assert (status, reason) == (want_status, want_reason)
    if simulate in PREFIX_ONLY:
        assert message.startswith(want_message), message
    else:
        assert message == want_message
