"""HyperFleet as its validation adapter really deploys the reporter (README "HyperFleet").

The adapter's chart (``harness/hyperfleet/chart``, rendered by helm) is installed twice:
as it ships, and with the ``rbac.rules`` value README shows for the Event. Each
install's ServiceAccount then creates, with its own token, a cluster namespace's
ServiceAccount, Role, RoleBinding and the dummy-validator Job, as the adapter does:

- (a) README's Role for HyperFleet under the stock ClusterRole: every case of the
  exit-code table, with the sidecar; the Pod is watched, no Event;
- (b) the project Role (events rule included) under the ClusterRole plus ``rbac.rules``:
  the Event is recorded;
- (c) the Go image's Role, HyperFleet's own (``validation-adapter.yaml``): the Pod is
  polled, never watched;
- (d) the project Role under the stock ClusterRole: refused, no Job;

and the same cases without the sidecar, read by the Job's own conditions. Every Job
ends with the adapter's own CEL expressions reading it (``harness/cel.py``).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from harness import consumer, exit_codes
from harness.cluster import DEPLOY
from harness.consumer import View
from harness.exit_codes import CASES, Case, Row
from harness.node import Node, report
from harness.scenarios import wait_root_ca
from harness.validation_adapter import (
    EVENTS_VALUE_MARK,
    ROLE_MARK,
    Adapter,
    install,
    readme_yaml,
)
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Event as CoreEvent
from lightkube.resources.core_v1 import Namespace

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

TASK_ACCOUNT = "validation-adapter-task-sa"
# What the consumer reads with the sidecar: (status, reason, a pattern of the message).
WITH_SIDECAR: dict[str, tuple[str, str, str]] = {
    "success": (
        "True",
        "ValidationPassed",
        re.escape("GCP environment validated successfully (simulated)"),
    ),
    "failure": (
        "False",
        "MissingPermissions",
        re.escape("Service account lacks required IAM permissions (simulated)"),
    ),
    "hang": ("False", "AdapterTimeout", "Adapter did not produce results within 20s"),
    "crash": (
        "False",
        "AdapterExitedWithError",
        "Adapter container exited with code 1: Error",
    ),
    # The parse error, then "; adapter exited with code 0" when the adapter's exit was
    # seen before the invalid file settled.
    "invalid-json": (
        "False",
        "InvalidResultFormat",
        re.escape("Failed to parse adapter result: invalid JSON: ") + ".*",
    ),
    "missing-status": (
        "False",
        "InvalidResultFormat",
        re.escape("Failed to parse adapter result: status: must be either 'success' or 'failure'")
        + ".*",
    ),
    "something-else": (
        "True",
        "ValidationPassed",
        re.escape("GCP environment validated successfully (default simulation)"),
    ),
    "oom": (
        "False",
        "AdapterOOMKilled",
        re.escape("Adapter container was killed due to out of memory (OOMKilled)"),
    ),
    # 25 s before the 30 s deadline, less the time from the Job's start to the reporter's.
    "deadline": (
        "False",
        "AdapterTimeout",
        r"Adapter did not produce results within (1?[0-9]|2[0-5])s",
    ),
}
IN_PROGRESS = ("False", "ValidationInProgress", "Validation in progress")
FAILED = ("False", "ValidationFailed", "Validation failed")
PENDING = ("False", "ValidationPending", "Validation is pending")
# Without the sidecar: the Job's own terminal condition, and what the consumer reads.
WITHOUT_SIDECAR: dict[str, tuple[str, View]] = {
    "success": ("Complete", IN_PROGRESS),
    "failure": ("Failed", FAILED),
    "hang": ("Failed", FAILED),
    "crash": ("Failed", FAILED),
    "invalid-json": ("Complete", IN_PROGRESS),
    "missing-status": ("Complete", IN_PROGRESS),
    "something-else": ("Complete", IN_PROGRESS),
    "oom": ("Failed", FAILED),
    "deadline": ("Failed", FAILED),
}


@dataclass
class Namespaced:
    """One cluster namespace, what the adapter created in it, and its Jobs."""

    cluster_id: str
    refusal: str | None = None
    jobs: dict[str, str] = field(default_factory=dict)  # case name -> Job name
    finished: dict[str, dict[str, Any]] = field(default_factory=dict)  # case name -> Job
    views: dict[str, View] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.cluster_id.lower()


@dataclass
class Run:
    """Everything the module's tests look at."""

    recommended: Namespaced  # (a), with every case of the table
    with_events: Namespaced  # (b)
    go_role: Namespaced  # (c)
    refused: Namespaced  # (d)
    without_sidecar: Namespaced
    elapsed: float


def _project_role_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load((DEPLOY / "base" / "role.yaml").read_text())[
        "rules"
    ]
    return rules


