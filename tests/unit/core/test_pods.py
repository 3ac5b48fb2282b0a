"""What the reporter reads from its Pod: the adapter, its state, the sidecar mode, deletion."""

from __future__ import annotations

import pytest

from status_reporter.core.config import ConfigError
from status_reporter.core.decision import AdapterState, Stop, Terminated, Waiting
from status_reporter.core.models import (
    Container,
    ContainerState,
    ContainerStatus,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodSpec,
    PodStatus,
    Running,
    TerminatedState,
    WaitingState,
)
from status_reporter.core.pods import (
    PodFacts,
    adapter_state,
    deletion,
    find_adapter,
    has_container,
    is_native_sidecar,
    is_older,
    owner_job,
    pod_facts,
    unix_time,
)


def pod(
    containers: tuple[str, ...] = ("adapter", "status-reporter"),
    init: tuple[Container, ...] = (),
    statuses: tuple[ContainerStatus, ...] = (),
    init_statuses: tuple[ContainerStatus, ...] = (),
) -> Pod:
    return Pod(
        metadata=ObjectMeta(name="pod-a"),
        spec=PodSpec(
            containers=[Container(name=n) for n in containers], init_containers=list(init)
        ),
        status=PodStatus(
            container_statuses=list(statuses), init_container_statuses=list(init_statuses)
        ),
    )


def test_auto_detection_takes_the_first_container_that_is_not_the_reporter() -> None:
    assert find_adapter(pod(("status-reporter", "dns", "metrics")), "", "status-reporter") == "dns"


def test_a_named_adapter_may_be_a_container_or_an_init_container() -> None:
    with_init = pod(("status-reporter",), init=(Container(name="setup"),))
    assert find_adapter(with_init, "setup", "status-reporter") == "setup"
    assert find_adapter(pod(), "adapter", "status-reporter") == "adapter"


def test_a_named_adapter_that_is_missing() -> None:
    with pytest.raises(ConfigError) as info:
        find_adapter(pod(), "dns", "status-reporter")
    assert (info.value.variable, info.value.value) == ("ADAPTER_CONTAINER_NAME", "dns")
    assert info.value.allowed == (
        "no such container in Pod pod-a (containers: adapter, status-reporter)"
    )
    with pytest.raises(ConfigError) as info:
        find_adapter(pod(()), "dns", "status-reporter")
    assert info.value.allowed == "no such container in Pod pod-a (containers: none)"


def test_no_candidate_for_the_adapter() -> None:
    with pytest.raises(ConfigError) as info:
        find_adapter(pod(("status-reporter",)), "", "status-reporter")
    assert (info.value.variable, info.value.value) == ("ADAPTER_CONTAINER_NAME", None)
    assert info.value.allowed == (
        "Pod pod-a has no container besides REPORTER_CONTAINER_NAME=status-reporter; "
        "name the adapter container"
    )


@pytest.mark.parametrize(
    ("init", "native"),
    [
        ((Container(name="status-reporter", restart_policy="Always"),), True),
        ((Container(name="status-reporter"),), False),
        ((Container(name="other", restart_policy="Always"),), False),
        ((), False),
    ],
)
def test_native_sidecar_detection(init: tuple[Container, ...], native: bool) -> None:
    assert is_native_sidecar(pod(("adapter",), init=init), "status-reporter") is native


def test_has_container() -> None:
    with_init = pod(("adapter",), init=(Container(name="status-reporter"),))
    assert has_container(with_init, "status-reporter")
    assert has_container(with_init, "adapter")
    assert not has_container(with_init, "other")


def _status(
    state: ContainerState | None, last: ContainerState | None = None, name: str = "adapter"
) -> ContainerStatus:
    return ContainerStatus(name=name, state=state, last_state=last)


RUNNING = ContainerState(running=Running())
DONE = ContainerState(
    terminated=TerminatedState(
        exit_code=2, reason="Error", message="m", finished_at="2026-11-26T10:00:00Z"
    )
)
WAITING = ContainerState(waiting=WaitingState(reason="CrashLoopBackOff", message="back-off"))


@pytest.mark.parametrize(
    ("state", "last", "expected"),
    [
        (None, None, AdapterState()),
        (RUNNING, None, AdapterState(ever_ran=True)),
        (DONE, None, AdapterState(Terminated(2, "Error", "m", 1_795_687_200.0), None, True)),
        (WAITING, None, AdapterState(None, Waiting("CrashLoopBackOff", "back-off"), False)),
        (WAITING, RUNNING, AdapterState(None, Waiting("CrashLoopBackOff", "back-off"), True)),
        (WAITING, DONE, AdapterState(None, Waiting("CrashLoopBackOff", "back-off"), True)),
        (WAITING, ContainerState(), AdapterState(None, Waiting("CrashLoopBackOff", "back-off"))),
    ],
)
def test_adapter_state(
    state: ContainerState | None, last: ContainerState | None, expected: AdapterState
) -> None:
    assert adapter_state(pod(statuses=(_status(state, last),)), "adapter") == expected


def test_adapter_state_of_an_init_container_and_of_none() -> None:
    init = pod(("status-reporter",), init_statuses=(_status(DONE, name="setup"),))
    state = adapter_state(init, "setup")
    assert state is not None
    assert state.terminated is not None
    assert adapter_state(pod(), "adapter") is None


