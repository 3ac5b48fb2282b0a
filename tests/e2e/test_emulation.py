"""Another architecture's image runs here under emulation, and only for the time asked:
``hack/image/emulate.sh`` registers Debian's qemu-user-static as a binfmt_misc handler
for one command and removes it at the command's end, whatever that end is (README,
"Container image"). Collected only when PLATFORM names a platform other than the
host's (``make test-arm64``), outside any other emulation: what it checks is that the
machine holds no handler of the project's before and after."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.containers import Engine
from harness.controlplane import ROOT

from status_reporter import __version__

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EMULATE = ROOT / "hack" / "image" / "emulate.sh"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
# Each test's handlers under a prefix of its own: none is an enclosing run's.
PREFIX = f"status-reporter-test-{uuid.uuid4().hex[:6]}"


def _handlers() -> set[str]:
    if not (BINFMT / "register").exists():
        return set()
    return {p.name for p in BINFMT.iterdir() if p.name.startswith("status-reporter")}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "STATUS_REPORTER_EMULATED"}
    return env | {"STATUS_REPORTER_BINFMT": PREFIX}


@pytest.fixture
def no_handler() -> Iterator[None]:
    """No handler of the project's before the test (so none after means it removed its
    own), binfmt_misc mounted for the test's time: emulate.sh then leaves the mount alone,
    and its handler is gone only if it removed it (an unmount would remove every one)."""
    mounted = not (BINFMT / "register").exists()
    if mounted:
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True)
    try:
        assert _handlers() == set(), "a handler of the project's is registered: an earlier run's"
        yield
    finally:
        for name in _handlers():  # what a failing run left, removed so as to leave nothing
            (BINFMT / name).write_text("-1")
        if mounted:
            subprocess.run(["umount", str(BINFMT)], check=True)


def _version(engine: Engine, image: str) -> subprocess.CompletedProcess[str]:
    """The arm64 image's reporter, ``--version``: needs the emulator to run at all."""
    return subprocess.run(
        [*engine.command, "run", "--rm", "--network=none", "--read-only", image, "--version"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_the_image_runs_with_the_handler_and_not_without_it(
    no_handler: None, engine: Engine, image: str
) -> None:
    """Inside emulate.sh the arm64 image runs (the handler is Debian's:
    qemu-aarch64-static through its -binfmt-P link, flags POF); the command's exit
    status is emulate.sh's; after it, the handler is gone and the same image no longer
    runs (so it was that handler that ran it)."""
    inside = (
        f"cat {BINFMT}/{PREFIX}-aarch64"
        f" && {' '.join(engine.command)} run --rm --network=none --read-only {image} --version"
        " && exit 7"
    )
    done = subprocess.run(
        [str(EMULATE), "linux/arm64", "bash", "-c", inside],
        env=_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 7, done.stdout + done.stderr
    assert "enabled" in done.stdout
    assert "interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P" in done.stdout
    assert "flags: POF" in done.stdout
    assert f"status-reporter {__version__}" in done.stdout
    assert f"removed the binfmt_misc handler {PREFIX}-aarch64" in done.stderr
    assert _handlers() == set()
    after = _version(engine, image)
    assert after.returncode != 0
    assert "exec format error" in after.stderr.lower(), after.stderr


def test_a_failing_or_stopped_command_leaves_no_handler(no_handler: None) -> None:
    """A command that fails, and emulate.sh stopped by a signal while its command runs:
    the handler is removed either way, the command stopped with it."""
    failed = subprocess.run(
        [str(EMULATE), "linux/arm64", "false"],
        env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert _handlers() == set()

    marker = f"sr-emulate-{uuid.uuid4().hex[:8]}"
    running = subprocess.Popen(
        [str(EMULATE), "linux/arm64", "bash", "-c", f"exec -a {marker} sleep 300"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while f"{PREFIX}-aarch64" not in _handlers():
            assert time.monotonic() < deadline, "the handler was never registered"
            assert running.poll() is None, running.communicate()
            time.sleep(0.1)
        running.send_signal(signal.SIGTERM)
        _, stderr = running.communicate(timeout=30)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 143, stderr
    assert _handlers() == set()
    still = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    assert still.stdout == "", "the command outlived emulate.sh"
