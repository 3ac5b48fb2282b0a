"""Running the reporter image and an adapter container with the container engine that
works here (``hack/image/engine.sh``: podman, or docker with a daemon), as a kubelet would."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def platforms(root: Path, value: str | None = None) -> list[str]:
    """The platforms of ``value`` (by default $PLATFORM, else the host's), the host's
    first: ``hack/image/platforms.sh``."""
    listed = os.environ.get("PLATFORM", "") if value is None else value
    out = subprocess.run(
        [str(root / "hack" / "image" / "platforms.sh"), listed],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return out.stdout.split()


def host_platform(root: Path) -> str:
    """This machine's platform, ``linux/amd64`` or ``linux/arm64``."""
    out = subprocess.run(
        [str(root / "hack" / "image" / "platforms.sh"), "--host"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return out.stdout.strip()


class EngineUnavailable(RuntimeError):
    """No container engine works on this machine."""


@dataclass(frozen=True)
class Engine:
    """The container engine's command (with the global flags this machine needs)."""

    command: tuple[str, ...]

    @classmethod
    def find(cls, root: Path) -> Engine:
        """The engine that ``hack/image/engine.sh`` finds working.

        Raises:
            EngineUnavailable: none works (the script's reason as the message).
        """
        out = subprocess.run(
            [str(root / "hack" / "image" / "engine.sh")],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if out.returncode != 0 or not out.stdout.strip():
            raise EngineUnavailable(out.stderr.strip() or "hack/image/engine.sh found none")
        return cls(tuple(out.stdout.split()))

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """Run the engine; returns stdout.

        A container started without a network option gets none: the engine's default
        network is a bridge with firewall rules, which would outlive the tests.
        """
        if args[:1] == ("run",) and not any(a.startswith(("--network", "--net=")) for a in args):
            args = ("run", "--network=none", *args[1:])
        out = subprocess.run(
            [*self.command, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"engine {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
        return out.stdout

    def run_detached(self, *args: str) -> str:
        """``run -d``: returns the container name."""
        name = f"sr-e2e-{uuid.uuid4().hex[:8]}"
        self("run", "-d", "--name", name, *args)
        return name

    def wait(self, name: str, timeout: float = 60) -> int:
        """Wait for the container to exit; its exit code."""
        return int(self("wait", name, timeout=timeout).strip().splitlines()[-1])

    def inspect(self, name: str) -> dict[str, Any]:
        """``inspect`` of one container."""
        document: list[dict[str, Any]] = json.loads(self("inspect", name))
        return document[0]

    def logs(self, name: str) -> str:
        """Everything the container wrote."""
        out = subprocess.run(
            [*self.command, "logs", name], capture_output=True, text=True, check=False
        )
        return out.stdout + out.stderr

    def remove(self, name: str) -> None:
        """Remove the container, running or not."""
        self("rm", "-f", name, check=False)


def reporter_image(root: Path) -> tuple[str | None, str]:
    """The reporter image: ``$STATUS_REPORTER_IMAGE`` (the make targets build it) or one
    built here by ``hack/image/build.sh``; (name, "") or (None, why it failed)."""
    name = os.environ.get("STATUS_REPORTER_IMAGE")
    if name:
        return name, ""
    out = subprocess.run(
        [str(root / "hack" / "image" / "build.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return None, f"the image could not be built:\n{out.stderr[-2000:]}"
    return out.stdout.strip().splitlines()[-1], ""


def adapter_image(root: Path) -> tuple[str | None, str]:
    """The test adapters' image: busybox and its applets (``hack/cluster/images.sh
    adapter``), as the reporter image has no shell; (name, "") or (None, why not)."""
    out = subprocess.run(
        [str(root / "hack" / "cluster" / "images.sh"), "adapter"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip():
        return None, f"the adapter image could not be built:\n{out.stderr[-2000:]}"
    return out.stdout.strip().splitlines()[-1], ""


def exported_files(engine: Engine, image: str) -> dict[str, tarfile.TarInfo]:
    """The image's file system, as ``export`` of a created (never started) container
    gives it: path (absolute) -> its tar entry, directories included."""
    container = engine("create", image).strip()
    try:
        out = subprocess.run(
            [*engine.command, "export", container], capture_output=True, check=True, timeout=120
        )
    finally:
        engine.remove(container)
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as archive:
        return {"/" + m.name.removeprefix("./").rstrip("/"): m for m in archive.getmembers()}


def exported_text(engine: Engine, image: str, path: str) -> str:
    """One file of the image, read without running it (``cp`` out of a created container)."""
    container = engine("create", image).strip()
    try:
        out = subprocess.run(
            [*engine.command, "cp", f"{container}:{path}", "-"],
            capture_output=True,
            check=True,
            timeout=60,
        )
    finally:
        engine.remove(container)
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as archive:
        member = archive.extractfile(os.path.basename(path))
        assert member is not None, path
        return member.read().decode()


def kubelet_state(inspected: dict[str, Any]) -> dict[str, Any]:
    """The containerStatuses state a kubelet would report for an exited container."""
    state = inspected["State"]
    code = int(state["ExitCode"])
    reasons = {True: "OOMKilled", False: "Completed" if code == 0 else "Error"}
    reason = reasons[bool(state.get("OOMKilled"))]
    return {
        "terminated": {
            "exitCode": code,
            "reason": reason,
            "startedAt": state["StartedAt"][:19] + "Z",
            "finishedAt": state["FinishedAt"][:19] + "Z",
        }
    }