def _prepare(
    kube: Client,
    adapter: Adapter,
    rules: list[dict[str, Any]] | None,
    config: Any = consumer.DUMMY_CONFIG,
) -> Namespaced:
    """A namespace (as HyperFleet's landing-zone adapter creates it) and, created by
    ``adapter``, the ServiceAccount, Role (with ``rules`` when given) and RoleBinding."""
    ns = Namespaced(cluster_id=f"HF-{uuid.uuid4().hex[:8]}")
    kube.create(Namespace(metadata=ObjectMeta(name=ns.namespace)))
    manifests = consumer.resources(consumer.params(ns.cluster_id, 1, "success", 300), config)
    if rules is not None:
        manifests[1]["rules"] = rules
    ns.refusal = adapter.create(manifests, ns.namespace)
    wait_root_ca(kube, ns.namespace)
    return ns


def _launch(
    adapter: Adapter, ns: Namespaced, case: Case, node: Node, image: str, *, sidecar: bool
) -> None:
    generation = len(ns.jobs) + 1
    values = consumer.params(ns.cluster_id, generation, case.simulate, case.max_wait)
    manifest = consumer.job(
        values,
        node,
        image,
        sidecar=sidecar,
        active_deadline=case.active_deadline,
        adapter_script=case.adapter_script,
    )
    refusal = adapter.create([manifest], ns.namespace)
    assert refusal is None, refusal
    ns.jobs[case.name] = manifest["metadata"]["name"]


def _finished(job: dict[str, Any]) -> bool:
    conditions = job.get("status", {}).get("conditions", [])
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)


def _discover(adapter: Adapter, namespaces: list[Namespaced], timeout: float = 240) -> None:
    """Read every Job with the adapter's identity, by label as its configuration
    discovers it, until each has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = 0
        for ns in namespaces:
            found = adapter.client.list(
                Job,
                namespace=ns.namespace,
                labels={
                    "hyperfleet.io/resource-type": "validation-job",
                    "hyperfleet.io/cluster-id": ns.cluster_id,
                },
            )
            by_name = {j.metadata.name: j.to_dict() for j in found if j.metadata}
            for case, name in ns.jobs.items():
                job = by_name.get(name)
                if job is not None and _finished(job):
                    ns.finished[case] = job
                else:
                    pending += 1
        if not pending:
            return
        time.sleep(1)


def _read(namespaces: list[Namespaced]) -> None:
    """The consumer's view of each namespace's Jobs (of no Job, where none was created)."""
    for ns in namespaces:
        names = list(ns.jobs) or ["(no Job)"]
        jobs = [ns.finished.get(name) for name in names]
        ns.views = dict(zip(names, consumer.consumer_views(jobs), strict=True))


@pytest.fixture(scope="module")
def run(kube: Client, node: Node, reporter_image: str, pytestconfig: pytest.Config) -> Run:
    started = time.monotonic()
    stock = install(kube, node, "validation-gcp", None)
    events = install(kube, node, "validation-gcp-events", readme_yaml(EVENTS_VALUE_MARK))
    project = _project_role_rules()
    hyperfleet_role = readme_yaml(ROLE_MARK)["rules"]
    result = Run(
        recommended=_prepare(kube, stock, hyperfleet_role),
        with_events=_prepare(kube, events, project),
        go_role=_prepare(kube, stock, None, consumer.VALIDATION_CONFIG),
        refused=_prepare(kube, stock, project),
        without_sidecar=_prepare(kube, stock, hyperfleet_role),
        elapsed=0.0,
    )
    for case in CASES:
        _launch(stock, result.recommended, case, node, reporter_image, sidecar=True)
        _launch(stock, result.without_sidecar, case, node, reporter_image, sidecar=False)
    by_name = {case.name: case for case in CASES}
    _launch(events, result.with_events, by_name["success"], node, reporter_image, sidecar=True)
    _launch(stock, result.go_role, by_name["crash"], node, reporter_image, sidecar=True)
    everything = [
        result.recommended,
        result.with_events,
        result.go_role,
        result.refused,
        result.without_sidecar,
    ]
    _discover(stock, everything)
    _read(everything)
    result.elapsed = time.monotonic() - started
    _report(pytestconfig, result)
    return result


def _report(config: pytest.Config, result: Run) -> None:
    lines = [f"HyperFleet, as its adapter creates the Jobs ({result.elapsed:.0f} s):"]
    for label, ns in (
        ("(a) README's Role, stock ClusterRole", result.recommended),
        ("(b) project Role, ClusterRole + rbac.rules", result.with_events),
        ("(c) the Go image's Role", result.go_role),
        ("(d) project Role, stock ClusterRole", result.refused),
    ):
        outcome = "created" if ns.refusal is None else f"refused: {ns.refusal}"
        first = next(iter(ns.views.values()), None)
        lines.append(f"  {label}: {outcome}; the consumer reads {first}")
    report(config, "\n".join(lines))


def _rows(result: Run) -> list[Row]:
    rows = []
    jobs = [result.without_sidecar.finished.get(case.name) for case in CASES]
    exit_code_readings = consumer.consumer_views(jobs, consumer.EXIT_CODE_CONFIG)
    for case, exit_code_reading in zip(CASES, exit_code_readings, strict=True):
        job = result.without_sidecar.finished.get(case.name, {})
        ended = [
            c
            for c in job.get("status", {}).get("conditions", [])
            if c["type"] in ("Complete", "Failed")
        ]
        condition = ", ".join(f"`{c['type']}` ({c.get('reason', '')})" for c in ended) or "—"
        rows.append(
            Row(
                case=case,
                with_sidecar=result.recommended.views[case.name],
                job_condition=condition,
                without_sidecar=result.without_sidecar.views[case.name],
                exit_code_reading=exit_code_reading,
            )
        )
    return rows


def _requests(node: Node, namespace: str) -> list[str]:
    """``verb resource`` of each request the Job's ServiceAccount (the reporter) made."""
    user = f"system:serviceaccount:{namespace}:{TASK_ACCOUNT}"
    return [
        f"{e['verb']} {e.get('objectRef', {}).get('resource', '')}"
        for e in node.audit_events()
        if e.get("user", {}).get("username") == user
    ]


