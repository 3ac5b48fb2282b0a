"""The few Kubernetes API fields the reporter reads, as typed msgspec structs.

Decoding into these structs skips every other field of a Pod or Job without
building it, which keeps memory and CPU per API response small.
"""

# No ``from __future__ import annotations`` here: msgspec reads these annotations when
# a decoder is built (at import, in api/kube.py), and as strings typing would compile
# and evaluate each one: 2 M instructions, about 0.6 ms of every start-up.
import msgspec


class _Model(msgspec.Struct, rename="camel", omit_defaults=True):
    """Field names are snake_case here and camelCase on the wire."""


class OwnerReference(_Model):
    """One entry of ``metadata.ownerReferences``."""

    kind: str = ""
    name: str = ""
    api_version: str = ""
    controller: bool = False


class ObjectMeta(_Model):
    """``metadata``."""

    name: str = ""
    uid: str = ""
    resource_version: str = ""
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    owner_references: list[OwnerReference] = []
    # Read for LOG_CONTEXT (README "Logs"), from the reads start-up makes anyway.
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class Running(_Model):
    """``state.running``."""

    started_at: str | None = None


class TerminatedState(_Model):
    """``state.terminated``."""

    exit_code: int = 0
    reason: str = ""
    message: str = ""
    finished_at: str | None = None


class WaitingState(_Model):
    """``state.waiting``."""

    reason: str = ""
    message: str = ""


class ContainerState(_Model):
    """A container's ``state`` or ``lastState``: at most one member is set."""

    running: Running | None = None
    terminated: TerminatedState | None = None
    waiting: WaitingState | None = None


class ContainerStatus(_Model):
    """One entry of ``status.containerStatuses`` or ``initContainerStatuses``."""

    name: str
    state: ContainerState | None = None
    last_state: ContainerState | None = None


class Container(_Model):
    """One entry of ``spec.containers`` or ``spec.initContainers``."""

    name: str
    restart_policy: str | None = None


class PodSpec(_Model):
    """``spec`` of a Pod."""

    containers: list[Container] = []
    init_containers: list[Container] = []


class PodStatus(_Model):
    """``status`` of a Pod."""

    container_statuses: list[ContainerStatus] = []
    init_container_statuses: list[ContainerStatus] = []


class Pod(_Model):
    """A Pod."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)


class JobCondition(_Model):
    """One entry of a Job's ``status.conditions``."""

    type: str
    status: str = ""
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None


class JobSpec(_Model):
    """``spec`` of a Job."""

    active_deadline_seconds: int | None = None


class JobStatus(_Model):
    """``status`` of a Job."""

    conditions: list[JobCondition] = []
    start_time: str | None = None


class Job(_Model):
    """A Job."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: JobSpec = msgspec.field(default_factory=JobSpec)
    status: JobStatus = msgspec.field(default_factory=JobStatus)


class Status(_Model):
    """The API server's ``Status`` object: the body of an error response."""

    code: int = 0
    reason: str = ""
    message: str = ""


class Bookmark(_Model):
    """The object of a watch BOOKMARK event: only its resourceVersion is meaningful (the
    rest of the object is empty, with nulls where a real Pod has lists)."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)


class WatchEvent(_Model):
    """One line of a watch response; ``object`` is decoded by the event type."""

    type: str
    object: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class ResourceRule(_Model):
    """One rule of a SelfSubjectRulesReview."""

    verbs: list[str] = []
    api_groups: list[str] = []
    resources: list[str] = []
    resource_names: list[str] = []


class RulesReviewStatus(_Model):
    """``status`` of a SelfSubjectRulesReview."""

    resource_rules: list[ResourceRule] = []
    incomplete: bool = False


class RulesReview(_Model):
    """A SelfSubjectRulesReview response."""

    status: RulesReviewStatus = msgspec.field(default_factory=RulesReviewStatus)
