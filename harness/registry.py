"""A real OCI registry on loopback, as a team's private registry would be: the CNCF
distribution registry (built by ``hack/release/tool.sh registry``), serving TLS with a
certificate from a CA of its own and asking for a user and password (basic auth).

Nothing is installed on the host: clients are given the CA per command (podman's
``--cert-dir``, cosign's ``--registry-cacert``), and the login goes to an auth file of
the caller's choosing.

    python -m harness.registry DIR     # runs one until Ctrl-C; prints how to use it
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.controlplane import ROOT, die_with_parent, free_port, serving_certificates

TOOL = ROOT / "hack" / "release" / "tool.sh"
USER = "release-test"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


class RegistryUnavailable(RuntimeError):
    """The registry could not be built or did not start."""


def tool(name: str) -> Path:
    """A release tool's binary (``cosign``, ``registry``), built on first use."""
    try:
        out = subprocess.run(
            [str(TOOL), name], check=True, capture_output=True, text=True, timeout=3600
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        raise RegistryUnavailable(f"{TOOL} {name} failed: {exc}\n{stderr[-3000:]}") from exc
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Registry:
    """A running registry: where it is, the CA that signed its certificate, and the
    one user it lets in."""

    address: str
    workdir: Path
    username: str
    password: str

    @property
    def ca(self) -> Path:
        """The CA's certificate (PEM): what a client must trust, and only for it."""
        return self.workdir / "ca.crt"

    @property
    def cert_dir(self) -> Path:
        """A directory holding just the CA as ``ca.crt``: podman's ``--cert-dir``."""
        return self.workdir / "certs.d"

    def get(self, path: str, accept: str = "*/*") -> tuple[dict[str, str], bytes]:
        """GET ``/v2/<path>`` as the user; the response's headers and body."""
        credentials = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            f"https://{self.address}/v2/{path}",
            headers={"Authorization": f"Basic {credentials}", "Accept": accept},
        )
        context = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(request, context=context, timeout=30) as response:  # noqa: S310
            return dict(response.headers), bytes(response.read())

    def manifest(self, repository: str, reference: str) -> tuple[str, dict[str, Any]]:
        """A manifest by tag or digest: its digest (checked against its bytes) and content."""
        headers, body = self.get(f"{repository}/manifests/{reference}", ",".join(MANIFEST_TYPES))
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if headers.get("Docker-Content-Digest", digest) != digest:
            raise AssertionError(f"{reference}: the registry says {headers}, the bytes {digest}")
        document: dict[str, Any] = json.loads(body)
        return digest, document

    def blob(self, repository: str, digest: str) -> bytes:
        """A blob's bytes, checked against its digest."""
        body = self.get(f"{repository}/blobs/{digest}")[1]
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise AssertionError(f"blob {digest}: the bytes do not match")
        return body

    def log_tail(self, lines: int = 40) -> str:
        """The end of the registry's log, for failure reports."""
        path = self.workdir / "registry.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _htpasswd(path: Path, user: str, password: str) -> None:
    """The registry's user file: bcrypt, the only hash it accepts (Debian's apache2-utils)."""
    if shutil.which("htpasswd") is None:
        raise RegistryUnavailable("htpasswd not found: make image-tools installs apache2-utils")
    out = subprocess.run(
        ["htpasswd", "-nbB", user, password], capture_output=True, text=True, check=True
    )
    path.write_text(out.stdout)


def _config(workdir: Path, address: str) -> dict[str, object]:
    """The registry's configuration (YAML, of which JSON is a part)."""
    return {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}},
        "http": {
            "addr": address,
            "tls": {
                "certificate": str(workdir / "serving.crt"),
                "key": str(workdir / "serving.key"),
            },
        },
        "auth": {"htpasswd": {"realm": "status-reporter-test", "path": str(workdir / "htpasswd")}},
    }


def _ready(registry: Registry, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until ``/v2/`` asks for credentials over TLS verified with the CA."""
    context = ssl.create_default_context(cafile=str(registry.ca))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RegistryUnavailable(
                f"registry exited with {process.returncode}:\n{registry.log_tail()}"
            )
        try:
            urllib.request.urlopen(f"https://{registry.address}/v2/", context=context, timeout=2)
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RegistryUnavailable(f"registry not ready after {timeout:.0f}s:\n{registry.log_tail()}")


@contextlib.contextmanager
def running_registry(workdir: Path, timeout: float = 30.0) -> Iterator[Registry]:
    """Start a registry on 127.0.0.1 with its files in ``workdir``; stop it on exit."""
    binary = tool("registry")
    workdir.mkdir(parents=True, exist_ok=True)
    serving_certificates(workdir, "registry")
    registry = Registry(
        address=f"127.0.0.1:{free_port()}",
        workdir=workdir,
        username=USER,
        password=secrets.token_urlsafe(16),
    )
    registry.cert_dir.mkdir(exist_ok=True)
    shutil.copyfile(registry.ca, registry.cert_dir / "ca.crt")
    _htpasswd(workdir / "htpasswd", registry.username, registry.password)
    config = workdir / "config.yml"
    config.write_text(json.dumps(_config(workdir, registry.address), indent=1))
    # No trace exporter: the registry would otherwise try to send its traces to a collector.
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    with (workdir / "registry.log").open("ab") as log:
        process = subprocess.Popen(
            [str(binary), "serve", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call, started before threads
        )
    try:
        _ready(registry, process, timeout)
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    """Run a registry until Ctrl-C, for trying ``make release`` by hand."""
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m harness.registry DIR")
    workdir = Path(sys.argv[1]).resolve()
    with running_registry(workdir) as registry:
        auth = workdir / "auth.json"
        print(
            f"registry: https://{registry.address} (CA {registry.ca})\n"
            f"  export REGISTRY_AUTH_FILE={auth}\n"
            f"  echo {registry.password} | hack/image/podman.sh login --cert-dir"
            f" {registry.cert_dir} -u {registry.username} --password-stdin {registry.address}\n"
            f"  make release IMAGE_REGISTRY={registry.address}/hyperfleet"
            f" REGISTRY_CA={registry.ca} COSIGN_KEY=...\n"
            "Ctrl-C stops it.",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
