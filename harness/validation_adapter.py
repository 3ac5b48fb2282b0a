"""HyperFleet's validation adapter as an identity on the node: the ServiceAccount,
ClusterRole and ClusterRoleBinding of its Helm chart (``harness/hyperfleet/chart``,
rendered by helm), and a client with that ServiceAccount's own token, which creates a
cluster namespace's ServiceAccount, Role, RoleBinding and Job the way the adapter does.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lightkube import ApiError, Client, KubeConfig
from lightkube.codecs import load_all_yaml
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from harness.cel import tool
from harness.cluster import service_account_token
from harness.consumer import FIXTURES
from harness.controlplane import ROOT
from harness.node import Node

CHART = FIXTURES / "chart"
README = ROOT / "README.md"
# Before the README's YAML blocks the tests apply: the Role it recommends for
# HyperFleet, and the chart value that adds the Event's permission.
ROLE_MARK = "<!-- hyperfleet-role -->"
EVENTS_VALUE_MARK = "<!-- hyperfleet-chart-events -->"
# The chart's namespace in HyperFleet's deployments (the adapter configs' metadata).
RELEASE_NAMESPACE = "hyperfleet-system"


def readme_yaml(mark: str) -> Any:
    """The first YAML block after ``mark`` in README.md."""
    after = README.read_text().split(mark, 1)[1]
    return yaml.safe_load(after.split("```yaml\n", 1)[1].split("```", 1)[0])


def render_chart(release: str, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chart's ServiceAccount, ClusterRole and ClusterRoleBinding, as
    ``helm template`` renders them for ``release`` with ``values`` added."""
    with tempfile.TemporaryDirectory(prefix="helm-") as work:
        command = [
            str(tool("helm")),
            "template",
            release,
            str(CHART),
            "--namespace",
            RELEASE_NAMESPACE,
        ]
        if values:
            path = Path(work) / "values.yaml"
            path.write_text(yaml.safe_dump(dict(values)))
            command += ["--values", str(path)]
        # helm keeps caches and settings under these; none of them outside the run.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": work,
            **{f"HELM_{kind}_HOME": f"{work}/{kind}" for kind in ("CACHE", "CONFIG", "DATA")},
        }
        out = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=120, check=False
        )
    if out.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@dataclass(frozen=True)
class Adapter:
    """The adapter's ServiceAccount and a client that acts with its token."""

    account: str
    cluster_role: dict[str, Any]
    client: Client

    def create(self, manifests: Sequence[Mapping[str, Any]], namespace: str) -> str | None:
        """Create ``manifests`` in order, as the adapter does; stop at the first the API
        server refuses and return its message (None: all were created)."""
        for manifest in manifests:
            objects: list[Any] = load_all_yaml(yaml.safe_dump(dict(manifest)))
            for obj in objects:
                try:
                    self.client.create(obj, namespace=namespace)
                except ApiError as exc:
                    return str(exc.status.message)
        return None


def install(admin: Client, node: Node, release: str, values: Mapping[str, Any] | None) -> Adapter:
    """Apply the rendered chart (as a cluster admin installs it) and return the adapter."""
    try:
        admin.create(Namespace(metadata=ObjectMeta(name=RELEASE_NAMESPACE)))
    except ApiError as exc:
        if exc.status.code != 409:
            raise
    rendered = render_chart(release, values)
    kinds = sorted(doc["kind"] for doc in rendered)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ServiceAccount"], kinds
    for doc in rendered:
        objects: list[Any] = load_all_yaml(yaml.safe_dump(doc))
        for obj in objects:
            admin.create(obj, namespace=RELEASE_NAMESPACE)
    account = next(doc for doc in rendered if doc["kind"] == "ServiceAccount")["metadata"]["name"]
    token = service_account_token(admin, RELEASE_NAMESPACE, account)
    cluster = yaml.safe_load(Path(node.env["KUBECONFIG"]).read_text())["clusters"][0]
    config = KubeConfig.from_dict(
        {
            "clusters": [cluster],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [
                {"name": "adapter", "context": {"cluster": cluster["name"], "user": account}}
            ],
            "current-context": "adapter",
        }
    )
    role = next(doc for doc in rendered if doc["kind"] == "ClusterRole")
    return Adapter(account, role, Client(config=config, field_manager="hyperfleet-adapter"))
