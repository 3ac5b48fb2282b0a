"""Fixtures for the integration tests: one real control plane per session."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client

from tests.harness.cluster import AdapterJob, create_job, create_namespace
from tests.harness.controlplane import ControlPlane, ControlPlaneUnavailable, binaries
from tests.harness.reporter import ReporterRun, start_reporter

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("controlplane")
    try:
        plane = ControlPlane.start(binaries(), workdir)
    except ControlPlaneUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the control plane is required in CI: {exc}")
        pytest.skip(f"NO LOCAL CONTROL PLANE — integration tests skipped: {exc}")
    try:
        yield plane
    finally:
        plane.stop()
        print(f"\nkube-apiserver {plane.version} logs: {workdir}")


@pytest.fixture(scope="session")
def admin(plane: ControlPlane) -> Client:
    return plane.admin_client()


@pytest.fixture
def namespace(admin: Client) -> str:
    return create_namespace(admin)


@pytest.fixture
def make_job(admin: Client, namespace: str, tmp_path: Path) -> Callable[..., AdapterJob]:
    def make(**kwargs: Any) -> AdapterJob:
        return create_job(admin, namespace, tmp_path / "results", **kwargs)

    return make


@pytest.fixture
def job(make_job: Callable[..., AdapterJob]) -> AdapterJob:
    return make_job()


@pytest.fixture
def reporter(plane: ControlPlane, tmp_path: Path) -> Iterator[Callable[..., ReporterRun]]:
    runs: list[ReporterRun] = []

    def start(job: AdapterJob, env: Mapping[str, str] | None = None) -> ReporterRun:
        run = start_reporter(plane, job, tmp_path, env)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the API server's log to a failed integration test."""
    report = yield
    plane = getattr(item, "funcargs", {}).get("plane")
    if report.when == "call" and report.failed and isinstance(plane, ControlPlane):
        report.sections.append(("kube-apiserver log (tail)", plane.log_tail("kube-apiserver")))
    return report
