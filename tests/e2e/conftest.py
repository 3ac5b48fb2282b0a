"""Fixtures for the container end-to-end tests: the container engine and the image."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.containers import Engine, EngineUnavailable
from harness.containers import adapter_image as build_adapter_image
from harness.containers import reporter_image as build_reporter_image
from harness.controlplane import ROOT
from harness.required import unavailable


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The container engine that works here (podman, or docker with a daemon)."""
    try:
        return Engine.find(ROOT)
    except EngineUnavailable as exc:
        unavailable("container engine", str(exc))


@pytest.fixture(scope="session")
def image(engine: Engine) -> str:
    """The reporter image: $STATUS_REPORTER_IMAGE (make test-e2e builds it) or built here."""
    name, why = build_reporter_image(ROOT)
    if name is None:
        unavailable("reporter image", why)
    return name


@pytest.fixture(scope="session")
def adapter_image(engine: Engine) -> str:
    """The adapters' image: busybox (the reporter image has no shell to play one with)."""
    name, why = build_adapter_image(ROOT)
    if name is None:
        unavailable("adapter image", why)
    return name


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    # Containers run as 65532: the shared directories must be reachable for that user.
    for directory in (tmp_path, *tmp_path.parents):
        if directory == Path("/"):
            break
        directory.chmod(directory.stat().st_mode | 0o011)
    return tmp_path
