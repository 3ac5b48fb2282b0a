"""A kubeconfig as kubectl reads it: files merged like kubectl, servers and CAs, tokens,
client certificates, and exec credential plugins run for real as small shell scripts.
TLS settings are checked by handshakes with a loopback server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from status_reporter.api import auth as auth_module
from status_reporter.api.auth import Credentials, CredentialsError, TokenAuth, TokenFileAuth
from status_reporter.api.credentials import load
from status_reporter.api.execplugin import ExecAuth
from status_reporter.api.transport import HttpClient
from tests.unit.transport_pki import CLIENT_NAME, Pki, ca_names, common_name
from tests.unit.transport_server import Peer, answer_all, response, serve

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
IN_CLUSTER_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- kubeconfig ------------------------------------------------------------------


def kubeconfig(
    cluster: dict[str, Any], user: dict[str, Any] | None = None, **top: Any
) -> dict[str, Any]:
    """A kubeconfig with one context "ctx" of cluster "c" and, when given, user "u"."""
    context = {"cluster": "c", "user": "u"} if user is not None else {"cluster": "c"}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}] if user is not None else [],
        "contexts": [{"name": "ctx", "context": context}],
        **top,
    }


def write(path: Path, document: dict[str, Any] | str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(document, bytes):
        path.write_bytes(document)
    else:
        path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def load_kubeconfig(path: Path, **env: str) -> Credentials:
    return load(
        {"KUBECONFIG": str(path), "PATH": os.environ["PATH"], **env},
        home=str(path.parent / "home"),
        service_account_dir=str(path.parent / "no-service-account"),
    )


def load_document(tmp_path: Path, document: dict[str, Any] | str | bytes) -> Credentials:
    return load_kubeconfig(write(tmp_path / "kube" / "config", document))


async def test_token_and_ca_data(tmp_path: Path, pki: Pki) -> None:
    cluster = {"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(pki.ca_pem)}
    path = write(tmp_path / "config", kubeconfig(cluster, {"token": "secret-token"}))
    creds = load_kubeconfig(path)
    assert creds.source == str(path)
    assert (creds.endpoint.host, creds.endpoint.port, creds.endpoint.server_hostname) == (
        "127.0.0.1",
        6443,
        None,
    )
    assert ca_names(creds.endpoint.tls) == ["test-ca"]
    assert creds.endpoint.tls is not None
    assert creds.endpoint.tls.check_hostname
    assert await creds.auth.headers() == {"Authorization": "Bearer secret-token"}
    assert await creds.auth.refresh() is False
    assert "secret-token" not in repr(creds)


async def test_default_kubeconfig_in_home(tmp_path: Path) -> None:
    path = write(tmp_path / ".kube" / "config", kubeconfig({"server": "http://127.0.0.1:8080"}))
    creds = load({}, home=str(tmp_path), service_account_dir=str(tmp_path / "sa"))
    assert creds.source == str(path)
    assert await creds.auth.headers() == {}


@pytest.mark.parametrize(
    ("server", "host", "port", "tls"),
    [
        ("https://kube.example.com", "kube.example.com", 443, True),
        ("https://kube.example.com:6443/", "kube.example.com", 6443, True),
        ("http://127.0.0.1:8080", "127.0.0.1", 8080, False),
        ("http://localhost", "localhost", 80, False),
        ("https://[fd00::1]:6443", "fd00::1", 6443, True),
        ("10.0.0.1:6443", "10.0.0.1", 6443, True),
    ],
)
def test_server_urls(tmp_path: Path, server: str, host: str, port: int, tls: bool) -> None:
    creds = load_document(tmp_path, kubeconfig({"server": server}))
    assert (creds.endpoint.host, creds.endpoint.port) == (host, port)
    assert (creds.endpoint.tls is not None) is tls


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ("https://kube.example.com/k8s/clusters/c-1", "a URL path is not supported"),
        ("ftp://kube.example.com", "is not an http(s)://host[:port] URL"),
        ("https://kube.example.com:99999", "has an invalid port"),
    ],
)
def test_unusable_server_urls(tmp_path: Path, server: str, problem: str) -> None:
    with pytest.raises(CredentialsError) as error:
        load_document(tmp_path, kubeconfig({"server": server}))
    assert str(error.value).startswith(f'kubeconfig {tmp_path}/kube/config: cluster "c": server')
    assert str(error.value).endswith(problem)


async def test_relative_paths_resolve_against_the_kubeconfig_directory(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "kube"
    write(directory / "pki" / "ca.crt", pki.ca_pem.decode())
    write(directory / "token", "file-token\n")
    cluster = {"server": "https://10.0.0.1", "certificate-authority": "pki/ca.crt"}
    path = write(directory / "config", kubeconfig(cluster, {"tokenFile": "token"}))
    monkeypatch.chdir(tmp_path)
    creds = load_kubeconfig(path)
    assert ca_names(creds.endpoint.tls) == ["test-ca"]
    assert await creds.auth.headers() == {"Authorization": "Bearer file-token"}
    assert repr(creds.auth) == f"TokenFileAuth('{directory}/token')"


def test_missing_certificate_authority_file(tmp_path: Path) -> None:
    cluster = {"server": "https://10.0.0.1", "certificate-authority": "nope.crt"}
    with pytest.raises(CredentialsError) as error:
        load_document(tmp_path, kubeconfig(cluster))
    assert str(error.value) == (
        f'kubeconfig {tmp_path}/kube/config: cluster "c": certificate-authority'
        f" {tmp_path}/kube/nope.crt: No such file or directory"
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [("%%%", "is not valid base64"), (b64(b"not a certificate"), "no valid PEM certificate")],
)
def test_bad_certificate_authority_data(tmp_path: Path, data: str, problem: str) -> None:
    cluster = {"server": "https://10.0.0.1", "certificate-authority-data": data}
    with pytest.raises(
        CredentialsError, match=f'cluster "c": certificate-authority-data.*{problem}'
    ):
        load_document(tmp_path, kubeconfig(cluster))


def test_insecure_skip_tls_verify(tmp_path: Path) -> None:
    cluster = {"server": "https://10.0.0.1", "insecure-skip-tls-verify": True}
    tls = load_document(tmp_path, kubeconfig(cluster)).endpoint.tls
    assert tls is not None
    assert (tls.check_hostname, tls.verify_mode) == (False, ssl.CERT_NONE)


def test_insecure_with_a_certificate_authority_is_refused(tmp_path: Path, pki: Pki) -> None:
    cluster = {
        "server": "https://10.0.0.1",
        "insecure-skip-tls-verify": True,
        "certificate-authority-data": b64(pki.ca_pem),
    }
    with pytest.raises(CredentialsError, match="insecure-skip-tls-verify cannot be combined"):
        load_document(tmp_path, kubeconfig(cluster))


async def handshake(creds: Credentials, tmp_path: Path, pki: Pki) -> str:
    """Send one request through a TLS server that asks for a client certificate;
    return the common name of the certificate the client presented ("" for none)."""
    names: list[str] = []

    async def handler(peer: Peer) -> None:
        names.append(common_name(peer.writer.get_extra_info("peercert") or {}))
        await answer_all(response(b"ok"))(peer)

    server_tls = pki.server_context(tmp_path, client_ca=True)
    server_tls.verify_mode = ssl.CERT_OPTIONAL
    async with serve(handler, server_tls) as server:
        endpoint = creds.endpoint
        assert endpoint.tls is not None
        client = HttpClient(
            type(endpoint)("127.0.0.1", server.port, endpoint.tls, endpoint.server_hostname),
            keepalive=None,
            user_agent="test",
        )
        async with client:
            result = await client.request("GET", "/", headers=await creds.auth.headers(), timeout=2)
    assert result.body == b"ok"
    return "".join(names)


@pytest.mark.parametrize("form", ["data", "files"])
async def test_client_certificate_authenticates(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    if form == "data":
        user = {
            "client-certificate-data": b64(pki.client_cert_pem),
            "client-key-data": b64(pki.client_key_pem),
        }
    else:
        write(tmp_path / "kube" / "client.crt", pki.client_cert_pem.decode())
        write(tmp_path / "kube" / "client.key", pki.client_key_pem.decode())
        user = {"client-certificate": "client.crt", "client-key": "client.key"}
    cluster = {
        "server": "https://127.0.0.1:6443",
        "certificate-authority-data": b64(pki.ca_pem),
        "tls-server-name": "api.test",
    }
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    loaded: list[tuple[str, int]] = []
    load_chain = auth_module._load_chain

    def spy(tls: ssl.SSLContext, certfile: str, keyfile: str | None, where: str) -> None:
        loaded.append((certfile, os.stat(certfile).st_mode & 0o777))
        load_chain(tls, certfile, keyfile, where)

    monkeypatch.setattr(auth_module, "_load_chain", spy)
    creds = load_document(tmp_path, kubeconfig(cluster, user))
    assert creds.endpoint.server_hostname == "api.test"
    assert await handshake(creds, tmp_path, pki) == CLIENT_NAME
    ((certfile, mode),) = loaded
    if form == "data":  # through a private temporary file, gone at once
        assert (Path(certfile).parent, mode) == (scratch, 0o600)
        assert list(scratch.iterdir()) == []
    else:  # straight from the user's files
        assert certfile == f"{tmp_path}/kube/client.crt"


async def test_without_client_certificate_none_is_presented(tmp_path: Path, pki: Pki) -> None:
    cluster = {"server": "https://127.0.0.1", "certificate-authority-data": b64(pki.ca_pem)}
    creds = load_document(tmp_path, kubeconfig(cluster, {"token": "t"}))
    assert await handshake(creds, tmp_path, pki) == ""  # the spy of the test above can fail


@pytest.mark.parametrize(
    ("user", "problem"),
    [
        (
            {"client-certificate": "missing.crt", "client-key": "missing.key"},
            "{dir}/missing.crt: No such file or directory",
        ),
        (
            {"client-certificate-data": b64(b"x")},
            "a client certificate needs both a certificate and a key",
        ),
        (
            {"client-certificate-data": b64(b"x"), "client-key-data": b64(b"y")},
            "client certificate and key do not load",
        ),
    ],
)
def test_bad_client_certificates(tmp_path: Path, user: dict[str, str], problem: str) -> None:
    with pytest.raises(CredentialsError) as error:
        load_document(tmp_path, kubeconfig({"server": "https://10.0.0.1"}, user))
    message = str(error.value)
    assert message.startswith(f'kubeconfig {tmp_path}/kube/config: user "u": ')
    assert problem.format(dir=tmp_path / "kube") in message


async def test_kubeconfig_list_is_merged_like_kubectl(tmp_path: Path) -> None:
    first = write(
        tmp_path / "first",
        {
            "current-context": "work",
            "contexts": [{"name": "work", "context": {"cluster": "shared", "user": "me"}}],
            "users": [{"name": "me", "user": {"token": "from-first"}}],
        },
    )
    second = write(
        tmp_path / "second",
        {
            "current-context": "ignored",
            "clusters": [{"name": "shared", "cluster": {"server": "https://second.example:6443"}}],
            "contexts": [{"name": "work", "context": {"cluster": "other", "user": "other"}}],
            "users": [{"name": "me", "user": {"token": "from-second"}}],
        },
    )
    creds = load_kubeconfig(Path(f"{tmp_path}/missing:{first}:{second}"))
    assert creds.source == f"{first}:{second}"
    assert (creds.endpoint.host, creds.endpoint.port) == ("second.example", 6443)
    assert await creds.auth.headers() == {"Authorization": "Bearer from-first"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {
                k: v
                for k, v in kubeconfig({"server": "https://x"}).items()
                if k != "current-context"
            },
            "kubeconfig {path}: current-context is not set",
        ),
        (
            {**kubeconfig({"server": "https://x"}), "current-context": "nope"},
            'kubeconfig {path}: context "nope" not found',
        ),
        (
            {**kubeconfig({"server": "https://x"}), "clusters": []},
            'kubeconfig {path}: context "ctx": cluster "c" not found in kubeconfig {path}',
        ),
        (
            {**kubeconfig({"server": "https://x"}, {"token": "t"}), "users": []},
            'kubeconfig {path}: context "ctx": user "u" not found in kubeconfig {path}',
        ),
        (kubeconfig({}), 'kubeconfig {path}: cluster "c": no server'),
        (b"\xff\xfe", "kubeconfig {path}: not UTF-8 YAML"),
        ("- a list\n", "kubeconfig {path}: not a mapping"),
        ({"current-context": "ctx", "contexts": {"ctx": {}}}, "contexts must be a list"),
        ({"current-context": "ctx", "contexts": [{"context": {}}]}, "each of contexts needs"),
    ],
)
def test_kubeconfig_errors_name_the_file_and_entry(
    tmp_path: Path, document: dict[str, Any] | str | bytes, message: str
) -> None:
    path = tmp_path / "kube" / "config"
    with pytest.raises(CredentialsError) as error:
        load_document(tmp_path, document)
    assert message.format(path=path) in str(error.value)


@pytest.mark.parametrize("c_loader", [True, False])
def test_yaml_errors_give_the_position_not_the_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_loader: bool
) -> None:
    if not c_loader:
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    with pytest.raises(CredentialsError) as error:
        load_document(tmp_path, "users:\n- name: u\n  user: {token: 'secret-in-yaml'\n")
    message = str(error.value)
    assert message.startswith(
        f"kubeconfig {tmp_path}/kube/config: invalid YAML at line 4, column 1: "
    )
    assert "secret" not in message


@pytest.mark.parametrize(
    ("user", "cluster", "problem"),
    [
        (
            {"auth-provider": {"name": "oidc", "config": {}}},
            {},
            'user "u": auth-provider "oidc" is not supported; use an exec plugin',
        ),
        (
            {"username": "admin", "password": "pw"},
            {},
            'user "u": basic authentication (username/password) is not supported',
        ),
        ({"as": "someone-else"}, {}, 'user "u": impersonation (as) is not supported'),
        (
            {},
            {"proxy-url": "socks5://proxy:1080"},
            'cluster "c": proxy-url: socks5 proxies are not supported;'
            " use an http:// or https:// proxy",
        ),
        (
            {"token": "t", "exec": {"command": "x", "apiVersion": V1}},
            {},
            'user "u": exec cannot be combined with a token or certificate',
        ),
    ],
)
def test_unsupported_settings_are_refused(
    tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any], problem: str
) -> None:
    document = kubeconfig({"server": "https://10.0.0.1", **cluster}, user)
    with pytest.raises(CredentialsError) as error:
        load_document(tmp_path, document)
    assert str(error.value) == f"kubeconfig {tmp_path}/kube/config: {problem}"


def test_tokens_stay_out_of_reprs() -> None:
    assert "s3cret" not in repr(TokenAuth("s3cret", "kubeconfig"))
    assert "s3cret" not in repr(TokenFileAuth("/t"))


# --- exec plugins ----------------------------------------------------------------

PLUGIN = """#!/bin/sh
# Records how it was run, then prints the prepared answer.
here=$(dirname "$0")
echo "$*" > "$here/args"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$here/info"
printf '%s' "$PLUGIN_FLAVOUR" > "$here/flavour"
echo run >> "$here/runs"
cat "$here/answer"
"""


class Plugin:
    """An exec plugin script in the kubeconfig's directory and what it saw."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        write(directory / "plugin.sh", PLUGIN).chmod(0o755)

    def answer(self, status: dict[str, Any], api_version: str = V1) -> None:
        output = {"apiVersion": api_version, "kind": "ExecCredential", "status": status}
        write(self.directory / "answer", json.dumps(output))

    @property
    def runs(self) -> int:
        runs = self.directory / "runs"
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    def seen(self, name: str) -> str:
        return (self.directory / name).read_text()


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    return Plugin(tmp_path / "kube")


