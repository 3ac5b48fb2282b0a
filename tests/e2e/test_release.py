"""The release end to end (README, "Releasing"): ``make release`` in a clean clone pushes
the image to a real registry on loopback (TLS from a CA of its own, basic auth), signs
it and attests its SBOM with cosign; pulled back by digest, the image runs; a second
clean clone builds the same digest; an unsigned, tampered or foreign-signed image fails
verification.

With PLATFORM naming several platforms (``make test-arm64``: linux/amd64,linux/arm64),
the release is one index naming an image per platform: each image signed and attested
with its own SBOM, the index signed, every platform's image pulled back through the
index and run (another architecture's under emulation), and the second clone gives the
same index and image digests.

The clones are of the commit checked out (HEAD): what is not committed is not released.
The registry's CA is given to each command (podman's ``--cert-dir``, cosign's
``--registry-cacert``) and the logins go to an auth file of the test's own: nothing is
written to the host's certificate directories or credentials."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.containers import Engine, host_platform, platforms
from harness.controlplane import ROOT
from harness.registry import Registry, RegistryUnavailable, running_registry, tool
from harness.required import unavailable

from status_reporter import __version__

PLATFORMS = platforms(ROOT)
HOST = host_platform(ROOT)
MULTI = len(PLATFORMS) > 1
# Another architecture's image is built under emulation, several times slower.
BUILD_TIMEOUT = 540 if PLATFORMS == [HOST] else 2400
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(BUILD_TIMEOUT + 300)]

REPOSITORY = "hyperfleet/status-reporter"
VERIFY = ROOT / "hack" / "release" / "verify.sh"
PUSH = ROOT / "hack" / "release" / "push.sh"
NO_AUTHORITIES = ROOT / "hack" / "release" / "no-authorities.trustedroot.json"
SAMPLE = ROOT / "tests" / "samples" / "valid" / "success.json"
# Local names of what the tests build: none is another build's.
LOCAL = "localhost/status-reporter-release-test"


@dataclass(frozen=True)
class Release:
    """What ``make release`` pushed (the image, or the index of several), and what it
    ran with; ``images``: each platform's image by digest (the one image's, alone)."""

    clone: Path
    ref: str
    tag: str
    log: str
    env: dict[str, str]
    keys: Path
    images: dict[str, str]

    @property
    def digest(self) -> str:
        return self.ref.rsplit("@", 1)[1]

    @property
    def host_ref(self) -> str:
        """The host platform's image, by digest."""
        return self.images[HOST]


def _sbom_path(platform: str) -> str:
    """Where the build writes a platform's SBOM."""
    return "build/sbom.cdx.json" if platform == HOST else f"build/sbom-{platform[6:]}.cdx.json"


def _images(registry: Registry, repository: str, tag: str) -> tuple[str, dict[str, str]]:
    """The tag's digest, and each platform's image by digest: the index's entries in
    order, or the one image."""
    digest, manifest = registry.manifest(repository, tag)
    ref = f"{registry.address}/{repository}"
    if manifest["mediaType"] != "application/vnd.oci.image.index.v1+json":
        config = json.loads(registry.blob(repository, manifest["config"]["digest"]))
        return digest, {f"{config['os']}/{config['architecture']}": f"{ref}@{digest}"}
    return digest, {
        f"{m['platform']['os']}/{m['platform']['architecture']}": f"{ref}@{m['digest']}"
        for m in manifest["manifests"]
    }


def _run(
    argv: list[str], env: dict[str, str], cwd: Path = ROOT, timeout: float = 540
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _clone(destination: Path) -> Path:
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(destination)], check=True
    )
    return destination


