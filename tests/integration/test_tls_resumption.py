"""Against the real API server: a reporter's connections after its first resume the TLS
session the API server issued on it (README "Configuration")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from harness.checks import SUCCESS, eventually, verbs
from harness.cluster import AdapterJob
from harness.controlplane import ControlPlane
from harness.reporter import start_reporter
from harness.tlsrelay import ResumptionRelay

pytestmark = pytest.mark.integration


@pytest.fixture
def relay(plane: ControlPlane) -> Iterator[ResumptionRelay]:
    port = urlsplit(plane.url).port
    assert port is not None
    relay = ResumptionRelay(port).start()
    yield relay
    relay.stop()


def test_the_watch_connection_resumes_the_first_ones_tls_session(
    job: AdapterJob, plane: ControlPlane, relay: ResumptionRelay, tmp_path: Path
) -> None:
    job.running()
    run = start_reporter(
        plane,
        job,
        tmp_path,
        {"MAX_WAIT_TIME_SECONDS": "60"},
        server=f"https://127.0.0.1:{relay.port}",
    )
    try:
        eventually(lambda: "monitoring adapter" in run.output)
        time.sleep(1)
        job.write_result(SUCCESS)
        assert run.wait() == 0, run.output
    finally:
        run.stop()
    assert "watch pods 200" in verbs(plane, job)
    # One full handshake, for the requests' connection; the Pod watch's own connection
    # (and any later one) resumes its session.
    first, *later = relay.resumed
    assert first is False, relay.resumed
    assert later, relay.resumed
    assert all(later), relay.resumed
