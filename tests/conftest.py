"""Suite-wide rules: in CI (``CI`` set) a skipped test fails the run."""

from __future__ import annotations

import os

import pytest


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