def exec_user(api_version: str = V1, **extra: Any) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": api_version,
            "command": "./plugin.sh",  # relative to the kubeconfig's directory
            "args": ["get-token", "--cluster", "c1"],
            "env": [{"name": "PLUGIN_FLAVOUR", "value": "vanilla"}],
            "interactiveMode": "Never",
            **extra,
        }
    }


def stamp(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("api_version", [V1, V1BETA1])
async def test_exec_plugin_token(
    tmp_path: Path, plugin: Plugin, monkeypatch: pytest.MonkeyPatch, api_version: str
) -> None:
    monkeypatch.chdir(tmp_path)
    plugin.answer({"token": "exec-token"}, api_version)
    creds = load_document(
        tmp_path, kubeconfig({"server": "https://10.0.0.1"}, exec_user(api_version))
    )
    assert plugin.runs == 0  # run on first use
    assert await creds.auth.headers() == {"Authorization": "Bearer exec-token"}
    assert await creds.auth.headers() == {"Authorization": "Bearer exec-token"}
    assert plugin.runs == 1  # no expiry: cached
    assert plugin.seen("args") == "get-token --cluster c1\n"
    assert plugin.seen("flavour") == "vanilla"
    info = json.loads(plugin.seen("info"))
    assert info == {
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }
    assert "exec-token" not in repr(creds)


async def test_exec_plugin_gets_cluster_info_when_asked(
    tmp_path: Path, plugin: Plugin, pki: Pki
) -> None:
    plugin.answer({"token": "t"})
    cluster = {
        "server": "https://10.0.0.1:6443",
        "certificate-authority-data": b64(pki.ca_pem),
        "tls-server-name": "api.test",
    }
    user = exec_user(provideClusterInfo=True)
    await load_document(tmp_path, kubeconfig(cluster, user)).auth.headers()
    assert json.loads(plugin.seen("info"))["spec"]["cluster"] == {
        "server": "https://10.0.0.1:6443",
        "certificate-authority-data": b64(pki.ca_pem),
        "tls-server-name": "api.test",
        "insecure-skip-tls-verify": False,
    }


async def test_exec_credential_is_renewed_when_expired_and_on_refresh(
    tmp_path: Path, plugin: Plugin
) -> None:
    plugin.answer({"token": "old", "expirationTimestamp": stamp(timedelta(seconds=-1))})
    auth = load_document(tmp_path, kubeconfig({"server": "https://10.0.0.1"}, exec_user())).auth
    assert await auth.headers() == {"Authorization": "Bearer old"}
    plugin.answer({"token": "new", "expirationTimestamp": stamp(timedelta(hours=1))})
    assert await auth.headers() == {"Authorization": "Bearer new"}  # the old one had expired
    assert await auth.headers() == {"Authorization": "Bearer new"}
    assert plugin.runs == 2
    assert await auth.refresh() is False  # the plugin gave the same token again
    plugin.answer({"token": "newer"})
    assert await auth.refresh() is True
    assert await auth.headers() == {"Authorization": "Bearer newer"}
    assert plugin.runs == 4


async def test_exec_credential_close_to_expiry_is_renewed(tmp_path: Path, plugin: Plugin) -> None:
    plugin.answer({"token": "t", "expirationTimestamp": stamp(timedelta(seconds=5))})
    auth = load_document(tmp_path, kubeconfig({"server": "https://10.0.0.1"}, exec_user())).auth
    await auth.headers()
    await auth.headers()
    assert plugin.runs == 2


async def test_exec_plugin_client_certificate(tmp_path: Path, plugin: Plugin, pki: Pki) -> None:
    plugin.answer(
        {
            "clientCertificateData": pki.client_cert_pem.decode(),
            "clientKeyData": pki.client_key_pem.decode(),
        },
        V1BETA1,
    )
    cluster = {"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(pki.ca_pem)}
    creds = load_document(tmp_path, kubeconfig(cluster, exec_user(V1BETA1)))
    assert await handshake(creds, tmp_path, pki) == CLIENT_NAME
    assert await creds.auth.headers() == {}  # no token: the certificate is the credential
    assert plugin.runs == 1


async def test_failing_exec_plugin_reports_its_stderr(tmp_path: Path) -> None:
    script = write(
        tmp_path / "kube" / "fail.sh",
        "#!/bin/sh\necho 'starting' >&2\necho 'error: no SSO session; run login' >&2\nexit 3\n",
    )
    script.chmod(0o755)
    user = exec_user()
    user["exec"]["command"] = str(script)
    auth = load_document(tmp_path, kubeconfig({"server": "https://10.0.0.1"}, user)).auth
    with pytest.raises(CredentialsError) as error:
        await auth.headers()
    assert str(error.value) == (
        f"kubeconfig {tmp_path}/kube/config: user \"u\": exec plugin '{script}':"
        " exit code 3: starting error: no SSO session; run login"
    )


async def test_missing_exec_plugin_shows_the_install_hint(tmp_path: Path) -> None:
    user = exec_user(command="no-such-plugin-here", installHint="Install it with\n  brew it")
    auth = load_document(tmp_path, kubeconfig({"server": "https://10.0.0.1"}, user)).auth
    with pytest.raises(
        CredentialsError,
        match=r"'no-such-plugin-here': command not found \(Install it with brew it\)$",
    ):
        await auth.headers()


async def test_exec_plugin_run_time_is_bounded(tmp_path: Path) -> None:
    script = write(tmp_path / "slow.sh", "#!/bin/sh\nexec sleep 5\n")
    script.chmod(0o755)
    auth = ExecAuth(
        command=str(script),
        args=[],
        env={},
        api_version=V1,
        exec_info={},
        tls=None,
        where="test",
        timeout=0.2,
    )
    with pytest.raises(CredentialsError, match=r"did not finish within 0\.2 s$"):
        await auth.headers()


async def test_a_running_plugin_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """A plugin that takes long runs beside the loop: other work goes on, the wait for
    it can be cancelled at once (a stop), and closing the credentials ends the plugin."""
    pid_file = tmp_path / "pid"
    script = write(tmp_path / "slow.sh", f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 30\n")
    script.chmod(0o755)
    auth = ExecAuth(
        command=str(script), args=[], env={}, api_version=V1, exec_info={}, tls=None, where="t"
    )
    running = asyncio.create_task(auth.headers())
    ticks = 0
    for _ in range(20):  # the loop keeps turning while the plugin runs
        await asyncio.sleep(0.01)
        ticks += 1
    for _ in range(500):  # the plugin has started
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.01)
    pid = int(pid_file.read_text())
    started = time.monotonic()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert time.monotonic() - started < 0.5
    assert ticks == 20
    auth.close()
    for _ in range(100):  # killed, and reaped by the loop's child watcher
        if not Path(f"/proc/{pid}").exists():
            break
        await asyncio.sleep(0.02)
    assert not Path(f"/proc/{pid}").exists()


async def test_a_plugin_token_no_header_can_carry_is_not_kept(
    tmp_path: Path, plugin: Plugin
) -> None:
    plugin.answer({"token": "bad\ntoken"})
    auth = load_document(tmp_path, kubeconfig({"server": "https://10.0.0.1"}, exec_user())).auth
    with pytest.raises(CredentialsError, match="invalid ExecCredential output: the token holds"):
        await auth.headers()
    plugin.answer({"token": "good"})
    assert await auth.headers() == {"Authorization": "Bearer good"}


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("token: secret-out", "not JSON"),
        (json.dumps({"kind": "Other", "apiVersion": V1}), 'kind is not "ExecCredential"'),
        (
            json.dumps(
                {"kind": "ExecCredential", "apiVersion": V1BETA1, "status": {"token": "secret-out"}}
            ),
            f'apiVersion is not "{V1}"',
        ),
        (json.dumps({"kind": "ExecCredential", "apiVersion": V1}), "no status"),
        (
            json.dumps({"kind": "ExecCredential", "apiVersion": V1, "status": {}}),
            "neither a token nor a client certificate",
        ),
        (
            json.dumps(
                {
                    "kind": "ExecCredential",
                    "apiVersion": V1,
                    "status": {"clientKeyData": "secret-out"},
                }
            ),
            "clientCertificateData and clientKeyData come together",
        ),
        (
            json.dumps(
                {
                    "kind": "ExecCredential",
                    "apiVersion": V1,
                    "status": {"token": "secret-out", "expirationTimestamp": "soon"},
                }
            ),
            "expirationTimestamp 'soon'",
        ),
    ],
)
async def test_invalid_exec_output(
    tmp_path: Path, plugin: Plugin, output: str, problem: str
) -> None:
    write(plugin.directory / "answer", output)
    auth = load_document(tmp_path, kubeconfig({"server": "https://10.0.0.1"}, exec_user())).auth
    with pytest.raises(CredentialsError) as error:
        await auth.headers()
    assert str(error.value).endswith(f"invalid ExecCredential output: {problem}")
    assert "secret-out" not in str(error.value)


