"""Suite-wide rules and fixtures.

In CI (``CI`` set) a skipped test fails the run. The control plane is one per
session, started only when an integration or e2e test asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from lightkube import Client

from tests.harness.controlplane import ControlPlane, ControlPlaneUnavailable, binaries


def start_plane(workdir: Path) -> ControlPlane:
    """Start a control plane; without one, fail in CI and skip loudly elsewhere."""
    try:
        return ControlPlane.start(binaries(), workdir)
    except ControlPlaneUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the control plane is required in CI: {exc}")
        pytest.skip(f"NO LOCAL CONTROL PLANE: tests that need it are skipped: {exc}")


@pytest.fixture(scope="session")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A running etcd + kube-apiserver (RBAC enforced) for the whole session."""
    workdir = tmp_path_factory.mktemp("controlplane")
    plane = start_plane(workdir)
    try:
        yield plane
    finally:
        plane.stop()
        print(f"\nkube-apiserver {plane.version} logs: {workdir}")


@pytest.fixture(scope="session")
def admin(plane: ControlPlane) -> Client:
    """A client with full rights on the control plane."""
    return plane.admin_client()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the API server's log to a failed test that used the control plane."""
    report = yield
    plane = getattr(item, "funcargs", {}).get("plane")
    if report.when == "call" and report.failed and isinstance(plane, ControlPlane):
        report.sections.append(("kube-apiserver log (tail)", plane.log_tail("kube-apiserver")))
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A CI run that skipped tests proved less than it claims: make it fail, loudly."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        lines = "\n".join(f"  {report.nodeid}: {report.longrepr}" for report in skipped)
        print(
            f"\nERROR: {len(skipped)} test(s) skipped in CI; skips are not allowed there:\n{lines}"
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
