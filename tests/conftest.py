"""Suite-wide rules and fixtures.

A skipped test fails the run, in CI and locally alike, unless ``ALLOW_SKIPS=1``
asks for a partial run (``harness/required.py``). The control plane is one
per session, started only when an integration or e2e test asks for it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from harness.controlplane import ControlPlane
from harness.required import ALLOW_SKIPS, skips_allowed, start_plane
from lightkube import Client


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
    """A run that skipped tests proved less than it claims: make it fail, loudly."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if not skipped:
        return
    lines = "\n".join(f"  {report.nodeid}: {report.longrepr}" for report in skipped)
    if skips_allowed():
        print(f"\nWARNING: {len(skipped)} test(s) skipped ({ALLOW_SKIPS} is set):\n{lines}")
        return
    print(
        f"\nERROR: {len(skipped)} test(s) skipped; a skipped suite fails the run"
        f" (set {ALLOW_SKIPS}=1 for a deliberately partial run):\n{lines}"
    )
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