def test_deletion_without_a_grace_period() -> None:
    meta = ObjectMeta(name="p", deletion_timestamp="2026-11-26T10:00:00Z")
    stop = deletion(Pod(metadata=meta), now=500.0, wall=1_795_687_203.0)
    assert stop == Stop(at=497.0, wall=1_795_687_200.0)


def test_deletion_in_the_future_counts_from_now() -> None:
    meta = ObjectMeta(
        name="p", deletion_timestamp="2026-11-26T10:00:30Z", deletion_grace_period_seconds=10
    )
    stop = deletion(Pod(metadata=meta), now=500.0, wall=1_795_687_200.0)
    assert stop == Stop(at=500.0, wall=1_795_687_200.0)


def _owned(*owners: OwnerReference) -> Pod:
    return Pod(metadata=ObjectMeta(name="pod-a", owner_references=list(owners)))


JOB = OwnerReference(kind="Job", name="job-a", api_version="batch/v1", controller=True)


def test_the_owner_is_the_controlling_job() -> None:
    other = OwnerReference(kind="ConfigMap", name="cm", api_version="v1", controller=False)
    assert owner_job(_owned(other, JOB)) == "job-a"


@pytest.mark.parametrize(
    "owner",
    [
        OwnerReference(kind="Job", name="job-a", api_version="batch/v1", controller=False),
        OwnerReference(kind="ReplicaSet", name="rs", api_version="apps/v1", controller=True),
        OwnerReference(kind="Job", name="job-a", api_version="example.com/v1", controller=True),
        OwnerReference(kind="Job", name="", api_version="batch/v1", controller=True),
    ],
)
def test_no_controlling_batch_job_means_no_owner(owner: OwnerReference) -> None:
    assert owner_job(_owned(owner)) is None
    assert owner_job(_owned()) is None


@pytest.mark.parametrize(
    ("version", "than", "older"),
    [
        ("9", "10", True),  # numbers, not strings: "9" > "10" as text
        ("10", "10", False),
        ("11", "10", False),
        ("", "10", False),
        ("10", "", False),
        ("abc", "10", False),
    ],
)
def test_is_older_compares_resource_versions_as_numbers(
    version: str, than: str, older: bool
) -> None:
    assert is_older(version, than) is older


def test_unix_time() -> None:
    assert unix_time("2026-11-26T10:00:00Z") == 1_795_687_200.0
    assert unix_time(None) is None
    assert unix_time("yesterday") is None


def test_deletion_means_a_stop_when_it_was_requested() -> None:
    meta = ObjectMeta(
        name="p", deletion_timestamp="2026-11-26T10:00:30Z", deletion_grace_period_seconds=30
    )
    # Seen at wall 10:00:10 (monotonic 500): requested at 10:00:00, 10 s ago.
    stop = deletion(Pod(metadata=meta), now=500.0, wall=1_795_687_210.0)
    assert stop == Stop(at=490.0, wall=1_795_687_200.0)
    assert deletion(Pod(), now=500.0, wall=1_795_687_210.0) is None


# --- one Pod state, once: its facts, unless a newer state was seen --------------------


def _versioned(version: str, *, deleted: str | None = None) -> Pod:
    crashed = _status(DONE)
    base = pod(statuses=(crashed,))
    meta = ObjectMeta(name="pod-a", resource_version=version, deletion_timestamp=deleted)
    return Pod(metadata=meta, spec=base.spec, status=base.status)


def test_the_facts_of_a_pod_state() -> None:
    facts = pod_facts(
        _versioned("12", deleted="2026-11-26T10:00:00Z"),
        newest="11",
        adapter="adapter",
        now=500.0,
        wall=1_795_687_203.0,
    )
    assert facts == PodFacts(
        version="12",
        adapter=AdapterState(Terminated(2, "Error", "m", 1_795_687_200.0), None, True),
        deletion=Stop(at=497.0, wall=1_795_687_200.0),
    )


def test_a_state_older_than_the_newest_seen_has_no_facts() -> None:
    assert pod_facts(_versioned("9"), newest="10", adapter="adapter", now=0, wall=0) is None


def test_the_same_state_again_has_its_facts() -> None:
    facts = pod_facts(_versioned("10"), newest="10", adapter="adapter", now=0, wall=0)
    assert facts is not None
    assert facts.version == "10"


def test_a_state_without_a_version_keeps_the_newest() -> None:
    facts = pod_facts(_versioned(""), newest="10", adapter="adapter", now=0, wall=0)
    assert facts is not None
    assert facts.version == "10"


def test_before_the_adapter_is_known_only_the_deletion_counts() -> None:
    facts = pod_facts(_versioned("12"), newest="", adapter=None, now=0, wall=0)
    assert facts == PodFacts(version="12", adapter=None, deletion=None)


def test_a_deletion_the_server_stamped_is_moved_onto_the_nodes_clock() -> None:
    # The node is 10 s ahead: the server's 10:00:00 is the node's 10:00:10.
    meta = ObjectMeta(name="p", deletion_timestamp="2026-11-26T10:00:00Z")
    stop = deletion(Pod(metadata=meta), now=500.0, wall=1_795_687_215.0, server_skew=-10.0)
    assert stop == Stop(at=495.0, wall=1_795_687_210.0)