def _reporter_events(kube: Client, ns: Namespaced, case: str) -> list[CoreEvent]:
    """The reporter's Events about the case's Job (read through core/v1, which also
    decodes the Job controller's Events)."""
    selector: dict[str, Any] = {"involvedObject.kind": "Job", "involvedObject.name": ns.jobs[case]}
    return [
        e
        for e in kube.list(CoreEvent, namespace=ns.namespace, fields=selector)
        if e.reportingComponent == "status-reporter"
    ]


def _matches(view: View, expected: tuple[str, str, str]) -> bool:
    status, reason, message = view
    return (status, reason) == expected[:2] and re.fullmatch(expected[2], message or "") is not None


def test_a_readmes_role_is_created_by_the_stock_adapter_and_reports(
    run: Run, node: Node, kube: Client
) -> None:
    ns = run.recommended
    assert ns.refusal is None
    assert _matches(ns.views["success"], WITH_SIDECAR["success"]), ns.views
    requests = _requests(node, ns.namespace)
    assert "watch pods" in requests, requests
    assert _reporter_events(kube, ns, "success") == []


def test_b_the_project_role_with_the_charts_rbac_rules_records_the_event(
    run: Run, kube: Client
) -> None:
    ns = run.with_events
    assert ns.refusal is None
    assert _matches(ns.views["success"], WITH_SIDECAR["success"]), ns.views
    (event,) = _reporter_events(kube, ns, "success")
    assert (event.reason, event.type, event.message) == (
        "ValidationPassed",
        "Normal",
        "GCP environment validated successfully (simulated)",
    )


def test_c_the_go_images_role_is_created_and_the_pod_polled(run: Run, node: Node) -> None:
    ns = run.go_role
    assert ns.refusal is None
    assert _matches(ns.views["crash"], WITH_SIDECAR["crash"]), ns.views
    requests = _requests(node, ns.namespace)
    assert "get pods" in requests
    assert not [r for r in requests if r.startswith(("watch ", "list "))], requests


def test_d_the_project_role_under_the_stock_cluster_role_is_refused(
    run: Run, pytestconfig: pytest.Config
) -> None:
    ns = run.refused
    report(pytestconfig, f"(d) the API server's answer to the adapter:\n{ns.refusal}")
    assert ns.refusal is not None
    assert 'roles.rbac.authorization.k8s.io "status-reporter" is forbidden' in ns.refusal
    assert "is attempting to grant RBAC permissions not currently held" in ns.refusal
    assert '{APIGroups:["events.k8s.io"], Resources:["events"], Verbs:["create"]}' in ns.refusal
    assert ns.jobs == {}
    assert ns.views == {"(no Job)": PENDING}
    readme = exit_codes.README.read_text()
    shown = readme.split("<!-- hyperfleet-refusal -->\n```\n", 1)[1].split("\n```", 1)[0]
    assert shown == ns.refusal, "README's refused-Role message is not the API server's"


@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_with_the_sidecar_the_consumer_reads_the_adapters_outcome(run: Run, case: str) -> None:
    view = run.recommended.views[case]
    assert _matches(view, WITH_SIDECAR[case]), view


@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_without_the_sidecar_the_consumer_reads_only_the_exit(run: Run, case: str) -> None:
    condition, view = WITHOUT_SIDECAR[case]
    job = run.without_sidecar.finished[case]
    types = {c["type"] for c in job["status"]["conditions"] if c["status"] == "True"}
    assert condition in types
    assert "Available" not in types
    assert run.without_sidecar.views[case] == view


def test_the_table_has_every_case_and_is_in_the_readme(
    run: Run, pytestconfig: pytest.Config
) -> None:
    assert (
        set(run.recommended.finished)
        == set(run.without_sidecar.finished)
        == {c.name for c in CASES}
    )
    section = exit_codes.publish(_rows(run))
    report(pytestconfig, section)
    names = [c.name for c in CASES]
    assert exit_codes.cases_in(exit_codes.RECORD.read_text()) == names
    assert exit_codes.cases_in(exit_codes.README.read_text()) == names
