"""What a suite needs from the machine, and what happens when it is missing.

A suite whose control plane, container engine or node cannot be had is skipped with
a loud reason, and the session then fails (``tests/conftest.py``): a green run that
skipped the container or cluster tests would prove less than the README claims.
``ALLOW_SKIPS=1`` is the explicit opt-out for a deliberately partial run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from harness.controlplane import ControlPlane, ControlPlaneUnavailable, binaries

ALLOW_SKIPS = "ALLOW_SKIPS"


def skips_allowed() -> bool:
    """True when the person running the tests asked for a partial run."""
    return os.environ.get(ALLOW_SKIPS, "") not in ("", "0")


def unavailable(what: str, reason: str) -> NoReturn:
    """Skip the test that needs ``what`` (say "the control plane"), naming the reason."""
    pytest.skip(f"NO {what.upper()}: tests that need it are skipped: {reason}")


def start_plane(workdir: Path) -> ControlPlane:
    """Start a control plane; without one, the tests that need it are skipped (loudly)."""
    try:
        return ControlPlane.start(binaries(), workdir)
    except ControlPlaneUnavailable as exc:
        unavailable("local control plane", str(exc))
