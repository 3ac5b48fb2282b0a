"""Fixtures for the container end-to-end tests: podman and the image."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.harness.containers import Podman
from tests.harness.containers import reporter_image as build_reporter_image
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
    name, why = build_reporter_image(ROOT)
    if name is None:
        _unavailable(why)
    assert name is not None
    return name


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    # Containers run as 65532: the shared directories must be reachable for that user.
    for directory in (tmp_path, *tmp_path.parents):
        if directory == Path("/"):
            break
        directory.chmod(directory.stat().st_mode | 0o011)
    return tmp_path
