"""HyperFleet's dummy-validator Job and the way its adapter reads the outcome.

The fixtures in ``harness/hyperfleet`` are the adapter's own files (origin in
its README). :func:`objects` renders them as the adapter would, changed only where
the loopback node needs it; :func:`consumer_view` is the adapter's CEL expression
for the ``Available`` status it reports upstream.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.node import Node

FIXTURES = Path(__file__).with_name("hyperfleet")
JOB_TEMPLATE = FIXTURES / "validation-dummy-job-adapter-task.yaml"
ADAPTER_CONFIG = FIXTURES / "validation-dummy-adapter.yaml"
REPORTER = "status-reporter"
ADAPTER = "dummy-validator"
# The values the dummy validator knows, and one it does not (its default branch).
SIMULATE_RESULTS = (
    "success",
    "failure",
    "hang",
    "crash",
    "invalid-json",
    "missing-status",
    "something-else",
)
_FIELD = re.compile(r"\{\{ \.(\w+)( \| lower)? \}\}")


def render(text: str, params: Mapping[str, str]) -> str:
    """The template fields the adapter fills in: ``{{ .name }}`` and ``{{ .name | lower }}``."""

    def value(match: re.Match[str]) -> str:
        found = params[match.group(1)]
        return found.lower() if match.group(2) else found

    return _FIELD.sub(value, text)


def params(cluster_id: str, generation: int, simulate: str, max_wait: int) -> dict[str, str]:
    """The adapter's parameters for one Job (its defaults where the test has no say)."""
    return {
        "clusterId": cluster_id,
        "generationId": str(generation),
        "managedByResourceName": "dummy-validation-adapter",
        "adapterTaskServiceAccount": "validation-adapter-task-sa",
        "statusReporterImage": "",  # replaced by the local image
        "resultPath": "/results/adapter-result.json",
        "maxWaitTimeSeconds": str(max_wait),
        "simulateResult": simulate,
    }


def rbac(values: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ServiceAccount, Role and RoleBinding the adapter creates before the Job."""
    config = yaml.safe_load(ADAPTER_CONFIG.read_text())
    manifests = [r["manifest"] for r in config["spec"]["resources"] if "ref" not in r["manifest"]]
    rendered = [yaml.safe_load(render(yaml.safe_dump(m), values)) for m in manifests]
    assert [m["kind"] for m in rendered] == ["ServiceAccount", "Role", "RoleBinding"]
    return rendered


def job(values: Mapping[str, str], node: Node, reporter_image: str) -> dict[str, Any]:
    """The rendered Job, changed only where the loopback node needs it."""
    manifest: dict[str, Any] = copy.deepcopy(
        yaml.safe_load(render(JOB_TEMPLATE.read_text(), values))
    )
    pod = manifest["spec"]["template"]["spec"]
    # No Pod network on this node: the Pod shares the host's loopback.
    pod["hostNetwork"] = True
    for container in pod["containers"]:
        # No registry: the images are already in containerd.
        container["imagePullPolicy"] = "Never"
        if container["name"] == REPORTER:
            container["image"] = reporter_image
            # The kubelet's service variables point at the Service IP, which nothing
            # routes here; explicit values win.
            container["env"] += [
                {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                {"name": "KUBERNETES_SERVICE_PORT", "value": str(node.api_port)},
            ]
        elif container["name"] == ADAPTER:
            container["image"] = node.adapter_image  # busybox for alpine: the same sh
    return manifest


def consumer_view(conditions: Sequence[Mapping[str, Any]]) -> tuple[str, str, str]:
    """(status, reason, message) as the adapter's CEL expressions read the Job."""
    available = [c for c in conditions if c.get("type") == "Available"]
    if available:
        first = available[0]
        return first.get("status", ""), first.get("reason", ""), first.get("message", "")
    if any(c.get("type") == "Failed" for c in conditions):
        return "False", "ValidationFailed", "Validation failed"
    return "False", "ValidationInProgress", "Validation in progress"
