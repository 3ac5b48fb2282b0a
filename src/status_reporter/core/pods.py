"""What the reporter reads from its Pod: which container is the adapter, its state,
whether the reporter runs as a native sidecar, and which of two Pod states is the newer
(README "Configuration" and "Exit codes and lifecycle").

:func:`pod_facts` is the one way a Pod state reaches the rules: the Pod monitor hands it
each state it reads, and passes on what it returns.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from status_reporter.core.config import ConfigError
from status_reporter.core.decision import AdapterState, Stop, Terminated, Waiting
from status_reporter.core.models import ContainerStatus, Pod


def find_adapter(pod: Pod, adapter_name: str, reporter_name: str) -> str:
    """Return the adapter container's name: the named one, or else the first container
    in ``spec.containers`` that is not the reporter.

    Raises:
        ConfigError: the named container is not in the Pod, or there is no candidate.
    """
    names = [c.name for c in pod.spec.containers]
    if adapter_name:
        if adapter_name in names or adapter_name in (c.name for c in pod.spec.init_containers):
            return adapter_name
        raise ConfigError(
            "ADAPTER_CONTAINER_NAME",
            adapter_name,
            f"no such container in Pod {pod.metadata.name} "
            f"(containers: {', '.join(names) or 'none'})",
        )
    for name in names:
        if name != reporter_name:
            return name
    raise ConfigError(
        "ADAPTER_CONTAINER_NAME",
        None,
        f"Pod {pod.metadata.name} has no container besides "
        f"REPORTER_CONTAINER_NAME={reporter_name}; name the adapter container",
    )


def owner_job(pod: Pod) -> str | None:
    """The name of the Job that controls ``pod`` (its controller ``ownerReference`` of kind
    Job), or None when no Job does."""
    return next(
        (
            owner.name
            for owner in pod.metadata.owner_references
            if owner.controller
            and owner.kind == "Job"
            and owner.api_version.startswith("batch/")
            and owner.name
        ),
        None,
    )


def is_native_sidecar(pod: Pod, reporter_name: str) -> bool:
    """True when the reporter is an init container with ``restartPolicy: Always``."""
    return any(
        c.name == reporter_name and c.restart_policy == "Always" for c in pod.spec.init_containers
    )


def has_container(pod: Pod, name: str) -> bool:
    """True when the Pod spec has a container (regular or init) called ``name``."""
    return any(c.name == name for c in (*pod.spec.containers, *pod.spec.init_containers))


def is_older(version: str, than: str) -> bool:
    """True when resourceVersion ``version`` is older than ``than``.

    Resource versions are etcd revisions, decimal numbers that only grow; anything
    else (or an empty version) is never called older.
    """
    if not (version.isdecimal() and than.isdecimal()):
        return False
    return int(version) < int(than)


def unix_time(rfc3339: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 time as the API writes it; None if absent or bad."""
    if not rfc3339:
        return None
    try:
        return datetime.fromisoformat(rfc3339).timestamp()
    except ValueError:
        return None


def _status(pod: Pod, name: str) -> ContainerStatus | None:
    statuses = (*pod.status.container_statuses, *pod.status.init_container_statuses)
    return next((s for s in statuses if s.name == name), None)


def adapter_state(pod: Pod, name: str) -> AdapterState | None:
    """The adapter container's state from the Pod status, or None when not reported yet."""
    status = _status(pod, name)
    if status is None:
        return None
    state, last = status.state, status.last_state
    terminated = waiting = None
    ever_ran = False
    if state is not None:
        if state.terminated is not None:
            t = state.terminated
            terminated = Terminated(t.exit_code, t.reason, t.message, unix_time(t.finished_at))
        if state.waiting is not None:
            waiting = Waiting(state.waiting.reason, state.waiting.message)
        ever_ran = state.running is not None or state.terminated is not None
    if last is not None:
        ever_ran = ever_ran or last.running is not None or last.terminated is not None
    return AdapterState(terminated=terminated, waiting=waiting, ever_ran=ever_ran)


def deletion(pod: Pod, now: float, wall: float, server_skew: float = 0.0) -> Stop | None:
    """The stop that a Pod deletion means, or None when the Pod is not being deleted.

    The deletion was requested at ``deletionTimestamp`` minus the grace period: that is
    when the kubelet starts stopping the containers, so an adapter that finished after
    it was stopped, not finished on its own. The API server stamped it on its clock,
    ``server_skew`` seconds ahead of the node's: it is moved onto the node's clock, the
    one of the kubelet's ``finishedAt`` and of ``wall``.
    """
    meta = pod.metadata
    deleted_at = unix_time(meta.deletion_timestamp)
    if deleted_at is None:
        return None
    grace = meta.deletion_grace_period_seconds or 0
    requested = min(wall, deleted_at - server_skew - grace)
    return Stop(at=now - (wall - requested), wall=requested)


class PodFacts(msgspec.Struct, frozen=True):
    """What one state of the Pod tells the rules.

    ``version`` is its resourceVersion (the newest known, when it has none);
    ``adapter`` the adapter container's state (None while it is not reported, or no
    adapter is followed yet); ``deletion`` the stop that the Pod's deletion means.
    """

    version: str
    adapter: AdapterState | None
    deletion: Stop | None


def pod_facts(
    pod: Pod,
    *,
    newest: str,
    adapter: str | None,
    now: float,
    wall: float,
    server_skew: float = 0.0,
) -> PodFacts | None:
    """The facts of ``pod``, or None when it is older than the newest state seen
    (``newest``): a read that raced a watch event, whose newer state already counts.
    ``server_skew`` is how far the API server's clock is ahead of the node's."""
    version = pod.metadata.resource_version
    if is_older(version, newest):
        return None
    return PodFacts(
        version=version or newest,
        adapter=None if adapter is None else adapter_state(pod, adapter),
        deletion=deletion(pod, now, wall, server_skew),
    )
