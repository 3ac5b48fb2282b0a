"""Fixtures for the container end-to-end tests: podman and the image."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness.containers import Podman
from tests.harness.controlplane import ROOT


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(f"NO CONTAINER ENGINE — e2e tests skipped: {reason}")


@pytest.fixture(scope="session")
def podman() -> Podman:
    if shutil.which("podman") is None:
        _unavailable("podman is not installed (hack/image/install-tools.sh installs it)")
    return Podman(ROOT / "hack" / "image" / "podman.sh")


@pytest.fixture(scope="session")
def image(podman: Podman) -> str:
    """The reporter image: $STATUS_REPORTER_IMAGE (make test-e2e builds it) or built here."""
    name = os.environ.get("STATUS_REPORTER_IMAGE")
    if name:
        return name
    out = subprocess.run(
        [str(ROOT / "hack" / "image" / "build.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        _unavailable(f"the image could not be built:\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    # Containers run as 65532: the shared directories must be reachable for that user.
    for directory in (tmp_path, *tmp_path.parents):
        if directory == Path("/"):
            break
        directory.chmod(directory.stat().st_mode | 0o011)
    return tmp_path
