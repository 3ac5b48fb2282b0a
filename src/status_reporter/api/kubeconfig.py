"""A kubeconfig as kubectl reads it: the current context of the merged files, its
server, CA and proxy, and a token, a token file, a client certificate or an exec credential
plugin (README "Configuration").

Only a reporter outside a Pod reads one (a developer's machine, the test harness):
:func:`status_reporter.api.credentials.load` imports this module when there is no
in-cluster service account. A JSON kubeconfig is read by msgspec; a YAML one needs
PyYAML (the ``kubeconfig`` extra). Tokens never appear in exception messages.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from status_reporter.api.auth import (
    Auth,
    Credentials,
    CredentialsError,
    NoAuth,
    TokenAuth,
    TokenFileAuth,
    load_client_cert,
    read_file,
    tls_context,
)
from status_reporter.api.proxy import parse_proxy_url, proxy_from_environment
from status_reporter.api.transport import Endpoint, Proxy

_UNSUPPORTED_USER_FIELDS: Final = {
    "username": "basic authentication (username/password)",
    "password": "basic authentication (username/password)",
    "as": "impersonation (as)",
    "as-uid": "impersonation (as-uid)",
    "as-groups": "impersonation (as-groups)",
    "as-user-extra": "impersonation (as-user-extra)",
}


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
    endpoint, exec_cluster = _cluster(clusters[cluster_name], cluster_name, env)
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


def _cluster(entry: _Entry, name: str, env: Mapping[str, str]) -> tuple[Endpoint, dict[str, Any]]:
    """The endpoint, and the cluster as an exec plugin sees it (provideClusterInfo).

    Its ``proxy-url`` is used as it is (as client-go does: no ``NO_PROXY``); without
    one, the environment's proxy settings decide.
    """
    where = entry.where("cluster", name)
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
    host, port = url.hostname, port or (80 if url.scheme == "http" else 443)
    proxy_url = entry.text("proxy-url", where)
    proxy: Proxy | None
    if proxy_url is not None:
        proxy = parse_proxy_url(proxy_url, f"{where}: proxy-url")
        exec_cluster["proxy-url"] = proxy_url
    else:
        proxy = proxy_from_environment(env, url.scheme, host, port)
    if url.scheme == "http":
        return Endpoint(host, port, proxy=proxy), exec_cluster
    tls, ca_pem, insecure = _cluster_tls(entry, where)
    server_name = entry.text("tls-server-name", where)
    exec_cluster["insecure-skip-tls-verify"] = insecure
    if server_name:
        exec_cluster["tls-server-name"] = server_name
    if ca_pem:
        exec_cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    ca_file = (
        None
        if entry.data("certificate-authority-data", where)
        else entry.path("certificate-authority", where)
    )
    endpoint = Endpoint(host, port, tls, server_name, proxy=proxy, ca_file=ca_file)
    return endpoint, exec_cluster


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
        ca_pem = read_file(ca_file, where)
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
        load_client_cert(endpoint.tls, cert, key, where)

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
) -> Auth:
    from status_reporter.api.execplugin import API_VERSIONS, ExecAuth  # noqa: PLC0415 - plugins only

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
    if api_version not in API_VERSIONS:
        raise CredentialsError(
            f"{where}: apiVersion {api_version!r} is not supported; use {' or '.join(API_VERSIONS)}"
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
