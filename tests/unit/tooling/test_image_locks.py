"""The image's Debian locks (hack/image/debian.<arch>.lock) and hack/image/emulate.sh
for the host's own platform: what needs neither a container engine nor root."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from harness.controlplane import ROOT

IMAGE = ROOT / "hack" / "image"
EMULATE = IMAGE / "emulate.sh"
ARCHES = ("amd64", "arm64")


def _pins(arch: str) -> list[tuple[str, str]]:
    lines = (IMAGE / f"debian.{arch}.lock").read_text().splitlines()
    return [(line.split()[0], line.split()[1]) for line in lines if line and line[0] != "#"]


def source_version(version: str) -> str:
    """The source version a Debian binary version was built from: without a binary
    rebuild's suffix (+bN)."""
    return re.sub(r"\+b\d+$", "", version)


@pytest.mark.parametrize(
    ("version", "source"),
    [
        ("1:7.2+dfsg-7+deb12u18+b3", "1:7.2+dfsg-7+deb12u18"),
        ("2.36-9+deb12u14", "2.36-9+deb12u14"),
        ("1:1.2.13.dfsg-1+deb12u1", "1:1.2.13.dfsg-1+deb12u1"),
        ("23.0.1+dfsg-1", "23.0.1+dfsg-1"),
    ],
)
def test_a_rebuild_suffix_is_not_part_of_the_source_version(version: str, source: str) -> None:
    assert source_version(version) == source


def test_every_architecture_pins_the_same_packages_from_the_same_sources() -> None:
    """One lock per architecture, the same packages in the same order, each at a
    version of the same source (a binary rebuild, +bN, may differ): the images of one
    release are built from the same Debian sources."""
    pins = {arch: _pins(arch) for arch in ARCHES}
    assert pins["amd64"], "the amd64 lock pins nothing"
    names = {arch: [name for name, _ in pinned] for arch, pinned in pins.items()}
    assert names["arm64"] == names["amd64"]
    sources = {arch: [source_version(v) for _, v in pinned] for arch, pinned in pins.items()}
    assert sources["arm64"] == sources["amd64"]
    # The comments are amd64's (debian-pins.sh update writes both from it).
    comments = {
        arch: [
            line
            for line in (IMAGE / f"debian.{arch}.lock").read_text().splitlines()
            if line.startswith("#")
        ]
        for arch in ARCHES
    }
    assert comments["arm64"] == comments["amd64"]


def test_the_hosts_platform_alone_runs_the_command_as_it_is(tmp_path: Path) -> None:
    """No emulation needed: no binfmt_misc, no root; the command's status is returned."""
    host = subprocess.run(
        [str(IMAGE / "platforms.sh"), "--host"], capture_output=True, text=True, check=True
    ).stdout.strip()
    done = subprocess.run(
        [str(EMULATE), host, "sh", "-c", "echo $STATUS_REPORTER_EMULATED; exit 3"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (3, "\n", "")


def test_emulate_refuses_an_unknown_platform() -> None:
    done = subprocess.run(
        [str(EMULATE), "linux/s390x", "true"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "linux/s390x: want linux/amd64 or linux/arm64" in done.stderr
