"""Jobs derived from ``deploy/examples`` and run on the real node, with what must result.

Each Job is an example Job as shipped, changed only where this machine needs it:
the local images with ``imagePullPolicy: Never``, ``hostNetwork: true`` with the
API server's loopback address in the reporter's environment, the adapter's script,
and per-scenario environment overrides. The outcome is read the way a downstream
controller reads it: the Job's ``status.conditions``.
"""

from __future__ import annotations

import copy
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import yaml
from lightkube import ALL_NS, Client
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod

from harness.cluster import REFERENCE_ROLE, deploy_objects
from harness.controlplane import ROOT
from harness.node import Node

EXAMPLES = {
    "classic": ROOT / "deploy" / "examples" / "classic-sidecar-job.yaml",
    "native": ROOT / "deploy" / "examples" / "native-sidecar-job.yaml",
}
MODES = ("classic", "native")
REPORTER = "status-reporter"
ADAPTER = "adapter"
CONDITION = "Available"
RUN_LABEL = "status-reporter.test/run"
JOB_LABEL = "batch.kubernetes.io/job-name"
MISSING_IMAGE = "localhost/status-reporter-cluster-missing:never"
RESULTS = "/results/adapter-result.json"


def write_result(status: str, reason: str, message: str) -> str:
    """Shell lines that write a result file the way the examples do: a rename."""
    body = f'{{"status": "{status}", "reason": "{reason}", "message": "{message}"}}'
    return f"printf '%s' '{body}' > {RESULTS}.tmp\nmv {RESULTS}.tmp {RESULTS}\n"


@dataclass(frozen=True)
class Scenario:
    """One adapter behaviour and the condition and Job outcome it must lead to."""

    name: str
    adapter_script: str
    status: str
    reason: str
    message: str
    # The Job controller's verdict, per mode: its own terminal condition type.
    job: Mapping[str, str]
    # The reporter container's allowed exit codes, per mode (README, exit codes);
    # None where the Job controller removes the Pod before it can be read.
    reporter_exit: Mapping[str, tuple[int, ...]] | None
    adapter_image: str | None = None
    adapter_limits: Mapping[str, str] = field(default_factory=dict)
    reporter_env: Mapping[str, str] = field(default_factory=dict)
    active_deadline: int | None = None
    reference_role: bool = False
    # A regular expression the message must match, where it depends on timing.
    message_pattern: str | None = None
    # The condition must be on the Job before the Job controller ends it at its deadline.
    before_job_deadline: bool = False


BOTH_COMPLETE = {"classic": "Complete", "native": "Complete"}
BOTH_FAILED = {"classic": "Failed", "native": "Failed"}
# A classic reporter exits 0 for a valid result and 1 for an adapter problem; a
# native one is stopped by the kubelet after reporting and exits 0.
REPORTED_RESULT = {"classic": (0,), "native": (0,)}
REPORTED_PROBLEM = {"classic": (1,), "native": (0,)}
# The adapter works for a while first, as real adapters do: the reporter has
# started, and watches (or polls) the Pod, by the time the adapter acts, even with
# every scenario's Pod starting at once on two cores.
WORK = "echo 'validating...'\nsleep 8\n"
TERMINATION_MESSAGE = (
    "printf 'connecting to cloud API\\npanic: credentials rejected\\n' > /dev/termination-log\n"
)
CRASH_SCRIPT = WORK + TERMINATION_MESSAGE + "exit 1\n"
CRASH_MESSAGE = "Adapter container exited with code 1: Error: panic: credentials rejected"

# The adapter hangs; the Job's own deadline (25 s) comes long before MAX_WAIT_TIME_SECONDS
# (300 s): the reporter's wait ends 5 s before the deadline, counted from the Job's start.
JOB_DEADLINE = Scenario(
    name="job-deadline",
    adapter_script="echo 'validating...'\nexec sleep 3600\n",
    reporter_env={"MAX_WAIT_TIME_SECONDS": "300"},
    active_deadline=25,
    status="False",
    reason="AdapterTimeout",
    message="Adapter did not produce results within 20s",
    # 20 s less the time from the Job's start to the reporter's.
    message_pattern=r"Adapter did not produce results within (1?[0-9]|20)s",
    job=BOTH_FAILED,
    # The Job controller removes the Pod at its deadline.
    reporter_exit=None,
    before_job_deadline=True,
)

