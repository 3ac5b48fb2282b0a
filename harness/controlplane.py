"""etcd + kube-apiserver on loopback, in the manner of controller-runtime's envtest.

Binaries come from ``hack/controlplane/build.sh`` (which honours
``KUBEBUILDER_ASSETS``). Certificates, the service-account signing key and an
admin token are generated per start; every request is written to an audit log,
which tests and benchmarks read to count what the reporter asked of the API.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import ipaddress
import json
import secrets
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lightkube import Client, KubeConfig
from lightkube.config.models import Cluster, User

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "hack" / "controlplane" / "build.sh"
ADMIN_USER = "harness-admin"
_PR_SET_PDEATHSIG = 1

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
"""


class ControlPlaneUnavailable(RuntimeError):
    """The binaries could not be found or built, or the servers did not start."""


def binaries() -> Path:
    """The directory holding ``kube-apiserver`` and ``etcd`` (built on first use)."""
    try:
        out = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], check=True, capture_output=True, text=True, timeout=3600
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        raise ControlPlaneUnavailable(f"{BUILD_SCRIPT} failed: {exc}\n{stderr[-3000:]}") from exc
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Resolved before any fork: the child only makes the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> None:
    """``preexec_fn`` of the servers the harness starts: they must not outlive the
    test run, even if pytest is killed."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def serving_certificates(directory: Path, name: str) -> None:
    """A CA (``ca.crt``) and a certificate it signed for ``localhost`` and 127.0.0.1
    (``serving.crt``, ``serving.key``), for a server named ``name``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harness-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # Key identifiers: Python 3.13's default context (VERIFY_X509_STRICT) requires them.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    serving = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "serving.crt").write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    (directory / "serving.key").write_bytes(_pem(key))


def _certificates(directory: Path) -> None:
    """The serving certificates and a service-account key pair."""
    serving_certificates(directory, "kube-apiserver")
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (directory / "sa.key").write_bytes(_pem(sa_key))
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver pair. Use :meth:`start` and :meth:`stop`."""

    workdir: Path
    url: str
    admin_token: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    version: str = ""
    _clients: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def ca_file(self) -> Path:
        """The CA that signed the API server's serving certificate."""
        return self.workdir / "ca.crt"

    @property
    def audit_log(self) -> Path:
        """Every request, one JSON audit event per line (stage ResponseComplete)."""
        return self.workdir / "audit.log"

    @classmethod
    def start(
        cls,
        assets: Path,
        workdir: Path,
        timeout: float = 120.0,
        apiserver_args: Sequence[str] = (),
    ) -> ControlPlane:
        """Start etcd and kube-apiserver (with ``apiserver_args`` added to its flags) and
        wait until the API server is ready."""
        workdir.mkdir(parents=True, exist_ok=True)
        _certificates(workdir)
        token = secrets.token_hex(16)
        (workdir / "tokens.csv").write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        (workdir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        plane = cls(workdir=workdir, url=f"https://127.0.0.1:{api_port}", admin_token=token)
        try:
            plane._spawn(
                "etcd",
                [
                    str(assets / "etcd"),
                    "--name=harness",
                    f"--data-dir={workdir / 'etcd-data'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=harness=http://127.0.0.1:{peer_port}",
                    "--unsafe-no-fsync",
                ],
            )
            plane._spawn(
                "kube-apiserver",
                [
                    str(assets / "kube-apiserver"),
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    "--endpoint-reconciler-type=none",
                    f"--secure-port={api_port}",
                    f"--tls-cert-file={workdir / 'serving.crt'}",
                    f"--tls-private-key-file={workdir / 'serving.key'}",
                    f"--client-ca-file={workdir / 'ca.crt'}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={workdir / 'sa.pub'}",
                    f"--service-account-signing-key-file={workdir / 'sa.key'}",
                    "--authorization-mode=RBAC",
                    f"--token-auth-file={workdir / 'tokens.csv'}",
                    "--allow-privileged=true",
                    f"--audit-policy-file={workdir / 'audit-policy.yaml'}",
                    f"--audit-log-path={workdir / 'audit.log'}",
                    "--audit-log-format=json",
                    "--audit-log-mode=blocking",
                    *apiserver_args,
                ],
            )
            plane._wait_ready(timeout)
        except BaseException:
            plane.stop()
            raise
        return plane

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.commands[name] = argv
        log = (self.workdir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call, started before threads
        )
        log.close()

    def _get(self, path: str) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(  # noqa: S310 - https to our own server
            self.url + path, headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as response:  # noqa: S310
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise ControlPlaneUnavailable(
                        f"{name} exited with {process.returncode}:\n{self.log_tail(name)}"
                    )
            with contextlib.suppress(OSError):
                code, body = self._get("/readyz")
                if code == 200:
                    self.version = json.loads(self._get("/version")[1])["gitVersion"]
                    return
                last = body.decode(errors="replace")[-500:]
            time.sleep(0.2)
        raise ControlPlaneUnavailable(f"kube-apiserver not ready after {timeout:.0f}s: {last}")

    # --- faults: the API server goes away, comes back, or hangs -------------------------

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (SIGKILL: connections die without a goodbye)."""
        process = self.processes["kube-apiserver"]
        process.kill()
        process.wait()

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Start kube-apiserver again on the same port and data; wait until it is ready."""
        self._spawn("kube-apiserver", self.commands["kube-apiserver"])
        self._wait_ready(timeout)

    def freeze_apiserver(self) -> None:
        """SIGSTOP: connections stay open and accept bytes, but nothing answers."""
        self.processes["kube-apiserver"].send_signal(signal.SIGSTOP)

    def thaw_apiserver(self) -> None:
        """SIGCONT after :meth:`freeze_apiserver`."""
        self.processes["kube-apiserver"].send_signal(signal.SIGCONT)

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The end of a server's log, for failure reports."""
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop both servers (TERM, then KILL after 10 s)."""
        for name in ("kube-apiserver", "etcd"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGCONT)  # a frozen server could not stop
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kubeconfig(
        self,
        path: Path,
        token: str | None,
        namespace: str = "default",
        server: str | None = None,
        token_file: Path | None = None,
    ) -> Path:
        """Write a kubeconfig for ``token`` (or ``token_file``) that trusts the harness CA.

        ``server`` replaces the API server's address (a proxy in front of it).
        """
        user = {"tokenFile": str(token_file)} if token_file is not None else {"token": token}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "harness",
                    "cluster": {
                        "server": server or self.url,
                        "certificate-authority": str(self.ca_file),
                    },
                }
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [
                {
                    "name": "harness",
                    "context": {"cluster": "harness", "user": "user", "namespace": namespace},
                }
            ],
            "current-context": "harness",
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def thread_admin(self) -> Client:
        """This thread's own :meth:`admin_client` (a lightkube client is not shared
        between threads), made on first use."""
        client: Client | None = getattr(self._clients, "admin", None)
        if client is None:
            client = self._clients.admin = self.admin_client()
        return client

    def admin_client(self) -> Client:
        """A synchronous lightkube client with full rights (system:masters)."""
        config = KubeConfig.from_one(
            cluster=Cluster(server=self.url, certificate_auth=str(self.ca_file)),
            user=User(token=self.admin_token),
        )
        return Client(config=config, field_manager="harness")

    def audit_events(self) -> Iterator[dict[str, Any]]:
        """The audit log so far, one dict per request."""
        if not self.audit_log.exists():
            return
        with self.audit_log.open() as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)
