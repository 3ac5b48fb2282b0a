"""Watching what happens in the API server: Job conditions as they appear, and the
audit log as it grows."""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import ALL_NS, Client
from lightkube.resources.batch_v1 import Job

from harness.controlplane import ControlPlane


class ConditionWatcher:
    """Records, from a cluster-wide Job watch, the wall-clock time at which each Job
    first carries a condition of the given type."""

    def __init__(self, plane: ControlPlane, condition_type: str = "Available") -> None:
        self._client: Client = plane.admin_client()
        self._type = condition_type
        self._seen: dict[tuple[str, str], float] = {}
        self._changed = threading.Condition()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="condition-watcher")
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                for _, job in self._client.watch(Job, namespace=ALL_NS):
                    self._record(job, time.time())
            except Exception:
                if self._stopped.wait(0.5):
                    return

    def _record(self, job: Job, seen: float) -> None:
        if job.metadata is None or job.status is None:
            return
        if any(c.type == self._type for c in job.status.conditions or []):
            key = (str(job.metadata.namespace), str(job.metadata.name))
            with self._changed:
                self._seen.setdefault(key, seen)
                self._changed.notify_all()

    def stop(self) -> None:
        """Stop watching (before the control plane stops)."""
        self._stopped.set()

    def wait(self, namespace: str, name: str, timeout: float) -> float | None:
        """When the condition first appeared on the Job (wall clock), or None on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (namespace, name) not in self._seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return self._seen[(namespace, name)]


def parse_time(value: str) -> float:
    """An audit timestamp (RFC 3339 with microseconds) as epoch seconds."""
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class AuditTail:
    """Reads the audit log incrementally and indexes requests by user."""

    path: Path
    _offset: int = 0
    _partial: str = ""
    by_user: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def update(self) -> None:
        """Read what was appended since the last call."""
        if not self.path.exists():
            return
        with self.path.open() as handle:
            handle.seek(self._offset)
            chunk = handle.read()
            self._offset = handle.tell()
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if line.strip():
                event = json.loads(line)
                self.by_user[event.get("user", {}).get("username", "")].append(event)

    def events(self, user: str, stage: str = "ResponseComplete") -> Iterator[dict[str, Any]]:
        """The user's requests at one audit stage."""
        self.update()
        return (e for e in self.by_user.get(user, []) if e.get("stage") == stage)


def reporter_user(namespace: str) -> str:
    """The username of the reporter's ServiceAccount in ``namespace``."""
    return f"system:serviceaccount:{namespace}:status-reporter"


def request_key(event: dict[str, Any]) -> str:
    """``verb resource[/subresource]`` of an audit event."""
    ref = event.get("objectRef", {})
    resource = ref.get("resource", "")
    if ref.get("subresource"):
        resource += "/" + ref["subresource"]
    return f"{event['verb']} {resource}"