SCENARIOS = (
    Scenario(
        name="success",
        adapter_script=WORK + write_result("success", "ValidationPassed", "All checks passed"),
        status="True",
        reason="ValidationPassed",
        message="All checks passed",
        job=BOTH_COMPLETE,
        reporter_exit=REPORTED_RESULT,
    ),
    Scenario(
        name="failure",
        adapter_script=WORK
        + write_result(
            "failure", "MissingPermissions", "Service account lacks required IAM permissions"
        ),
        status="False",
        reason="MissingPermissions",
        message="Service account lacks required IAM permissions",
        job=BOTH_COMPLETE,
        reporter_exit=REPORTED_RESULT,
    ),
    Scenario(
        name="crash",
        adapter_script=CRASH_SCRIPT,
        status="False",
        reason="AdapterExitedWithError",
        message=CRASH_MESSAGE,
        job=BOTH_FAILED,
        reporter_exit=REPORTED_PROBLEM,
    ),
    Scenario(
        # The adapter fails at once: a native sidecar is told to stop while it is
        # still starting, a classic one starts after the adapter has gone.
        name="crash-at-once",
        adapter_script=TERMINATION_MESSAGE + "exit 1\n",
        status="False",
        reason="AdapterExitedWithError",
        message=CRASH_MESSAGE,
        job=BOTH_FAILED,
        # A native sidecar exits 0 when stopped, whether the stop came before or after
        # it reported; a SIGTERM it never sees would show as 137 after the 30 s grace
        # period.
        reporter_exit={"classic": (1,), "native": (0,)},
    ),
    Scenario(
        name="oomkilled",
        # dd is killed by the kernel's OOM killer under the 16Mi limit. The shell
        # outlives it by a second: with containerd 1.6 on cgroup v1, the exit of
        # an OOM-killed PID 1 can be handled before the OOM event, and the kubelet
        # then reports reason Error instead of OOMKilled.
        adapter_script=WORK + "dd if=/dev/zero of=/dev/null bs=100M count=1\nrc=$?\nsleep 1\n"
        "exit $rc\n",
        adapter_limits={"memory": "16Mi"},
        status="False",
        reason="AdapterOOMKilled",
        message="Adapter container was killed due to out of memory (OOMKilled)",
        job=BOTH_FAILED,
        reporter_exit=REPORTED_PROBLEM,
    ),
    Scenario(
        name="no-result",
        adapter_script=WORK + "exit 0\n",
        status="False",
        reason="AdapterMissingResults",
        message="Adapter container exited successfully (code 0) but did not produce a valid "
        "result file: Completed",
        # The classic reporter exits 1 for an adapter problem, which fails the Pod; a
        # native sidecar's exit code does not count.
        job={"classic": "Failed", "native": "Complete"},
        reporter_exit=REPORTED_PROBLEM,
    ),
    Scenario(
        name="never-starts",
        adapter_script="exit 0\n",
        adapter_image=MISSING_IMAGE,
        # The kubelet usually shows ErrImageNeverPull within a second of the reporter's
        # start; once, under the load of 16 Jobs, a native sidecar's adapter was still
        # PodInitializing 10 s after it. 15 s leaves room for that.
        reporter_env={"MAX_WAIT_TIME_SECONDS": "15"},
        # Longer than the reporter's start plus its 15 s, so it reports before the
        # Job controller kills the Pod.
        active_deadline=35,
        status="False",
        reason="AdapterTimeout",
        message="Adapter did not produce results within 15s (adapter waiting: "
        f'ErrImageNeverPull: Container image "{MISSING_IMAGE}" is not present with pull policy '
        "of Never)",
        job=BOTH_FAILED,
        reporter_exit=None,
    ),
    Scenario(
        name="crash-reference-role",
        adapter_script=CRASH_SCRIPT,
        reference_role=True,
        status="False",
        reason="AdapterExitedWithError",
        message=CRASH_MESSAGE,
        job=BOTH_FAILED,
        reporter_exit=REPORTED_PROBLEM,
    ),
    JOB_DEADLINE,
)


def by_name(name: str) -> Scenario:
    """The scenario called ``name``."""
    return next(s for s in SCENARIOS if s.name == name)


