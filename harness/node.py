"""A real single-node Kubernetes on loopback, started and stopped by ``hack/cluster``.

``up.sh`` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
containerd and a kubelet, imports the images and writes a KEY=VALUE file that
describes the cluster; ``down.sh`` stops everything and proves with ``check.sh``
that nothing is left behind. This module wraps both, and adds what the tests read
from the node itself: container processes (``ctr``), cgroups and the audit log.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig

from harness.controlplane import ROOT

CLUSTER_SCRIPTS = ROOT / "hack" / "cluster"
MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory/kubepods")
# Lines for the end of the run (scenario table, measurements, teardown check),
# printed by the terminal summary of tests/cluster/conftest.py.
REPORT = pytest.StashKey[list[str]]()


def report(config: pytest.Config, text: str) -> None:
    """Keep ``text`` for the cluster section of the terminal summary."""
    config.stash.setdefault(REPORT, []).extend(text.splitlines())


class NodeUnavailable(RuntimeError):
    """The node could not be started (missing tools, binaries or permissions)."""


@dataclass(frozen=True)
class Exec:
    """What a command run inside a container printed, and its exit status."""

    returncode: int
    stdout: str
    # ctr's own warnings land here too (containerd 2 warns about cgroup v1).
    stderr: str


@dataclass(frozen=True)
class Node:
    """A running cluster, as described by the env file of ``up.sh``."""

    env: dict[str, str]

    @classmethod
    def start(cls, images: list[str]) -> Node:
        """Run ``up.sh`` (which first cleans up after an earlier, killed run)."""
        try:
            out = subprocess.run(
                [str(CLUSTER_SCRIPTS / "up.sh"), *images],
                capture_output=True,
                text=True,
                timeout=3600,
                check=True,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            stderr = getattr(exc, "stderr", "") or ""
            raise NodeUnavailable(f"hack/cluster/up.sh failed: {exc}\n{stderr[-4000:]}") from exc
        env_file = Path(out.stdout.strip().splitlines()[-1])
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        return cls(env=env)

    @staticmethod
    def stop() -> tuple[bool, str]:
        """Run ``down.sh``: whether nothing was left behind, and its report."""
        out = subprocess.run(
            [str(CLUSTER_SCRIPTS / "down.sh")],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return out.returncode == 0, out.stderr

    @property
    def api_port(self) -> int:
        """The API server's port on 127.0.0.1."""
        return int(self.env["API_PORT"])

    @property
    def adapter_image(self) -> str:
        """busybox, built by ``hack/cluster/images.sh`` and already in containerd."""
        return self.env["ADAPTER_IMAGE"]

    def kubectl(self, *args: str, stdin: str | None = None) -> Exec:
        """Run the node's kubectl (built with the node binaries) as cluster admin."""
        out = subprocess.run(
            [self.env["KUBECTL"], "--kubeconfig", self.env["KUBECONFIG"], *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Exec(out.returncode, out.stdout, out.stderr)

    def client(self) -> Client:
        """A synchronous client with full rights (system:masters)."""
        config = KubeConfig.from_file(self.env["KUBECONFIG"])
        return Client(config=config, field_manager="cluster-tests")

    def exec(self, container_id: str, *argv: str) -> Exec:
        """Run a command inside a running container, as its own user and file system."""
        out = subprocess.run(
            [
                self.env["CTR"],
                "--address",
                self.env["CONTAINERD_SOCK"],
                "--namespace",
                "k8s.io",
                "tasks",
                "exec",
                "--exec-id",
                f"probe-{uuid.uuid4().hex[:8]}",
                container_id,
                *argv,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Exec(out.returncode, out.stdout, out.stderr)

    def memory_cgroup(self, container_id: str) -> Path:
        """The container's cgroup v1 memory directory."""
        found = list(MEMORY_CGROUPS.glob(f"**/{container_id}"))
        if len(found) != 1:
            raise LookupError(f"memory cgroup of {container_id}: found {found}")
        return found[0]

    def audit_events(self) -> Iterator[dict[str, Any]]:
        """Every request made by a service account so far, one dict per request."""
        path = Path(self.env["AUDIT_LOG"])
        if not path.exists():
            return
        with path.open() as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def unavailable_reason() -> str | None:
    """Why this machine cannot run the node, or None when it can."""
    if os.geteuid() != 0:
        return "the node needs root (kubelet, containerd, cgroups, mounts)"
    if not Path("/sys/fs/cgroup/memory").is_dir():
        return "the node is set up for cgroup v1 with a memory controller"
    return None
