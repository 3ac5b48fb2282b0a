"""Fixtures for the integration tests (the control plane itself is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from harness.cluster import AdapterJob, create_job, create_namespace
from harness.controlplane import ControlPlane
from harness.reporter import ReporterRun, start_reporter
from lightkube import Client


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
