"""A kubeconfig as kubectl reads it: the current context of the merged files, its
server and CA, and a token, a token file, a client certificate or an exec credential
plugin (README "Configuration").

Only a reporter outside a Pod reads one (a developer's machine, the test harness):
:func:`status_reporter.api.credentials.load` imports this module when there is no
in-cluster service account. A JSON kubeconfig is read by msgspec; a YAML one needs
PyYAML (the ``kubeconfig`` extra). Tokens never appear in exception messages or reprs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from status_reporter.api.credentials import (
    Auth,
    Credentials,
    CredentialsError,
    NoAuth,
    TokenFileAuth,
    bearer,
    tls_context,
)
from status_reporter.api.transport import Endpoint

EXEC_TIMEOUT: Final = 30.0


_EXEC_API_VERSIONS: Final = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
)


# A credential this close to its expiry is renewed first: a request may take that long.
_EXPIRY_MARGIN: Final = timedelta(seconds=10)


_STDERR_TAIL: Final = 400


_UNSUPPORTED_USER_FIELDS: Final = {
    "username": "basic authentication (username/password)",
    "password": "basic authentication (username/password)",
    "as": "impersonation (as)",
    "as-uid": "impersonation (as-uid)",
    "as-groups": "impersonation (as-groups)",
    "as-user-extra": "impersonation (as-user-extra)",
}


class TokenAuth:
    """A bearer token written in the kubeconfig."""

    __slots__ = ("_header",)

    def __init__(self, token: str, where: str) -> None:
        self._header = bearer(token, where)

    async def headers(self) -> dict[str, str]:
        """The ``Authorization: Bearer`` header."""
        return self._header

    async def refresh(self) -> bool:
        """A token written in the file cannot change."""
        return False

    def __repr__(self) -> str:
        return "TokenAuth(<hidden>)"


class ExecAuth:
    """A client-go credential plugin (``client.authentication.k8s.io`` v1 or v1beta1).

    The plugin runs on first use, again when its credential expires, and on
    :meth:`refresh`. It may return a token or a client certificate; a certificate is
    loaded into ``tls`` and so applies to connections opened after that.
    """

    def __init__(
        self,
        *,
        command: str,
        args: list[str],
        env: Mapping[str, str],
        api_version: str,
        exec_info: Mapping[str, Any],
        tls: ssl.SSLContext | None,
        where: str,
        install_hint: str = "",
        timeout: float = EXEC_TIMEOUT,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._argv = [command, *args]
        self._env = {**env, "KUBERNETES_EXEC_INFO": msgspec.json.encode(exec_info).decode()}
        self._api_version = api_version
        self._tls = tls
        self._where = f"{where}: exec plugin {command!r}"
        self._install_hint = install_hint
        self._timeout = timeout
        self._now = now
        self._token: str | None = None
        self._cert: tuple[str, str] | None = None
        self._expiry: datetime | None = None
        self._loaded = False
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        """The ``Authorization`` header when the plugin gave a token (else none),
        running the plugin first if there is no valid credential yet."""
        async with self._lock:  # concurrent requests share one run of the plugin
            if not self._loaded or (
                self._expiry is not None and self._now() >= self._expiry - _EXPIRY_MARGIN
            ):
                await self._run()
        return bearer(self._token, self._where) if self._token else {}

    async def refresh(self) -> bool:
        """Run the plugin again; True when its credential changed."""
        async with self._lock:
            before = (self._token, self._cert)
            await self._run()
            return (self._token, self._cert) != before

    async def _run(self) -> None:
        """Run the plugin as a child process of the event loop: waiting for it never
        blocks the loop, and a cancelled wait (a stop) kills it."""
        try:
            process = await asyncio.create_subprocess_exec(
                *self._argv,
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            hint = f" ({' '.join(self._install_hint.split())})" if self._install_hint else ""
            raise CredentialsError(f"{self._where}: command not found{hint}") from None
        except OSError as exc:
            raise CredentialsError(f"{self._where}: {exc.strerror or exc}") from None
        try:
            async with asyncio.timeout(self._timeout):
                stdout, stderr = await process.communicate()
        except TimeoutError:
            raise CredentialsError(
                f"{self._where}: did not finish within {self._timeout} s"
            ) from None
        finally:
            if process.returncode is None:
                process.kill()
                # Reaped by the loop's child watcher; do not wait for it on a stop.
        if process.returncode != 0:
            tail = " ".join(stderr.decode("utf-8", "replace").split())[-_STDERR_TAIL:]
            raise CredentialsError(
                f"{self._where}: exit code {process.returncode}: {tail or '(no stderr)'}"
            )
        token, cert, expiry = self._parse(stdout)
        if cert is not None and self._tls is not None:
            _load_client_cert(self._tls, cert[0].encode(), cert[1].encode(), self._where)
        self._token, self._cert, self._expiry, self._loaded = token, cert, expiry, True

    def _parse(self, stdout: bytes) -> tuple[str | None, tuple[str, str] | None, datetime | None]:
        # Messages never quote the output: it holds the credential.
        invalid = f"{self._where}: invalid ExecCredential output"
        try:
            output = msgspec.json.decode(stdout)
        except msgspec.DecodeError:
            raise CredentialsError(f"{invalid}: not JSON") from None
        if not isinstance(output, dict) or output.get("kind") != "ExecCredential":
            raise CredentialsError(f'{invalid}: kind is not "ExecCredential"')
        if output.get("apiVersion") != self._api_version:
            raise CredentialsError(f'{invalid}: apiVersion is not "{self._api_version}"')
        status = output.get("status")
        if not isinstance(status, dict):
            raise CredentialsError(f"{invalid}: no status")
        token, cert, key = (
            status.get(k) for k in ("token", "clientCertificateData", "clientKeyData")
        )
        if not all(isinstance(v, str | None) for v in (token, cert, key)):
            raise CredentialsError(f"{invalid}: token and client certificate data must be strings")
        if bool(cert) != bool(key):
            raise CredentialsError(
                f"{invalid}: clientCertificateData and clientKeyData come together"
            )
        if not token and not cert:
            raise CredentialsError(f"{invalid}: neither a token nor a client certificate")
        if token:
            bearer(token, invalid)  # a bad token is not kept: the next request runs it again
        return token or None, (cert, key) if cert and key else None, self._expiry_of(status)

    def _expiry_of(self, status: Mapping[str, Any]) -> datetime | None:
        stamp = status.get("expirationTimestamp")
        if stamp is None:
            return None
        try:
            expiry = datetime.fromisoformat(stamp)
        except (TypeError, ValueError):
            raise CredentialsError(
                f"{self._where}: invalid ExecCredential output: expirationTimestamp {stamp!r}"
            ) from None
        return expiry if expiry.tzinfo is not None else expiry.replace(tzinfo=UTC)

    def __repr__(self) -> str:
        return f"ExecAuth({self._argv[0]!r})"


def _load_client_cert(tls: ssl.SSLContext, cert: bytes | str, key: bytes | str, where: str) -> None:
    """Load a client certificate and key given as files or as PEM data."""
    # Read files here too, for an error that names the file ssl would not name.
    pem = [part if isinstance(part, bytes) else _read_file(part, where) for part in (cert, key)]
    if isinstance(cert, str) and isinstance(key, str):
        _load_chain(tls, cert, key, where)
        return
    # ssl loads certificates from files only: a private (0600) file, removed at once.
    import tempfile  # noqa: PLC0415 - only certificate data needs it, never a Pod

    try:
        fd, name = tempfile.mkstemp(prefix="status-reporter-", suffix=".pem")
    except OSError as exc:
        raise CredentialsError(
            f"{where}: cannot write a temporary key file: {exc.strerror}"
        ) from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem[0] + b"\n" + pem[1])
        _load_chain(tls, name, None, where)
    finally:
        os.unlink(name)


def _read_file(path: str, where: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise CredentialsError(f"{where}: {path}: {exc.strerror}") from None


def _load_chain(tls: ssl.SSLContext, certfile: str, keyfile: str | None, where: str) -> None:
    try:
        tls.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        detail = f" ({exc.reason})" if exc.reason else ""
        raise CredentialsError(f"{where}: client certificate and key do not load{detail}") from None


class _Entry(msgspec.Struct, frozen=True):
    """A named cluster, user or context, and the file that defined it."""

    value: Mapping[str, Any]
    file: str

    def where(self, kind: str, name: str) -> str:
        return f'kubeconfig {self.file}: {kind} "{name}"'

    def text(self, key: str, where: str) -> str | None:
        value = self.value.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise CredentialsError(f"{where}: {key} must be a string")
        return value

    def path(self, key: str, where: str) -> str | None:
        """A file path; a relative one is relative to the kubeconfig's directory."""
        value = self.text(key, where)
        return None if value is None else _beside(self.file, value)

    def data(self, key: str, where: str) -> bytes | None:
        value = self.text(key, where)
        if value is None:
            return None
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise CredentialsError(f"{where}: {key} is not valid base64") from None


