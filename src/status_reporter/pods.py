"""What the reporter reads from its Pod: which container is the adapter, its state,
and whether the reporter runs as a native sidecar (SPEC §3, §6)."""

from __future__ import annotations

from lightkube.models.core_v1 import Container, ContainerStatus
from lightkube.resources.core_v1 import Pod

from status_reporter.config import ConfigError
from status_reporter.decision import AdapterState, Terminated, Waiting


def _containers(pod: Pod) -> list[Container]:
    return list(pod.spec.containers) if pod.spec is not None else []


def _init_containers(pod: Pod) -> list[Container]:
    return list(pod.spec.initContainers or []) if pod.spec is not None else []


def find_adapter(pod: Pod, adapter_name: str, reporter_name: str) -> str:
    """Return the adapter container's name: the named one, or else the first container
    in ``spec.containers`` that is not the reporter.

    Raises:
        ConfigError: the named container is not in the Pod, or there is no candidate.
    """
    pod_name = pod.metadata.name if pod.metadata is not None else "?"
    names = [c.name for c in _containers(pod)]
    if adapter_name:
        if adapter_name in names or adapter_name in (c.name for c in _init_containers(pod)):
            return adapter_name
        raise ConfigError(
            "ADAPTER_CONTAINER_NAME",
            adapter_name,
            f"no such container in Pod {pod_name} (containers: {', '.join(names) or 'none'})",
        )
    for name in names:
        if name != reporter_name:
            return name
    raise ConfigError(
        "ADAPTER_CONTAINER_NAME",
        None,
        f"Pod {pod_name} has no container besides REPORTER_CONTAINER_NAME={reporter_name}; "
        "name the adapter container",
    )


def is_native_sidecar(pod: Pod, reporter_name: str) -> bool:
    """True when the reporter is an init container with ``restartPolicy: Always``."""
    return any(
        c.name == reporter_name and c.restartPolicy == "Always" for c in _init_containers(pod)
    )


def has_container(pod: Pod, name: str) -> bool:
    """True when the Pod spec has a container (regular or init) called ``name``."""
    return any(c.name == name for c in (*_containers(pod), *_init_containers(pod)))


def _status(pod: Pod, name: str) -> ContainerStatus | None:
    if pod.status is None:
        return None
    statuses = [*(pod.status.containerStatuses or []), *(pod.status.initContainerStatuses or [])]
    return next((s for s in statuses if s.name == name), None)


def adapter_state(pod: Pod, name: str) -> AdapterState | None:
    """The adapter container's state from the Pod status, or None when not reported yet."""
    status = _status(pod, name)
    if status is None:
        return None
    state, last = status.state, status.lastState
    terminated = waiting = None
    ever_ran = False
    if state is not None:
        if state.terminated is not None:
            t = state.terminated
            terminated = Terminated(t.exitCode, t.reason or "", t.message or "")
        if state.waiting is not None:
            waiting = Waiting(state.waiting.reason or "", state.waiting.message or "")
        ever_ran = state.running is not None or state.terminated is not None
    if last is not None:
        ever_ran = ever_ran or last.running is not None or last.terminated is not None
    return AdapterState(terminated=terminated, waiting=waiting, ever_ran=ever_ran)