def derive_job(
    mode: str,
    scenario: Scenario,
    name: str,
    reporter_image: str,
    node: Node,
    run: str,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The example Job of ``mode`` (or ``source``), adapted to this node and the scenario."""
    job: dict[str, Any] = copy.deepcopy(
        dict(source) if source is not None else yaml.safe_load(EXAMPLES[mode].read_text())
    )
    job["metadata"] = {"name": name, "labels": {RUN_LABEL: run}}
    if scenario.active_deadline is not None:
        job["spec"]["activeDeadlineSeconds"] = scenario.active_deadline
    pod = job["spec"]["template"]["spec"]
    # No Pod network on this node: the Pod shares the host's loopback.
    pod["hostNetwork"] = True
    containers = [*pod.get("initContainers", []), *pod["containers"]]
    for container in containers:
        container["imagePullPolicy"] = "Never"
        if container["name"] == REPORTER:
            container["image"] = reporter_image
            overrides = {
                # The kubelet's service variables point at the Service IP, which
                # nothing routes here; explicit values win.
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(node.api_port),
                **scenario.reporter_env,
            }
            env = [e for e in container.get("env", []) if e["name"] not in overrides]
            container["env"] = env + [{"name": k, "value": v} for k, v in overrides.items()]
        elif container["name"] == ADAPTER:
            container["image"] = scenario.adapter_image or node.adapter_image
            container["command"] = ["/bin/sh", "-c"]
            container["args"] = [scenario.adapter_script]
            if scenario.adapter_limits:
                container["resources"] = {"limits": dict(scenario.adapter_limits)}
    return job


RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def restricted_namespace(client: Client) -> str:
    """A namespace whose Pods must meet the ``restricted`` Pod Security level (the API
    server's built-in PodSecurity admission)."""
    name = f"ps-{uuid.uuid4().hex[:8]}"
    client.create(Namespace(metadata=ObjectMeta(name=name, labels=RESTRICTED)))
    for obj in deploy_objects():  # the Pods name the ServiceAccount
        client.create(obj, namespace=name)
    return name


class NotAdmitted(AssertionError):
    """The PodSecurity admission refused a Job's Pod."""


def admit_restricted(client: Client, namespace: str, job: Mapping[str, Any]) -> None:
    """Have the API server admit ``job``'s Pod (a dry run) in the restricted ``namespace``.

    ``hostNetwork`` is left out: it is this node's only change that the restricted
    level forbids (there is no Pod network here; README "Security"). Everything else
    is judged as it runs.

    Raises:
        NotAdmitted: the admission's message, naming every violation.
    """
    template = copy.deepcopy(job["spec"]["template"])
    template["spec"].pop("hostNetwork", None)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{job['metadata']['name']}-admission"},
        "spec": template["spec"],
    }
    try:
        client.create(cast(Pod, Pod.from_dict(pod)), namespace=namespace, dry_run=True)
    except ApiError as exc:
        raise NotAdmitted(f"{job['metadata']['name']}: {exc.status.message}") from None


def create_namespace(client: Client, *, reference_role: bool = False) -> str:
    """A fresh namespace with ``deploy/base`` (or its Role swapped for the reference one).

    Returns once the root CA ConfigMap the projected volume needs is published.
    """
    name = f"cl-{uuid.uuid4().hex[:8]}"
    client.create(Namespace(metadata=ObjectMeta(name=name)))
    for obj in deploy_objects(REFERENCE_ROLE if reference_role else None):
        client.create(obj, namespace=name)
    wait_root_ca(client, name)
    return name


def wait_root_ca(client: Client, namespace: str, timeout: float = 60) -> None:
    """Wait until the root CA ConfigMap that projected tokens need is in ``namespace``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.get(ConfigMap, "kube-root-ca.crt", namespace=namespace)
            return
        except ApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass
class Outcome:
    """What one Job showed: our condition, the Job controller's, and when."""

    scenario: Scenario
    mode: str
    namespace: str
    job: str
    created: float
    conditions: list[dict[str, Any]] = field(default_factory=list)
    condition_after: float | None = None
    finished_after: float | None = None
    reporter_exit: int | None = None

    @property
    def ours(self) -> dict[str, Any] | None:
        """The reporter's condition, if it was written."""
        return next((c for c in self.conditions if c["type"] == CONDITION), None)

    @property
    def verdict(self) -> dict[str, Any] | None:
        """The Job controller's terminal condition (Complete or Failed), if any."""
        return next(
            (
                c
                for c in self.conditions
                if c["type"] in ("Complete", "Failed") and c["status"] == "True"
            ),
            None,
        )

    def problems(self) -> list[str]:
        """Every way this outcome differs from what the scenario must lead to."""
        s = self.scenario
        ours = self.ours
        found: list[str] = []
        if ours is None:
            found.append(f"no {CONDITION} condition")
        else:
            got = (ours["status"], ours["reason"])
            if got != (s.status, s.reason):
                found.append(f"condition {got}, want {(s.status, s.reason)}")
            message = ours.get("message", "")
            if s.message_pattern is not None:
                if not re.fullmatch(s.message_pattern, message):
                    found.append(f"message {message!r}, want /{s.message_pattern}/")
            elif message != s.message:
                found.append(f"message {message!r}, want {s.message!r}")
            if not ours.get("lastTransitionTime"):
                found.append("no lastTransitionTime")
        verdict = self.verdict
        want = s.job[self.mode]
        if verdict is None or verdict["type"] != want:
            found.append(f"Job ended {verdict and verdict['type']}, want {want}")
        types = [c["type"] for c in self.conditions]
        companion = "SuccessCriteriaMet" if want == "Complete" else "FailureTarget"
        if companion not in types:
            found.append(f"no {companion} next to {want}: {types}")
        if types.count(CONDITION) != 1:
            found.append(f"{types.count(CONDITION)} {CONDITION} conditions")
        if s.before_job_deadline:
            found += self._before_deadline()
        allowed = s.reporter_exit[self.mode] if s.reporter_exit else None
        if allowed is not None and self.reporter_exit not in allowed:
            found.append(f"reporter exited {self.reporter_exit}, want one of {allowed}")
        return found

    def _before_deadline(self) -> list[str]:
        """Problems if our condition is not older than the Job controller's DeadlineExceeded."""
        ended = [
            c["lastTransitionTime"]
            for c in self.conditions
            if c.get("reason") == "DeadlineExceeded" and c.get("lastTransitionTime")
        ]
        ours = self.ours
        if not ended:
            return ["the Job did not end with DeadlineExceeded"]
        if ours is None or not ours["lastTransitionTime"] < min(ended):
            when = ours and ours["lastTransitionTime"]
            return [f"condition at {when}, not before DeadlineExceeded at {min(ended)}"]
        return []

    def read_reporter_exit(self, client: Client) -> None:
        """Record the reporter container's exit code from the ended Pod."""
        pod = pod_of(client, self.namespace, self.job)
        if pod is None or pod.status is None:
            return
        statuses = [*(pod.status.initContainerStatuses or [])]
        statuses += pod.status.containerStatuses or []
        for status in statuses:
            if status.name == REPORTER and status.state and status.state.terminated:
                self.reporter_exit = status.state.terminated.exitCode

    def describe(self, client: Client) -> str:
        """The Job's conditions, its Pod's container states and the reporter's log."""
        lines = [f"{self.mode}/{self.scenario.name} job {self.namespace}/{self.job}"]
        lines += [f"  condition {c}" for c in self.conditions]
        for pod in client.list(Pod, namespace=self.namespace, labels={JOB_LABEL: self.job}):
            assert pod.status is not None
            assert pod.metadata is not None
            statuses = [*(pod.status.initContainerStatuses or [])]
            statuses += pod.status.containerStatuses or []
            for status in statuses:
                lines.append(f"  container {status.name}: {status.state}")
            try:
                log = client.log(
                    str(pod.metadata.name), namespace=self.namespace, container=REPORTER
                )
                lines += ["  reporter log:", *(f"    {line.rstrip()}" for line in log)]
            except ApiError as exc:
                lines.append(f"  reporter log unavailable: {exc}")
        return "\n".join(lines)


@dataclass
class Batch:
    """Jobs created together, under one run label, and what they showed so far."""

    run: str
    outcomes: dict[tuple[str, str], Outcome]

    def wait(self, client: Client, timeout: float = 180) -> list[Outcome]:
        """Wait until every Job is done; the outcomes in creation order.

        A Job is done when the Job controller has ended it and the reporter's
        condition is there (or 15 s have passed since the end without it).
        """
        deadline = time.monotonic() + timeout
        pending = set(self.outcomes)
        while pending and time.monotonic() < deadline:
            now = time.monotonic()
            for job in client.list(Job, namespace=ALL_NS, labels={RUN_LABEL: self.run}):
                assert job.metadata is not None
                key = (str(job.metadata.namespace), str(job.metadata.name))
                if key not in pending:
                    continue
                outcome = self.outcomes[key]
                conditions = job.status.conditions if job.status else None
                outcome.conditions = [c.to_dict() for c in conditions or []]
                if outcome.ours is not None and outcome.condition_after is None:
                    outcome.condition_after = now - outcome.created
                if outcome.verdict is not None and outcome.finished_after is None:
                    outcome.finished_after = now - outcome.created
                if outcome.finished_after is not None and (
                    outcome.ours is not None or now - outcome.created > outcome.finished_after + 15
                ):
                    outcome.read_reporter_exit(client)
                    pending.discard(key)
            time.sleep(0.25)
        return list(self.outcomes.values())


def launch(
    client: Client,
    node: Node,
    reporter_image: str,
    plan: Sequence[tuple[Scenario, str, str, str]],
    *,
    sources: Mapping[str, Mapping[str, Any]] | None = None,
    pod_security: Mapping[str, Any] | None = None,
) -> Batch:
    """Create every Job of ``plan`` (scenario, mode, namespace, Job name) at once, each
    admitted first at the restricted Pod Security level (:func:`admit_restricted`).

    ``sources`` replaces the example Job of a mode; ``pod_security`` is added to each
    Pod's security context (what an OpenShift SCC would assign).
    """
    batch = Batch(run=uuid.uuid4().hex[:10], outcomes={})
    manifests = []
    for scenario, mode, _, name in plan:
        source = sources.get(mode) if sources is not None else None
        manifest = derive_job(mode, scenario, name, reporter_image, node, batch.run, source)
        context = manifest["spec"]["template"]["spec"].setdefault("securityContext", {})
        context.update(pod_security or {})
        manifests.append(manifest)
    restricted = restricted_namespace(client)
    for manifest in manifests:
        admit_restricted(client, restricted, manifest)
    for (scenario, mode, namespace, name), manifest in zip(plan, manifests, strict=True):
        client.create(cast(Job, Job.from_dict(manifest)), namespace=namespace)
        batch.outcomes[namespace, name] = Outcome(scenario, mode, namespace, name, time.monotonic())
    return batch


def launch_all(client: Client, node: Node, reporter_image: str) -> Batch:
    """Every scenario in every mode at once, each in a new namespace of its Role."""
    project = create_namespace(client)
    reference = create_namespace(client, reference_role=True)
    plan = [
        (s, mode, reference if s.reference_role else project, f"{s.name}-{mode}")
        for s in SCENARIOS
        for mode in MODES
    ]
    return launch(client, node, reporter_image, plan)


def pod_of(client: Client, namespace: str, job: str) -> Pod | None:
    """The Job's Pod, once the Job controller has created it."""
    pods = list(client.list(Pod, namespace=namespace, labels={JOB_LABEL: job}))
    return pods[0] if pods else None


def container_ids(pod: Pod) -> dict[str, str]:
    """Containerd IDs of the Pod's running containers, by container name."""
    assert pod.status is not None
    statuses = [*(pod.status.initContainerStatuses or []), *(pod.status.containerStatuses or [])]
    return {
        s.name: s.containerID.removeprefix("containerd://")
        for s in statuses
        if s.containerID and s.state is not None and s.state.running is not None
    }


def wait_running(
    client: Client, namespace: str, job: str, names: Sequence[str], timeout: float = 60
) -> tuple[Pod, dict[str, str]]:
    """Wait until the named containers of the Job's Pod all run; their containerd IDs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = pod_of(client, namespace, job)
        if pod is not None:
            ids = container_ids(pod)
            if all(n in ids for n in names):
                return pod, ids
        time.sleep(0.2)
    raise TimeoutError(f"{names} of job {namespace}/{job} not running after {timeout:.0f}s")


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "-"


def table(outcomes: Sequence[Outcome]) -> str:
    """The outcomes as a Markdown table: condition, Job verdict, reporter exit, times."""
    rows = [
        "| scenario | mode | condition | Job | reporter exit | condition after | Job ended after "
        "| ok |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        ours, verdict, problems = o.ours, o.verdict, o.problems()
        condition = f"{ours['status']} {ours['reason']}" if ours else "-"
        job = f"{verdict['type']} ({verdict.get('reason', '')})" if verdict else "-"
        exit_code = "-" if o.reporter_exit is None else str(o.reporter_exit)
        ok = "NO: " + "; ".join(problems) if problems else "yes"
        rows.append(
            f"| {o.scenario.name} | {o.mode} | {condition} | {job} | {exit_code} "
            f"| {_seconds(o.condition_after)} | {_seconds(o.finished_after)} | {ok} |"
        )
    return "\n".join(rows)


# Runs long enough to look inside both containers, then reports success and keeps
# the Pod up a little longer, so a native sidecar idles after reporting.
INSPECT = Scenario(
    name="inspect",
    adapter_script="sleep 8\n"
    + write_result("success", "ValidationPassed", "All checks passed")
    + "sleep 4\n",
    status="True",
    reason="ValidationPassed",
    message="All checks passed",
    job=BOTH_COMPLETE,
    reporter_exit=REPORTED_RESULT,
)
