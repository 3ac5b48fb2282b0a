"""The fault proxy itself: a fault must reach every connection the reporter has open,
or a fault case passes or fails by the luck of timing."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest
from harness.checks import eventually
from harness.faultproxy import FaultProxy


@pytest.fixture
def full_upstream() -> Iterator[socket.socket]:
    """A listening socket whose accept queue is full: a new connection to it waits for
    a retransmitted SYN (1 s on Linux) until the queue is drained."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # room for one queued connection
    filler = socket.create_connection(listener.getsockname(), timeout=5)
    try:
        yield listener
    finally:
        filler.close()
        listener.close()


def test_a_reset_reaches_a_connection_still_being_set_up(full_upstream: socket.socket) -> None:
    proxy = FaultProxy(full_upstream.getsockname()[1]).start()
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        eventually(lambda: proxy.accepted == 1, timeout=5)
        # The proxy is now waiting for upstream to accept its connection.
        proxy.reset_all()
        full_upstream.settimeout(0.1)
        deadline = time.monotonic() + 5
        accepted: list[socket.socket] = []
        while len(accepted) < 2 and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                accepted.append(full_upstream.accept()[0])
        assert len(accepted) == 2, "the proxy never reached upstream"
        with pytest.raises(ConnectionResetError):
            client.recv(1)
        client.close()
        for conn in accepted:
            conn.close()
    finally:
        proxy.stop()
