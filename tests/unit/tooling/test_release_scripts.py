"""The release's version and platforms: hack/release/version.sh (from the git tag) and
hack/image/platforms.sh (the PLATFORM list), run on repositories made for the test."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
from harness.controlplane import ROOT

VERSION = ROOT / "hack" / "release" / "version.sh"
PLATFORMS = ROOT / "hack" / "image" / "platforms.sh"
GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "tag.gpgSign=false")


def _repository(tmp_path: Path, package_version: str) -> Path:
    """A repository laid out as this one is where version.sh looks: the script in
    hack/release/, the package's __version__ in src/status_reporter/__init__.py."""
    (tmp_path / "hack" / "release").mkdir(parents=True)
    shutil.copy(VERSION, tmp_path / "hack" / "release" / "version.sh")
    package = tmp_path / "src" / "status_reporter"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f'"""x"""\n\n__version__ = "{package_version}"\n')
    subprocess.run([*GIT, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*GIT, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "one"], cwd=tmp_path, check=True)
    return tmp_path


def _tag(repository: Path, *tags: str) -> None:
    for tag in tags:
        subprocess.run([*GIT, "tag", tag], cwd=repository, check=True)


def _version(repository: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(repository / "hack" / "release" / "version.sh")],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip


def _head(repository: Path) -> str:
    out = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repository, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_an_untagged_commit_is_0_0_0_and_its_name(tmp_path: Path) -> None:
    repository = _repository(tmp_path, "0.1.0")
    _tag(repository, "demo", "release-notes")  # not versions: ignored
    done = _version(repository)
    assert (done.returncode, done.stdout) == (0, f"0.0.0-g{_head(repository)[:12]}\n")


@pytest.mark.parametrize(
    ("tags", "package", "version"),
    [
        (["v0.2.0"], "0.2.0", "0.2.0"),
        (["v0.3.0-rc.1"], "0.3.0-rc.1", "0.3.0-rc.1"),
        (["v1.0.0", "v1.0.0-rc.2"], "1.0.0", "1.0.0"),
    ],
)
def test_a_release_tag_names_the_version(
    tmp_path: Path, tags: list[str], package: str, version: str
) -> None:
    repository = _repository(tmp_path, package)
    _tag(repository, *tags)
    done = _version(repository)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{version}\n", "")


@pytest.mark.parametrize(
    ("tag", "package", "message"),
    [
        ("v0.2.0+build.7", "0.2.0", "tag v0.2.0+build.7: a '+' is not allowed in an image tag"),
        ("v0.2", "0.2.0", "tag v0.2 is not v<major>.<minor>.<patch>[-<pre-release>]"),
        ("v0.02.0", "0.2.0", "tag v0.02.0 is not v<major>.<minor>.<patch>[-<pre-release>]"),
        (
            "v0.2.0",
            "0.1.0",
            'tag v0.2.0, but src/status_reporter/__init__.py says 0.1.0: set __version__ = "0.2.0"',
        ),
    ],
)
def test_a_tag_that_cannot_be_the_version_is_refused(
    tmp_path: Path, tag: str, package: str, message: str
) -> None:
    repository = _repository(tmp_path, package)
    _tag(repository, tag)
    done = _version(repository)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"version: {message}"), done.stderr


def _platforms(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PLATFORM"} | env
    return subprocess.run(
        [str(PLATFORMS), *args], env=environment, capture_output=True, text=True, check=False
    )


HOST = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}[platform.machine()]
OTHER = {"linux/amd64": "linux/arm64", "linux/arm64": "linux/amd64"}[HOST]


def test_platform_is_the_hosts_by_default_and_a_list_otherwise() -> None:
    assert _platforms().stdout == f"{HOST}\n"
    assert _platforms(PLATFORM=HOST).stdout == f"{HOST}\n"
    assert _platforms(f"{HOST},{HOST}").stdout == f"{HOST}\n"
    assert _platforms("--host", PLATFORM=OTHER).stdout == f"{HOST}\n"


def test_another_platform_is_listed_after_the_hosts() -> None:
    """Built under emulation (hack/image/emulate.sh), after the host's own."""
    assert _platforms(PLATFORM=OTHER).stdout == f"{OTHER}\n"
    assert _platforms(f"{OTHER},{HOST},{OTHER}").stdout == f"{HOST}\n{OTHER}\n"
    assert _platforms(PLATFORM=f"{HOST},{OTHER}").stdout == f"{HOST}\n{OTHER}\n"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("linux/s390x", "linux/s390x: want linux/amd64 or linux/arm64"),
        ("amd64", "amd64: want linux/amd64 or linux/arm64"),
        (f"{HOST},linux/arm", "linux/arm: want linux/amd64 or linux/arm64"),
    ],
)
def test_a_platform_that_cannot_be_built_is_refused(value: str, message: str) -> None:
    done = _platforms(PLATFORM=value)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"platforms: {message}"), done.stderr
