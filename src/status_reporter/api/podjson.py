"""A Pod decoded from the API server's JSON with only what the reporter reads
(docs/design.md "Limits of the HTTP client").

The reporter reads the status of containers its Pod's spec names (the adapter's, its
own). A Pod can carry tens of thousands of other container statuses (87,371 fit in a
3 MiB body); built as structs they would take about four times the body. So the
statuses are first kept as raw JSON (views of the body, not copies), and only those
whose name the spec holds are decoded; the others are dropped unread.
"""

from __future__ import annotations

from typing import Final

import msgspec

from status_reporter.core.models import ContainerStatus, ObjectMeta, Pod, PodSpec, PodStatus


class _RawStatus(msgspec.Struct, rename="camel"):
    container_statuses: list[msgspec.Raw] = []
    init_container_statuses: list[msgspec.Raw] = []


class _RawPod(msgspec.Struct):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: _RawStatus = msgspec.field(default_factory=_RawStatus)


class _Named(msgspec.Struct):
    name: str = ""


_RAW_POD: Final = msgspec.json.Decoder(_RawPod)
_NAMED: Final = msgspec.json.Decoder(_Named)
_STATUS: Final = msgspec.json.Decoder(ContainerStatus)


def decode_pod(data: bytes | bytearray | msgspec.Raw) -> Pod:
    """The Pod in ``data``, with the statuses of the containers its spec names.

    Raises:
        msgspec.DecodeError: ``data`` is not a Pod.
    """
    raw = _RAW_POD.decode(data)
    spec = raw.spec
    names = {container.name for container in (*spec.containers, *spec.init_containers)}
    status = PodStatus(
        container_statuses=_named(raw.status.container_statuses, names),
        init_container_statuses=_named(raw.status.init_container_statuses, names),
    )
    return Pod(metadata=raw.metadata, spec=spec, status=status)


def _named(statuses: list[msgspec.Raw], names: set[str]) -> list[ContainerStatus]:
    return [_STATUS.decode(raw) for raw in statuses if _NAMED.decode(raw).name in names]