def _beside(file: str, path: str) -> str:
    """``path`` resolved against the directory of ``file`` (unchanged when absolute)."""
    return os.path.normpath(os.path.join(os.path.dirname(file), path))


def _parse_kubeconfig(path: str) -> object:
    """A kubeconfig file's document: JSON (a subset of YAML) without loading PyYAML."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise CredentialsError(f"kubeconfig {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CredentialsError(f"kubeconfig {path}: not UTF-8 YAML") from None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        pass  # the usual case: YAML
    try:
        import yaml  # noqa: PLC0415 - only YAML kubeconfigs need it; in a Pod it is never imported
    except ImportError:
        raise CredentialsError(
            f"kubeconfig {path} is YAML: reading it needs PyYAML"
            " (pip install 'status-reporter[kubeconfig]'), or write it as JSON"
        ) from None

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        # Only the position: PyYAML's own message quotes the line, maybe a token.
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CredentialsError(f"kubeconfig {path}: invalid YAML{at}: {exc.problem}") from None
    except yaml.YAMLError:
        raise CredentialsError(f"kubeconfig {path}: not UTF-8 YAML") from None


def load_kubeconfig(paths: list[str], env: Mapping[str, str]) -> Credentials:
    """The credentials of the current context of the kubeconfig files ``paths``, merged
    the way kubectl merges them.

    Raises CredentialsError with a one-line message naming the file and field.
    """
    files: list[tuple[str, Mapping[str, Any]]] = []
    for path in paths:
        document = _parse_kubeconfig(path)
        if document is None:
            document = {}
        if not isinstance(document, dict):
            raise CredentialsError(f"kubeconfig {path}: not a mapping")
        files.append((path, document))
    source = ":".join(path for path, _ in files)

    # kubectl's merge: the first file that sets current-context wins, and the first
    # definition of each named cluster, user and context wins.
    current = next(
        (str(doc["current-context"]) for _, doc in files if doc.get("current-context")), None
    )
    if current is None:
        raise CredentialsError(f"kubeconfig {source}: current-context is not set")
    contexts = _named(files, "contexts", "context")
    if current not in contexts:
        raise CredentialsError(f'kubeconfig {source}: context "{current}" not found')
    context = contexts[current]
    where = context.where("context", current)
    cluster_name = context.text("cluster", where)
    if cluster_name is None:
        raise CredentialsError(f"{where}: no cluster")
    clusters = _named(files, "clusters", "cluster")
    if cluster_name not in clusters:
        raise CredentialsError(
            f'{where}: cluster "{cluster_name}" not found in kubeconfig {source}'
        )
    endpoint, exec_cluster = _cluster(clusters[cluster_name], cluster_name)
    user_name = context.text("user", where)
    if user_name is None:
        return Credentials(endpoint, NoAuth(), source)
    users = _named(files, "users", "user")
    if user_name not in users:
        raise CredentialsError(f'{where}: user "{user_name}" not found in kubeconfig {source}')
    auth = _user(users[user_name], user_name, endpoint, exec_cluster, env)
    return Credentials(endpoint, auth, source)


def _named(
    files: list[tuple[str, Mapping[str, Any]]], section: str, kind: str
) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for path, document in files:
        items = document.get(section) or []
        if not isinstance(items, list):
            raise CredentialsError(f"kubeconfig {path}: {section} must be a list")
        for item in items:
            name = item.get("name") if isinstance(item, dict) else None
            value = item.get(kind) if isinstance(item, dict) else None
            if not isinstance(name, str) or not isinstance(value, dict | None):
                raise CredentialsError(
                    f"kubeconfig {path}: each of {section} needs a name and a {kind} mapping"
                )
            entries.setdefault(name, _Entry(value or {}, path))
    return entries


def _cluster(entry: _Entry, name: str) -> tuple[Endpoint, dict[str, Any]]:
    """The endpoint, and the cluster as an exec plugin sees it (provideClusterInfo)."""
    where = entry.where("cluster", name)
    if entry.value.get("proxy-url"):
        raise CredentialsError(f"{where}: proxy-url is not supported")
    server = entry.text("server", where)
    if server is None:
        raise CredentialsError(f"{where}: no server")
    from urllib.parse import urlsplit  # noqa: PLC0415 - kubeconfigs only, never in a Pod

    url = urlsplit(server if "://" in server else f"https://{server}")
    try:
        port = url.port
    except ValueError:
        raise CredentialsError(f"{where}: server {server!r} has an invalid port") from None
    if url.scheme not in ("https", "http") or not url.hostname:
        raise CredentialsError(f"{where}: server {server!r} is not an http(s)://host[:port] URL")
    if url.path.strip("/") or url.query or url.fragment:
        raise CredentialsError(f"{where}: server {server!r}: a URL path is not supported")
    exec_cluster: dict[str, Any] = {"server": server}
    if url.scheme == "http":
        return Endpoint(url.hostname, port or 80), exec_cluster
    tls, ca_pem, insecure = _cluster_tls(entry, where)
    server_name = entry.text("tls-server-name", where)
    exec_cluster["insecure-skip-tls-verify"] = insecure
    if server_name:
        exec_cluster["tls-server-name"] = server_name
    if ca_pem:
        exec_cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return Endpoint(url.hostname, port or 443, tls, server_name), exec_cluster


def _cluster_tls(entry: _Entry, where: str) -> tuple[ssl.SSLContext, bytes | None, bool]:
    """The TLS context, the CA certificate (PEM) when one is set, and whether
    verification is off."""
    insecure = entry.value.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        raise CredentialsError(f"{where}: insecure-skip-tls-verify must be true or false")
    ca_pem = entry.data("certificate-authority-data", where)
    ca_file = None if ca_pem else entry.path("certificate-authority", where)
    if insecure and (ca_pem or ca_file):
        raise CredentialsError(
            f"{where}: insecure-skip-tls-verify cannot be combined with a certificate authority"
        )
    if ca_pem is not None:
        try:
            text = ca_pem.decode("ascii")
        except UnicodeDecodeError:
            raise CredentialsError(f"{where}: certificate-authority-data is not PEM") from None
        tls = tls_context(cadata=text, where=f"{where}: certificate-authority-data")
    elif ca_file is not None:
        tls = tls_context(cafile=ca_file, where=f"{where}: certificate-authority {ca_file}")
        ca_pem = _read_file(ca_file, where)
    else:
        tls = tls_context(where=where)
    if insecure:
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    return tls, ca_pem, insecure


def _user(
    entry: _Entry,
    name: str,
    endpoint: Endpoint,
    exec_cluster: dict[str, Any],
    env: Mapping[str, str],
) -> Auth:
    where = entry.where("user", name)
    if "auth-provider" in entry.value:
        provider = entry.value["auth-provider"]
        provider_name = provider.get("name") if isinstance(provider, dict) else None
        raise CredentialsError(
            f'{where}: auth-provider "{provider_name}" is not supported; use an exec plugin'
        )
    for field, what in _UNSUPPORTED_USER_FIELDS.items():
        if entry.value.get(field):
            raise CredentialsError(f"{where}: {what} is not supported")

    cert = entry.data("client-certificate-data", where) or entry.path("client-certificate", where)
    key = entry.data("client-key-data", where) or entry.path("client-key", where)
    if (cert is None) != (key is None):
        raise CredentialsError(f"{where}: a client certificate needs both a certificate and a key")
    if cert is not None and key is not None and endpoint.tls is not None:
        _load_client_cert(endpoint.tls, cert, key, where)

    token = entry.text("token", where)
    token_file = entry.path("tokenFile", where)
    if "exec" in entry.value:
        if token or token_file or cert:
            raise CredentialsError(f"{where}: exec cannot be combined with a token or certificate")
        return _exec(entry, name, endpoint, exec_cluster, env)
    if token_file is not None:
        return TokenFileAuth(token_file)
    if token is not None:
        return TokenAuth(token, f"{where}: token")
    return NoAuth()


def _exec(
    entry: _Entry,
    user: str,
    endpoint: Endpoint,
    exec_cluster: dict[str, Any],
    env: Mapping[str, str],
) -> ExecAuth:
    config = entry.value["exec"]
    if not isinstance(config, dict):
        raise CredentialsError(f"{entry.where('user', user)}: exec must be a mapping")
    exec_entry = _Entry(config, entry.file)
    where = f"{entry.where('user', user)}: exec"
    command = exec_entry.text("command", where)
    if command is None:
        raise CredentialsError(f"{where}: no command")
    if "/" in command:
        # client-go resolves a relative command path against the kubeconfig's directory.
        command = _beside(entry.file, command)
    api_version = exec_entry.text("apiVersion", where)
    if api_version not in _EXEC_API_VERSIONS:
        raise CredentialsError(
            f"{where}: apiVersion {api_version!r} is not supported;"
            f" use {' or '.join(_EXEC_API_VERSIONS)}"
        )
    if config.get("interactiveMode") == "Always":
        raise CredentialsError(f"{where}: interactiveMode Always needs a terminal; there is none")
    args = config.get("args") or []
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise CredentialsError(f"{where}: args must be a list of strings")
    plugin_env = dict(env)
    for variable in config.get("env") or []:
        if not isinstance(variable, dict) or not isinstance(variable.get("name"), str):
            raise CredentialsError(f"{where}: env must be a list of name/value mappings")
        plugin_env[variable["name"]] = str(variable.get("value", ""))
    spec: dict[str, Any] = {"interactive": False}
    if config.get("provideClusterInfo"):
        spec["cluster"] = exec_cluster
    return ExecAuth(
        command=command,
        args=args,
        env=plugin_env,
        api_version=api_version,
        exec_info={"apiVersion": api_version, "kind": "ExecCredential", "spec": spec},
        tls=endpoint.tls,
        where=entry.where("user", user),
        install_hint=exec_entry.text("installHint", where) or "",
    )
