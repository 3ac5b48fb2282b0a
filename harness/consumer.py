"""HyperFleet's dummy-validator Job and the way its adapter reads the outcome.

The fixtures in ``harness/hyperfleet`` are the adapter's own files (origin in its
README). :func:`job` renders the Job template as the adapter would, changed only
where the loopback node needs it (and, on request, without the sidecar, with a
shorter deadline or with an adapter that runs out of memory); :func:`resources`
renders the ServiceAccount, Role and RoleBinding the adapter creates before it;
:func:`consumer_views` is what the adapter's own CEL expressions
(``harness/cel.py``) make of the Jobs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.cel import adapter_spec, condition_expressions, evaluate
from harness.node import Node

FIXTURES = Path(__file__).with_name("hyperfleet")
JOB_TEMPLATE = FIXTURES / "validation-dummy-job-adapter-task.yaml"
DUMMY_CONFIG = FIXTURES / "validation-dummy-adapter.yaml"
VALIDATION_CONFIG = FIXTURES / "validation-adapter.yaml"
# hyperfleet-adapter's own example of a Job read by its exit code (Complete / Failed).
EXIT_CODE_CONFIG = FIXTURES / "exit-code-example-adapter-task-config.yaml"
REPORTER = "status-reporter"
ADAPTER = "dummy-validator"
CONDITION = "Available"
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

View = tuple[str | None, str | None, str | None]


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


def _config(path: Path) -> Mapping[str, Any]:
    return adapter_spec(yaml.safe_load(path.read_text()))


def job_resource(config: Path = DUMMY_CONFIG) -> str:
    """The name the adapter gives the Job among its resources (``resources.<name>`` in CEL):
    the one resource whose manifest is a file reference."""
    (name,) = [r["name"] for r in _config(config)["resources"] if "ref" in r["manifest"]]
    return str(name)


def resources(values: Mapping[str, str], config: Path = DUMMY_CONFIG) -> list[dict[str, Any]]:
    """The ServiceAccount, Role and RoleBinding the adapter creates before the Job."""
    manifests = [r["manifest"] for r in _config(config)["resources"] if "ref" not in r["manifest"]]
    rendered = [yaml.safe_load(render(yaml.safe_dump(m), values)) for m in manifests]
    assert [m["kind"] for m in rendered] == ["ServiceAccount", "Role", "RoleBinding"]
    return rendered


def job(
    values: Mapping[str, str],
    node: Node,
    reporter_image: str,
    *,
    sidecar: bool = True,
    active_deadline: int | None = None,
    adapter_script: str | None = None,
) -> dict[str, Any]:
    """The rendered Job, changed only where the loopback node needs it.

    ``sidecar=False`` drops the reporter (the adapter alone, read by the Job's own
    conditions); ``active_deadline`` shortens the Job's time limit; ``adapter_script``
    replaces the dummy validator's script (an OOM kill, which it cannot simulate).
    """
    manifest: dict[str, Any] = copy.deepcopy(
        yaml.safe_load(render(JOB_TEMPLATE.read_text(), values))
    )
    if active_deadline is not None:
        manifest["spec"]["activeDeadlineSeconds"] = active_deadline
    pod = manifest["spec"]["template"]["spec"]
    # No Pod network on this node: the Pod shares the host's loopback.
    pod["hostNetwork"] = True
    if not sidecar:
        pod["containers"] = [c for c in pod["containers"] if c["name"] != REPORTER]
    for container in pod["containers"]:
        # No registry: the images are already in containerd.
        container["imagePullPolicy"] = "Never"
        # Two cores: at the template's 100m a container, only ten of these Pods would
        # be scheduled at once, and a queued Job's deadline would run while it waits.
        container["resources"]["requests"]["cpu"] = "10m"
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
            if adapter_script is not None:
                container["args"] = [adapter_script]
    return manifest


def consumer_views(
    jobs: Sequence[Mapping[str, Any] | None], config: Path = DUMMY_CONFIG
) -> list[View]:
    """(status, reason, message) of the ``Available`` condition the adapter reports
    upstream for each Job (None: the adapter found no Job), by its own expressions."""
    name = job_resource(config)
    activations = [{"resources": {} if j is None else {name: j}} for j in jobs]
    values = evaluate(condition_expressions(config, CONDITION), activations)
    return [(v["status"], v["reason"], v["message"]) for v in values]
