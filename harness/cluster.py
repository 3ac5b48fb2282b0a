"""Playing the rest of the cluster: the Job controller, the kubelet and the adapter.

There is no controller-manager or kubelet in the harness. Jobs and their Pods are
created the way the Job controller would create them, and Pod status is patched
the way a kubelet would report container states.
"""

from __future__ import annotations

import datetime
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from lightkube import Client
from lightkube.codecs import load_all_yaml
from lightkube.models.authentication_v1 import BoundObjectReference, TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Namespace, Pod, Secret, ServiceAccount
from lightkube.types import PatchType

from harness.controlplane import ROOT

DEPLOY = ROOT / "deploy"
DEPLOY_BASE = DEPLOY / "base"
EXAMPLES = sorted((DEPLOY / "examples").glob("*-job.yaml"))
REPORTER = "status-reporter"
NODE = "harness-node"

REFERENCE_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "status-reporter"},
    "rules": [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]},
        {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get", "update", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    ],
}


def now() -> str:
    """RFC 3339 UTC now, as the kubelet writes times."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deploy_objects(role: Mapping[str, Any] | None = None) -> list[Any]:
    """The ServiceAccount, Role and RoleBinding of ``deploy/base`` (Role replaceable)."""
    objects = []
    for name in ("serviceaccount.yaml", "role.yaml", "rolebinding.yaml"):
        if name == "role.yaml" and role is not None:
            objects.extend(load_all_yaml(yaml.safe_dump(dict(role))))
        else:
            objects.extend(load_all_yaml((DEPLOY_BASE / name).read_text()))
    return objects


def create_namespace(client: Client, role: Mapping[str, Any] | None = None) -> str:
    """A fresh namespace holding the reporter's ServiceAccount, Role and RoleBinding."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    client.create(Namespace(metadata=ObjectMeta(name=name)))
    for obj in deploy_objects(role):
        client.create(obj, namespace=name)
    return name


def service_account_token(
    client: Client, namespace: str, account: str = REPORTER, bound_secret: str | None = None
) -> str:
    """A bound token for the ServiceAccount, from the TokenRequest API.

    With ``bound_secret`` the token is bound to a new Secret of that name: deleting the
    Secret revokes the token (how the tests make a token stop working).
    """
    bound = None
    if bound_secret is not None:
        secret = client.create(Secret(metadata=ObjectMeta(name=bound_secret)), namespace=namespace)
        assert secret.metadata is not None
        bound = BoundObjectReference(
            apiVersion="v1", kind="Secret", name=bound_secret, uid=secret.metadata.uid
        )
    spec = TokenRequestSpec(audiences=[], expirationSeconds=3600, boundObjectRef=bound)
    request = ServiceAccount.Token(metadata=ObjectMeta(), spec=spec)
    response = client.create(request, name=account, namespace=namespace)
    assert response.status is not None
    return str(response.status.token)


@dataclass
class AdapterJob:
    """A Job, its Pod and the adapter's results directory."""

    client: Client
    namespace: str
    name: str
    pod: str
    results_dir: Path
    adapter: str = "adapter"

    @property
    def results_path(self) -> Path:
        """Where the adapter writes its result."""
        return self.results_dir / "adapter-result.json"

    # --- the adapter ---------------------------------------------------------------

    def write_result(self, content: str | Mapping[str, Any]) -> None:
        """Write the result file whole (one open, write, close)."""
        text = content if isinstance(content, str) else json.dumps(content)
        self.results_path.write_text(text)

    def append_result(self, text: str) -> None:
        """Add to the result file (for results written in several steps)."""
        with self.results_path.open("a") as handle:
            handle.write(text)

    def write_result_atomically(self, content: Mapping[str, Any]) -> None:
        """Write to a temporary file and rename it into place."""
        temporary = self.results_dir / ".adapter-result.json.tmp"
        temporary.write_text(json.dumps(content))
        os.replace(temporary, self.results_path)

    # --- the kubelet -----------------------------------------------------------------

    def set_adapter(
        self, state: Mapping[str, Any], last_state: Mapping[str, Any] | None = None
    ) -> None:
        """Report the adapter container's state in the Pod status."""
        self.set_container(self.adapter, state, last_state)

    def set_container(
        self, container: str, state: Mapping[str, Any], last_state: Mapping[str, Any] | None = None
    ) -> None:
        """Report one container's state; the others keep theirs."""
        pod = self.client.get(Pod, self.pod, namespace=self.namespace)
        assert pod.status is not None
        statuses = {s.name: s.to_dict() for s in pod.status.containerStatuses or []}
        ready = "running" in state
        statuses[container] = {
            "name": container,
            "image": f"example.com/{container}:1",
            "imageID": "",
            "ready": ready,
            "started": ready,
            "restartCount": 0,
            "state": dict(state),
            "lastState": dict(last_state or {}),
        }
        patch = {"status": {"phase": "Running", "containerStatuses": list(statuses.values())}}
        self.client.patch(
            Pod.Status, self.pod, patch, namespace=self.namespace, patch_type=PatchType.MERGE
        )

    def running(self) -> None:
        """The adapter started."""
        self.set_adapter({"running": {"startedAt": now()}})

    def terminated(self, exit_code: int, reason: str, message: str = "") -> None:
        """The adapter exited."""
        state: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": now(),
            "finishedAt": now(),
        }
        if message:
            state["message"] = message
        self.set_adapter({"terminated": state})

    def waiting(self, reason: str, message: str = "") -> None:
        """The adapter cannot start (image pull back-off and the like)."""
        state = {"reason": reason, **({"message": message} if message else {})}
        self.set_adapter({"waiting": state})

    # --- reading back ------------------------------------------------------------------

    def job(self) -> Job:
        """The Job as stored."""
        return self.client.get(Job, self.name, namespace=self.namespace)

    def conditions(self) -> list[dict[str, Any]]:
        """The Job's conditions as stored."""
        job = self.job()
        if job.status is None or not job.status.conditions:
            return []
        return [c.to_dict() for c in job.status.conditions]

    def condition(self, condition_type: str = "Available") -> dict[str, Any] | None:
        """The condition the reporter writes, if present."""
        return next((c for c in self.conditions() if c["type"] == condition_type), None)