@pytest.mark.parametrize(
    ("exec_config", "problem"),
    [
        ({"apiVersion": "client.authentication.k8s.io/v1alpha1"}, "is not supported; use"),
        ({"interactiveMode": "Always"}, "interactiveMode Always needs a terminal"),
        ({"command": None}, "exec: no command"),
        ({"args": "--flag"}, "args must be a list of strings"),
        ({"env": [{"value": "x"}]}, "env must be a list of name/value mappings"),
    ],
)
def test_bad_exec_settings(tmp_path: Path, exec_config: dict[str, Any], problem: str) -> None:
    user = exec_user(**exec_config)
    with pytest.raises(CredentialsError) as error:
        load_document(tmp_path, kubeconfig({"server": "https://10.0.0.1"}, user))
    assert str(error.value).startswith(f'kubeconfig {tmp_path}/kube/config: user "u": exec')
    assert problem in str(error.value)


async def test_exec_expiry_uses_the_clock(tmp_path: Path, plugin: Plugin) -> None:
    plugin.answer({"token": "t", "expirationTimestamp": "2030-01-01T00:00:00Z"})
    now = [datetime(2029, 12, 31, 23, 0, tzinfo=UTC)]
    auth = ExecAuth(
        command=str(plugin.directory / "plugin.sh"),
        args=[],
        env={"PATH": os.environ["PATH"]},
        api_version=V1,
        exec_info={},
        tls=None,
        where="test",
        now=lambda: now[0],
    )
    await auth.headers()
    await auth.headers()
    assert plugin.runs == 1
    now[0] = datetime(2030, 1, 1, tzinfo=UTC)
    await auth.headers()
    assert plugin.runs == 2


def test_a_yaml_kubeconfig_without_pyyaml_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # PyYAML not installed (the image)
    path = write(tmp_path / "config", "apiVersion: v1\nkind: Config\n")
    with pytest.raises(CredentialsError) as error:
        load_kubeconfig(path)
    assert str(error.value) == (
        f"kubeconfig {path} is YAML: reading it needs PyYAML"
        " (pip install 'status-reporter[kubeconfig]'), or write it as JSON"
    )
