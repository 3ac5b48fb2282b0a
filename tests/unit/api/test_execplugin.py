"""A credential plugin's run as requests share it: waited for within each request's time,
never started again while one is going, ended when the reporter exits. The plugins are
small shell scripts, run for real."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from status_reporter.api.execplugin import ExecAuth

V1 = "client.authentication.k8s.io/v1"
ANSWER = {"apiVersion": V1, "kind": "ExecCredential", "status": {"token": "slow-token"}}


def slow_plugin(directory: Path, seconds: float) -> ExecAuth:
    """A plugin that records each run (and its pid), then answers after ``seconds``."""
    script = directory / "slow.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"echo $$ >> {directory / 'runs'}\n"
        f"sleep {seconds}\n"
        f"echo '{json.dumps(ANSWER)}'\n"
    )
    script.chmod(0o755)
    return ExecAuth(
        command=str(script), args=[], env={}, api_version=V1, exec_info={}, tls=None, where="t"
    )


def runs(directory: Path) -> list[int]:
    path = directory / "runs"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


async def test_a_request_that_gives_up_leaves_the_run_to_the_next_one(tmp_path: Path) -> None:
    """A plugin slower than one request's time: the request gives up, the plugin goes on,
    and the next request waits for the same run (started again, it would never finish)."""
    auth = slow_plugin(tmp_path, 1.0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(auth.headers(), 0.3)
    assert await asyncio.wait_for(auth.headers(), 5) == {"Authorization": "Bearer slow-token"}
    assert len(runs(tmp_path)) == 1


async def test_a_run_still_going_is_killed_when_the_reporter_exits(tmp_path: Path) -> None:
    auth = slow_plugin(tmp_path, 30)
    waiting = asyncio.ensure_future(auth.headers())
    for _ in range(500):  # the plugin has started
        if runs(tmp_path):
            break
        await asyncio.sleep(0.01)
    started = time.monotonic()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert time.monotonic() - started < 0.5
    (pid,) = runs(tmp_path)
    assert Path(f"/proc/{pid}").exists()  # a cancelled wait leaves it going
    auth.close()
    for _ in range(100):  # killed, and reaped by the loop's child watcher
        if not Path(f"/proc/{pid}").exists():
            break
        await asyncio.sleep(0.02)
    assert not Path(f"/proc/{pid}").exists()
