"""The HTTP fault proxy itself: it must forward what no rule answers, answer what a rule
matches, and stop an endless answer once the client hangs up (or a case would measure
the proxy's own backlog, not the reporter)."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.request

import pytest
from harness.checks import eventually
from harness.controlplane import ControlPlane
from harness.httpproxy import Chunked, HttpProxy, Request

pytestmark = pytest.mark.faults


def _version(request: Request) -> bool:
    return request.path == "/version"


def _get(plane: ControlPlane, url: str) -> bytes:
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    request = urllib.request.Request(  # noqa: S310 - https to the harness
        url, headers={"Authorization": f"Bearer {plane.admin_token}"}
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310
        return bytes(response.read())


def test_forwards_unless_a_rule_answers(plane: ControlPlane, http_proxy: HttpProxy) -> None:
    assert plane.version.encode() in _get(plane, f"{http_proxy.url}/version")
    rule = http_proxy.answer(_version, Chunked(b"from the proxy"), times=1)
    assert _get(plane, f"{http_proxy.url}/version") == b"from the proxy"
    assert plane.version.encode() in _get(plane, f"{http_proxy.url}/version")
    assert rule.served == 1
    assert len(http_proxy.seen(_version)) == 3


def test_endless_trailers_end_when_the_client_hangs_up(
    plane: ControlPlane, http_proxy: HttpProxy
) -> None:
    http_proxy.answer(_version, Chunked(b"{}\n", endless_trailers=True))
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    raw = socket.create_connection(("127.0.0.1", http_proxy.port), timeout=10)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as client:
        client.sendall(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = 0
        while received < 256 * 1024:
            received += len(client.recv(64 * 1024))
    # The proxy notices within a turn of its loop: what it sent stays near the socket
    # buffers' worth, far below its 256 MiB cap.
    time.sleep(0.5)
    sent = eventually(lambda: http_proxy.trailer_bytes, timeout=5)
    time.sleep(0.5)
    assert http_proxy.trailer_bytes == sent
    assert sent < 32 * 1024 * 1024, sent
