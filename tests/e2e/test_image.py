"""The runtime image itself: everything the reporter can load is in it, and its SBOM
lists exactly what it holds (docs/design.md, "The runtime image")."""

from __future__ import annotations

import json
import pkgutil
import random
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness.containers import Engine, exported_files, exported_text, host_platform, platforms
from harness.controlplane import ROOT

import status_reporter

pytestmark = pytest.mark.e2e

PROBE = ROOT / "hack" / "image" / "probe.py"
SBOM = "/usr/share/doc/status-reporter/sbom.cdx.json"
PYTHON = "/opt/status-reporter/bin/python"
# The image tested is PLATFORM's (one platform): linux/arm64 under emulation.
PLATFORM = platforms(ROOT)[-1]
ARCH = PLATFORM.removeprefix("linux/")
MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}[ARCH]


def _run(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    """The image's interpreter with ``args`` (options, the image, the script and its
    options), read-only, without a network."""
    return subprocess.run(
        [
            *engine.command, "run", "--rm", "--read-only", "--network=none",
            f"--entrypoint={PYTHON}", *args, "--tmp", "/tmp",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _probe(engine: Engine, image: str, out: Path) -> dict[str, str | None]:
    """hack/image/probe.py in the image, as OpenShift would run it: a random UID in
    group 0, a read-only root; what its exercises loaded."""
    out.chmod(0o777)
    uid = random.randint(1_000_600_000, 1_000_699_999)  # noqa: S311 - a UID, not a secret
    result = _run(
        engine,
        "--cap-drop=ALL", f"--user={uid}:0", "-v", f"{PROBE}:/probe/probe.py:ro",
        "-v", f"{out}:/out", image, "/probe/probe.py", "--trace", "/out/trace.json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    trace = out / "trace.json"
    modules: dict[str, str | None] = json.loads(trace.read_text())["modules"]
    return modules


def test_every_path_of_the_reporter_runs_in_the_image(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """The probe's exercises (every module, the lazy paths, the commands, the sidecar
    against a fake API) all pass in the image; every module of the package (as
    pkgutil finds them in the source tree) was imported there, from the image's files."""
    modules = _probe(engine, image, tmp_path)
    package = Path(status_reporter.__file__).parent
    expected = {
        info.name
        for info in pkgutil.walk_packages([str(package)], "status_reporter.")
        if not info.name.endswith("__main__")
    }
    assert expected - set(modules) == set()
    for name in expected:
        assert str(modules[name]).startswith("/opt/status-reporter/lib/python3.11/site-packages/")
    # Nothing came from outside the image's own trees.
    stray = {
        name: file
        for name, file in modules.items()
        if file
        and not file.startswith(("/usr/lib/python3.11/", "/opt/status-reporter/", "/probe/"))
    }
    assert stray == {}
    # The optional extra is not in the image; the excluded modules are not loaded.
    assert not {"yaml", "_bz2", "_lzma", "_uuid", "sitecustomize"} & set(modules)


def test_a_module_missing_from_the_image_fails_the_probe(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """The check is not vacuous: an import the image cannot satisfy makes it fail."""
    probe = tmp_path / "probe.py"
    # A module the reporter never imports, so not in the runtime set.
    probe.write_text(
        PROBE.read_text().replace(
            "names = _module_names(PACKAGE)", 'names = ["xml.dom.minidom", *_module_names(PACKAGE)]'
        )
    )
    probe.chmod(0o644)
    result = _run(engine, "-v", f"{probe}:/probe/probe.py:ro", image, "/probe/probe.py")
    assert result.returncode == 1, result.stderr
    assert "probe: FAILED imports:" in result.stderr
    assert "import xml.dom.minidom: ModuleNotFoundError" in result.stderr


def _sbom(engine: Engine, image: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(exported_text(engine, image, SBOM))
    return document


def test_the_sbom_accounts_for_every_file_of_the_image(engine: Engine, image: str) -> None:
    sbom = _sbom(engine, image)
    assert (sbom["bomFormat"], sbom["specVersion"]) == ("CycloneDX", "1.5")
    labels = json.loads(engine("image", "inspect", image))[0]["Config"]["Labels"]
    component = sbom["metadata"]["component"]
    assert component["version"] == labels["org.opencontainers.image.version"]
    properties = {p["name"]: p["value"] for p in component["properties"]}
    assert (
        properties["org.opencontainers.image.revision"]
        == (labels["org.opencontainers.image.revision"])
    )
    listed: dict[str, str] = {}
    for item in sbom["components"]:
        for occurrence in item["evidence"]["occurrences"]:
            assert occurrence["location"] not in listed, occurrence
            listed[occurrence["location"]] = item["bom-ref"]
    for prop in component["properties"]:
        if prop["name"] == "status-reporter:unpackaged-file":
            assert prop["value"] not in listed, prop
            listed[prop["value"]] = "unpackaged"
    files = {path for path, entry in exported_files(engine, image).items() if not entry.isdir()}
    assert set(listed) - files == set(), "listed, but not in the image"
    assert files - set(listed) == set(), "in the image, but not in the SBOM"
    unpackaged = {path for path, ref in listed.items() if ref == "unpackaged"}
    # The links on the way to the dynamic loader: /lib64/ld-linux-x86-64.so.2 on amd64,
    # /lib/ld-linux-aarch64.so.1 on arm64 (merged /usr: /lib -> usr/lib, /lib64 -> usr/lib64).
    links = {"amd64": {"/lib", "/lib64"}, "arm64": {"/lib"}}[ARCH]
    assert {p for p in unpackaged if not p.startswith(("/var/lib/dpkg/status.d/", "/opt/"))} == {
        "/etc/group",
        "/etc/nsswitch.conf",
        "/etc/passwd",
        "/usr/share/doc/status-reporter/LICENSE",
        SBOM,
        *links,
    }


def test_the_sbom_lists_exactly_the_installed_packages_and_distributions(
    engine: Engine, image: str
) -> None:
    """Debian packages: the status.d records in the image (what scanners read); Python
    distributions: the dist-info directories of the virtualenv, with their versions."""
    sbom = _sbom(engine, image)
    listed = {(c["purl"].split("/")[0], c["name"], c["version"]) for c in sbom["components"]}
    files = exported_files(engine, image)
    debian = set()
    for path in files:
        if path.startswith("/var/lib/dpkg/status.d/"):
            record = exported_text(engine, image, path)
            fields = dict(re.findall(r"^(Package|Version): (.+)$", record, re.MULTILINE))
            assert fields["Package"] == path.rsplit("/", 1)[1]
            debian.add(("pkg:deb", fields["Package"], fields["Version"]))
    python = set()
    site = "/opt/status-reporter/lib/python3.11/site-packages/"
    for path in files:
        if path.startswith(site) and path.endswith(".dist-info/METADATA"):
            headers = exported_text(engine, image, path).split("\n\n", 1)[0]
            fields = dict(re.findall(r"^(Name|Version): (.+)$", headers, re.MULTILINE))
            python.add(("pkg:pypi", fields["Name"], fields["Version"]))
    assert {n for _, n, _ in python} == {"asyncinotify", "httptools", "msgspec", "status-reporter"}
    assert listed == debian | python


def test_the_image_is_built_for_its_platform(engine: Engine, image: str) -> None:
    """The image's configuration names PLATFORM; its interpreter runs as that machine
    (under emulation for another architecture than the host's); every Debian package in
    it, as its SBOM and its dpkg records say, is of that architecture."""
    inspected = json.loads(engine("image", "inspect", image))[0]
    assert f"{inspected['Os']}/{inspected['Architecture']}" == PLATFORM
    machine = engine(
        "run", "--rm", "--read-only", "--network=none", f"--entrypoint={PYTHON}", image,
        "-c", "import platform; print(platform.machine())",
    )  # fmt: skip
    assert machine.strip() == MACHINE
    purls = [
        c["purl"] for c in _sbom(engine, image)["components"] if c["purl"].startswith("pkg:deb")
    ]
    assert purls
    assert [p for p in purls if f"?arch={ARCH}&" not in p] == []
    libc = exported_text(engine, image, "/var/lib/dpkg/status.d/libc6")
    assert f"\nArchitecture: {ARCH}\n" in libc
    pinned = (ROOT / "hack" / "image" / f"debian.{ARCH}.lock").read_text()
    assert re.search(
        rf"^libc6 {re.escape(re.findall(r'^Version: (.+)$', libc, re.M)[0])}$", pinned, re.M
    )


def test_the_sbom_versions_are_those_of_the_code_that_runs(engine: Engine, image: str) -> None:
    """What the interpreter and the libraries report about themselves, in the image,
    matches the upstream part of the Debian versions the SBOM gives them."""
    versions = {c["name"]: c["version"] for c in _sbom(engine, image)["components"]}
    script = (
        "import os, platform, ssl, zlib, pyexpat, msgspec, httptools;"
        "print(platform.python_version(), ssl.OPENSSL_VERSION.split()[1],"
        " os.confstr('CS_GNU_LIBC_VERSION').split()[1], zlib.ZLIB_RUNTIME_VERSION,"
        " pyexpat.EXPAT_VERSION.split('_')[1], msgspec.__version__, httptools.__version__)"
    )
    out = engine(
        "run",
        "--rm",
        "--read-only",
        "--network=none",
        f"--entrypoint={PYTHON}",
        image,
        "-c",
        script,
    )
    python, openssl, glibc, zlib, expat, msgspec, httptools = out.split()

    def upstream(package: str) -> str:
        version = str(versions[package]).split(":")[-1]
        return version.split("-")[0].split("+")[0].split(".dfsg")[0]

    assert upstream("python3.11-minimal") == python
    assert upstream("libpython3.11-stdlib") == python
    assert upstream("libssl3") == openssl
    assert upstream("libc6") == glibc
    assert upstream("zlib1g") == zlib
    assert upstream("libexpat1") == expat
    assert versions["msgspec"] == msgspec
    assert versions["httptools"] == httptools


def test_the_image_carries_hyperfleets_labels_and_the_oci_ones(engine: Engine, image: str) -> None:
    """name, vendor, version, summary, description beside org.opencontainers.image.*; the
    version is the git tag's (hack/release/version.sh), the revision the whole commit."""
    labels = json.loads(engine("image", "inspect", image))[0]["Config"]["Labels"]
    version = subprocess.run(
        [str(ROOT / "hack" / "release" / "version.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert labels["name"] == labels["org.opencontainers.image.title"] == "status-reporter"
    assert labels["version"] == labels["org.opencontainers.image.version"] == version
    assert labels["vendor"] == labels["org.opencontainers.image.vendor"] != ""
    assert labels["description"] == labels["org.opencontainers.image.description"] != ""
    assert labels["summary"]
    assert labels["org.opencontainers.image.revision"].removesuffix("-dirty") == head
    # Nothing that names the machine or tools that built it.
    assert not {name for name in labels if name.startswith("io.buildah")}


def test_the_sbom_next_to_the_image_is_the_one_in_it(engine: Engine, image: str) -> None:
    """hack/image/build.sh writes the image's SBOM to build/sbom.cdx.json (another
    platform's than the host's: build/sbom-<arch>.cdx.json)."""
    name = "sbom.cdx.json" if host_platform(ROOT) == PLATFORM else f"sbom-{ARCH}.cdx.json"
    beside = ROOT / "build" / name
    assert beside.exists(), f"build/{name}: make image writes it"
    assert json.loads(beside.read_text()) == _sbom(engine, image)
