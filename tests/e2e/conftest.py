"""Fixtures for the container end-to-end tests: the container engine and the image.

PLATFORM (the Makefile's: hack/image/platforms.sh) says which image is tested: the
host's by default; ``make test-arm64`` tests linux/arm64's under emulation and releases
both. test_emulation.py is collected only when PLATFORM names another platform than the
host's."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.containers import Engine, EngineUnavailable, host_platform, platforms
from harness.containers import adapter_image as build_adapter_image
from harness.containers import reporter_image as build_reporter_image
from harness.controlplane import ROOT
from harness.required import unavailable

EMULATED = [p for p in platforms(ROOT) if p != host_platform(ROOT)]
collect_ignore = [] if EMULATED else ["test_emulation.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under emulation every program runs several times slower: more time per test."""
    if EMULATED:
        for item in items:
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(900))


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