def _login(engine: Engine, registry: Registry, auth_file: Path) -> None:
    """``podman login``, as a user would, into the test's own auth file."""
    subprocess.run(
        [
            *engine.command, "login", "--cert-dir", str(registry.cert_dir),
            "--authfile", str(auth_file), "-u", registry.username, "--password-stdin",
            registry.address,
        ],
        input=registry.password, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip


def _verify(
    release: Release, ref: str, key: str, sbom: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """hack/release/verify.sh, as a user checks what they pulled."""
    argv = [str(VERIFY), ref, str(release.keys / f"{key}.pub")]
    return _run([*argv, str(sbom)] if sbom else argv, release.env, timeout=120)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    try:
        with running_registry(tmp_path_factory.mktemp("registry")) as running:
            yield running
    except RegistryUnavailable as exc:
        unavailable("release registry", str(exc))


@pytest.fixture(scope="module")
def release(
    engine: Engine, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """``make release`` in a clean clone, with a key pair made for the test."""
    try:
        cosign = tool("cosign")
    except RegistryUnavailable as exc:
        unavailable("cosign", str(exc))
    work = tmp_path_factory.mktemp("release")
    (work / "home").mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "DOCKER_CONFIG", "IMAGE"}
    }
    env |= {
        # cosign reads ~/.docker/config.json before the engine's auth file: a home of the
        # test's own keeps a user's Docker login out of it, and shows cosign writes nothing.
        "HOME": str(work / "home"),
        "REGISTRY_AUTH_FILE": str(work / "auth.json"),
        "REGISTRY_CA": str(registry.ca),
        "COSIGN": str(cosign),
        "COSIGN_PASSWORD": secrets.token_urlsafe(12),
    }
    _login(engine, registry, work / "auth.json")
    keys = work / "keys"
    keys.mkdir()
    for name in ("release", "other"):
        subprocess.run(
            [str(cosign), "generate-key-pair", "--output-key-prefix", name],
            cwd=keys, env=env, capture_output=True, check=True, timeout=60,
        )  # fmt: skip
    clone = _clone(work / "a")
    made = _run(
        [
            "make", "release", f"IMAGE_REGISTRY={registry.address}/hyperfleet",
            f"COSIGN_KEY={keys / 'release.key'}", f"REGISTRY_CA={registry.ca}",
            f"IMAGE={LOCAL}:a",
        ],
        env, cwd=clone, timeout=BUILD_TIMEOUT,
    )  # fmt: skip
    try:
        assert made.returncode == 0, made.stdout + made.stderr + registry.log_tail()
        tag = _run(["hack/release/version.sh"], env, cwd=clone).stdout.strip()
        images = _images(registry, REPOSITORY, tag)[1]
        ref = made.stdout.strip().splitlines()[-1]
        yield Release(clone, ref, tag, made.stderr, env, keys, images)
    finally:
        engine(
            "rmi", "-f", f"{LOCAL}:a", *(f"{LOCAL}:a-{p[6:]}" for p in PLATFORMS[1:]), check=False
        )
        assert not any((work / "home").iterdir()), "something wrote into the home"


def test_make_release_pushes_the_image_signed_with_its_sbom_attested(
    release: Release, registry: Registry
) -> None:
    """One image per platform, in PLATFORM's order (the host's first), each for its
    platform, labelled with the commit, signed, and attested with its own SBOM: the very
    file the build wrote, listing that architecture's Debian packages. With several,
    the tag names an index of them, signed too."""
    assert re.fullmatch(rf"{registry.address}/{REPOSITORY}@sha256:[0-9a-f]{{64}}", release.ref)
    digest, manifest = registry.manifest(REPOSITORY, release.tag)
    assert digest == release.digest, "the tag names what was pushed"
    assert list(release.images) == PLATFORMS
    if MULTI:
        assert manifest["mediaType"] == "application/vnd.oci.image.index.v1+json"
    else:
        assert release.images == {HOST: release.ref}
    tags = json.loads(registry.get(f"{REPOSITORY}/tags/list")[1])["tags"]
    head = _run(["git", "rev-parse", "HEAD"], release.env, cwd=release.clone).stdout.strip()
    sboms = {}
    for platform, ref in release.images.items():
        image_digest = ref.rsplit("@", 1)[1]
        manifest = registry.manifest(REPOSITORY, image_digest)[1]
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        layers = sum(layer["size"] for layer in manifest["layers"])
        size = len(registry.get(f"{REPOSITORY}/manifests/{image_digest}", manifest["mediaType"])[1])
        print(f"{platform}: {ref} (manifest {size} bytes, layer {layers} bytes compressed)")
        config = json.loads(registry.blob(REPOSITORY, manifest["config"]["digest"]))
        assert f"{config['os']}/{config['architecture']}" == platform
        labels = config["config"]["Labels"]
        assert labels["org.opencontainers.image.revision"] == head
        assert labels["version"] == labels["org.opencontainers.image.version"] == release.tag
        for name in ("name", "vendor", "summary", "description"):
            assert labels[name], name
        # The signature and the attestation are stored beside the image, under its digest.
        stem = image_digest.replace(":", "-")
        assert {f"{stem}.sig", f"{stem}.att"} <= set(tags)
        # Checked again as a user would: the signature, and the attestation carrying the
        # very SBOM the build wrote for this platform.
        sbom = release.clone / _sbom_path(platform)
        verified = _verify(release, ref, "release", sbom)
        assert verified.returncode == 0, verified.stderr
        assert "The signatures were verified against the specified public key" in verified.stderr
        claims = json.loads(
            next(line for line in verified.stdout.splitlines() if line.startswith("["))
        )
        assert claims[0]["critical"]["image"]["docker-manifest-digest"] == image_digest
        assert '"predicateType": "https://cyclonedx.org/bom"' in verified.stdout
        sboms[platform] = json.loads(sbom.read_text())
        debian = [
            c["purl"] for c in sboms[platform]["components"] if c["purl"].startswith("pkg:deb")
        ]
        assert debian
        assert [p for p in debian if f"?arch={platform[6:]}&" not in p] == []
    print(f"release: {release.ref}")
    if MULTI:
        assert f"{release.digest.replace(':', '-')}.sig" in tags, "the index is signed"
        index = _run(
            [str(VERIFY), "--index", release.ref, str(release.keys / "release.pub")],
            release.env, timeout=120,
        )  # fmt: skip
        assert index.returncode == 0, index.stderr
        # The same packages from the same sources: the versions differ by a rebuild at most.
        names = [
            {(c["name"], re.sub(r"\+b\d+$", "", c["version"])) for c in sbom["components"]}
            for sbom in sboms.values()
        ]
        assert all(n == names[0] for n in names), names
    assert release.ref in release.log.splitlines()[-1]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_image_pulled_by_digest_runs(
    platform: str, release: Release, registry: Registry, engine: Engine
) -> None:
    """Pulled by the release's digest for one platform (through the index when there
    are several: it resolves to that platform's image) into a storage of its own (so
    every byte comes from the registry), with the CA and credentials given to the
    command; run without a network: ``--version`` and ``check-result`` of a result,
    another architecture's under emulation."""
    # podman wants a short run root: a directory of /tmp, not one of pytest's.
    store = Path(tempfile.mkdtemp(prefix="sr-pull-"))
    pulled = [
        *engine.command, f"--root={store / 'storage'}", f"--runroot={store / 'run'}",
        "--storage-driver=vfs",
    ]  # fmt: skip
    try:
        pull = _run(
            [*pulled, "pull", "--cert-dir", str(registry.cert_dir), "-q",
             f"--platform={platform}", release.ref],
            release.env, timeout=300,
        )  # fmt: skip
        assert pull.returncode == 0, pull.stderr
        image_id = pull.stdout.strip().splitlines()[-1]
        inspected = json.loads(_run([*pulled, "image", "inspect", image_id], release.env).stdout)[0]
        assert f"{inspected['Os']}/{inspected['Architecture']}" == platform
        # Pulled through an index, the image is known by the index's digest and its own.
        digests = {name.rsplit("@", 1)[1] for name in inspected["RepoDigests"]}
        assert release.images[platform].rsplit("@", 1)[1] in digests, inspected["RepoDigests"]
        run = [*pulled, "run", "--rm", "--network=none", "--read-only", "--cap-drop=ALL"]
        version = _run([*run, image_id, "--version"], release.env, timeout=300)
        assert version.stdout.strip() == f"status-reporter {__version__}", version.stderr
        check = _run(
            [*run, "-v", f"{SAMPLE}:/results/result.json:ro", image_id,
             "check-result", "/results/result.json"],
            release.env, timeout=300,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        _run([*pulled, "rmi", "-af"], release.env, timeout=120)
        shutil.rmtree(store, ignore_errors=True)


def test_a_second_clean_clone_builds_and_pushes_the_same_digest(
    release: Release, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Reproducible to the digest: another clone, another build, pushed to a registry
    of its own (no blob it could reuse), gives the release's digest: the image's, or
    the index's and each platform's image's; and the same SBOMs."""
    work = tmp_path_factory.mktemp("rebuild")
    with running_registry(work / "registry") as other:
        env = {**release.env, "REGISTRY_AUTH_FILE": str(work / "auth.json"), "REGISTRY_CA": ""}
        _login(engine, other, work / "auth.json")
        clone = _clone(work / "b")
        made = _run(
            ["make", "image-push", f"IMAGE_REGISTRY={other.address}/rebuilt",
             f"REGISTRY_CA={other.ca}", f"IMAGE={LOCAL}:b"],
            env, cwd=clone, timeout=BUILD_TIMEOUT,
        )  # fmt: skip
        try:
            assert made.returncode == 0, made.stdout + made.stderr
            ref = made.stdout.strip().splitlines()[-1]
            assert ref == f"{other.address}/rebuilt/status-reporter@{release.digest}"
            digest, images = _images(other, "rebuilt/status-reporter", release.tag)
            assert digest == release.digest
            assert {p: r.rsplit("@", 1)[1] for p, r in images.items()} == {
                p: r.rsplit("@", 1)[1] for p, r in release.images.items()
            }
            print(f"rebuilt: {ref}; " + ", ".join(f"{p} {r}" for p, r in images.items()))
            for platform in PLATFORMS:
                sbom = _sbom_path(platform)
                assert (clone / sbom).read_bytes() == (release.clone / sbom).read_bytes()
        finally:
            local = [f"{LOCAL}:b", *(f"{LOCAL}:b-{p[6:]}" for p in PLATFORMS[1:])]
            engine("rmi", "-f", *local, check=False)


def test_unsigned_tampered_and_foreign_signed_images_fail_verification(
    release: Release, engine: Engine, tmp_path: Path
) -> None:
    """A changed image pushed to the release's repository (as whoever controls a tag
    could) has no signature of the release key: unsigned, it fails; signed with
    another key, it fails against the release key and passes against that one (so
    the failure is the key's). The released digest fails against the other key, and
    against an SBOM that is not the one attested."""
    (tmp_path / "payload").write_text("not from this repository\n")
    # The released image (its local copy) with one file more.
    (tmp_path / "Containerfile").write_text(
        f"FROM {LOCAL}:a\nCOPY payload /opt/status-reporter/bin/payload\n"
    )
    tampered_image = f"{LOCAL}:tampered"
    try:
        built = _run(
            [*engine.command, "build", "--network=none", "--layers=false",
             "-t", tampered_image, str(tmp_path)],
            release.env, timeout=300,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr
        repository = release.ref.rsplit("@", 1)[0]
        pushed = _run([str(PUSH), tampered_image, f"{repository}:tampered"], release.env)
        assert pushed.returncode == 0, pushed.stderr
        tampered = pushed.stdout.strip()
        assert tampered.rsplit("@", 1)[1] != release.digest

        unsigned = _verify(release, tampered, "release")
        assert unsigned.returncode != 0
        assert "no signatures found" in unsigned.stderr, unsigned.stderr

        signed = _run(
            [str(ROOT / "hack/release/cosign.sh"), "sign", "--yes", "--tlog-upload=false",
             "--key", str(release.keys / "other.key"), tampered],
            release.env, timeout=120,
        )  # fmt: skip
        assert signed.returncode == 0, signed.stderr
        foreign = _verify(release, tampered, "release")
        assert foreign.returncode != 0
        assert "no matching signatures" in foreign.stderr, foreign.stderr
        assert _verify(release, tampered, "other").returncode != 0, "signed, not attested"
        other_says = _run(
            [str(ROOT / "hack/release/cosign.sh"), "verify", "--insecure-ignore-tlog=true",
             "--trusted-root", str(NO_AUTHORITIES), "--key", str(release.keys / "other.pub"),
             tampered],
            release.env, timeout=120,
        )  # fmt: skip
        assert other_says.returncode == 0, other_says.stderr

        wrong_key = _verify(release, release.host_ref, "other")
        assert wrong_key.returncode != 0
        assert "no matching signatures" in wrong_key.stderr, wrong_key.stderr

        sbom = json.loads((release.clone / "build/sbom.cdx.json").read_text())
        sbom["components"] = sbom["components"][1:]
        (tmp_path / "other-sbom.json").write_text(json.dumps(sbom))
        wrong_sbom = _verify(release, release.host_ref, "release", tmp_path / "other-sbom.json")
        assert wrong_sbom.returncode != 0
        assert "the attested SBOM is not the one given" in wrong_sbom.stderr, wrong_sbom.stderr
    finally:
        engine("rmi", "-f", tampered_image, check=False)