def _container(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"example.com/{name}:1",
        "volumeMounts": [{"name": "results", "mountPath": "/results"}],
        **extra,
    }


def create_job(
    client: Client,
    namespace: str,
    results_dir: Path,
    *,
    name: str | None = None,
    adapter: str = "adapter",
    native_sidecar: bool = False,
    extra_containers: tuple[str, ...] = (),
) -> AdapterJob:
    """Create a Job and the Pod the Job controller would create for it (bound to a node)."""
    name = name or f"job-{uuid.uuid4().hex[:8]}"
    reporter = _container(REPORTER)
    containers = [_container(adapter), *(_container(n) for n in extra_containers)]
    pod_spec: dict[str, Any] = {
        "serviceAccountName": REPORTER,
        "restartPolicy": "Never",
        "volumes": [{"name": "results", "emptyDir": {}}],
        "containers": containers,
    }
    if native_sidecar:
        pod_spec["initContainers"] = [{**reporter, "restartPolicy": "Always"}]
    else:
        pod_spec["containers"] = [*containers, reporter]
    job_body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}},
    }
    return create_job_from_manifest(client, namespace, job_body, results_dir)


def patch_job_condition(client: Client, job: AdapterJob, condition: Mapping[str, Any]) -> None:
    """Another writer adds or changes a condition on the Job."""
    client.patch(
        Job.Status,
        job.name,
        {"status": {"conditions": [dict(condition)]}},
        namespace=job.namespace,
        patch_type=PatchType.STRATEGIC,
    )


def kustomization(directory: Path) -> list[Path]:
    """The resources a kustomization in ``directory`` lists."""
    document = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return [directory / entry for entry in document["resources"]]


def load_manifest(path: Path) -> dict[str, Any]:
    """One YAML document from ``deploy/``."""
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def reporter_container(job_manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The status-reporter container of a Job manifest (classic or native)."""
    spec = job_manifest["spec"]["template"]["spec"]
    candidates = [*spec.get("containers", []), *spec.get("initContainers", [])]
    container: dict[str, Any] = next(c for c in candidates if c["name"] == REPORTER)
    return container


def reporter_env(job_manifest: Mapping[str, Any], job: AdapterJob) -> dict[str, str]:
    """The reporter's environment as the kubelet would resolve it for ``job``'s Pod."""
    fields = {"metadata.namespace": job.namespace, "metadata.name": job.pod}
    env = {}
    for item in reporter_container(job_manifest).get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def renamed(manifest: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A copy of a Job manifest under another name, ``JOB_NAME`` included."""
    body: dict[str, Any] = json.loads(json.dumps(manifest))
    body["metadata"]["name"] = name
    for item in reporter_container(body).get("env", []):
        if item["name"] == "JOB_NAME":
            item["value"] = name
    return body


def create_job_from_manifest(
    client: Client, namespace: str, manifest: Mapping[str, Any], results_dir: Path
) -> AdapterJob:
    """Create a Job from its manifest in ``namespace``, and the Pod the Job controller
    would create for it (bound to a node)."""
    body: dict[str, Any] = json.loads(json.dumps(manifest))
    body["metadata"]["namespace"] = namespace
    name = body["metadata"]["name"]
    job = client.create(cast(Job, Job.from_dict(body)))
    assert job.metadata is not None
    assert job.spec is not None
    pod_spec = body["spec"]["template"]["spec"]
    template_labels = job.spec.template.metadata.labels if job.spec.template.metadata else None
    pod_body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{name}-",
            "namespace": namespace,
            "labels": dict(template_labels or {}),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": name,
                    "uid": job.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {**pod_spec, "nodeName": NODE},
    }
    pod = client.create(cast(Pod, Pod.from_dict(pod_body)))
    assert pod.metadata is not None
    assert pod.metadata.name is not None
    results_dir.mkdir(parents=True, exist_ok=True)
    adapter = next(c["name"] for c in pod_spec["containers"] if c["name"] != REPORTER)
    return AdapterJob(client, namespace, name, pod.metadata.name, results_dir, adapter)
