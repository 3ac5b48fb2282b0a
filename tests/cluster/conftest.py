"""Fixtures for the cluster tests: the real node, its client, the reporter image.

The node is one per session. Its teardown runs ``hack/cluster/down.sh``, also
after a failure or Ctrl-C, and fails the session if anything is left behind.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness.containers import reporter_image as build_reporter_image
from harness.controlplane import ROOT
from harness.node import REPORT, Node, NodeUnavailable, report, unavailable_reason
from harness.required import unavailable
from lightkube import Client

_WHAT = "single-node cluster"


@pytest.fixture(scope="session")
def reporter_image() -> str:
    """The reporter image: $STATUS_REPORTER_IMAGE (make test-cluster builds it) or built here."""
    name, why = build_reporter_image(ROOT)
    if name is None:
        unavailable(_WHAT, why)
    return name


@pytest.fixture(scope="session")
def node(reporter_image: str, pytestconfig: pytest.Config) -> Iterator[Node]:
    """A running single-node cluster with the reporter image imported."""
    reason = unavailable_reason()
    if reason:
        unavailable(_WHAT, reason)
    try:
        started = Node.start([reporter_image])
    except NodeUnavailable as exc:
        unavailable(_WHAT, str(exc))
    try:
        yield started
    finally:
        clean, check = Node.stop()
        report(pytestconfig, "hack/cluster/down.sh:\n" + check)
        if not clean:
            pytest.fail(f"the node's teardown left something behind:\n{check}")


@pytest.fixture(scope="session")
def kube(node: Node) -> Client:
    """A client with full rights on the node's API server."""
    return node.client()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Show what the cluster tests measured, and the teardown check, after every run."""
    lines = config.stash.get(REPORT, [])
    if lines:
        terminalreporter.section("single-node cluster")
        for line in lines:
            terminalreporter.write_line(line)
