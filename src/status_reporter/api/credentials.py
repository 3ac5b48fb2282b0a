"""Where the Kubernetes API server is and how to authenticate to it: the in-cluster
service account, or else a kubeconfig.

In a Pod this is the service account: ``KUBERNETES_SERVICE_HOST`` and
``KUBERNETES_SERVICE_PORT``, its token (read again after a 401: the kubelet rotates
it) and CA certificate. Elsewhere it is the current context of the kubeconfig files
(:mod:`status_reporter.api.kubeconfig`, imported only then), as client-go keeps
``rest.InClusterConfig`` apart from ``clientcmd``.

Tokens never appear in exception messages or reprs.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Final, Protocol

import msgspec

from status_reporter.api.transport import Endpoint

# Paths are plain strings: importing pathlib (with urllib.parse) would add about 5 %
# to the reporter's start-up instructions, for a handful of joins.
SERVICE_ACCOUNT_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"


class CredentialsError(Exception):
    """The API server's address or credentials cannot be loaded; the message names
    the file and field."""


class Auth(Protocol):
    """How requests authenticate. Both methods may run a credential plugin, so they are
    awaited: the event loop (and a stop) never waits for one."""

    async def headers(self) -> dict[str, str]:
        """Headers to add to each request, e.g. ``Authorization``."""
        ...

    async def refresh(self) -> bool:
        """Reload the credential after an HTTP 401; True when it changed, so a retry
        is worthwhile."""
        ...


def bearer(token: str, where: str) -> dict[str, str]:
    """The ``Authorization`` header for ``token``.

    Raises:
        CredentialsError: the token holds characters no header may carry (a line
            break inside a token file, say); the token itself is never shown.
    """
    if not token.isascii() or not token.isprintable() or " " in token:
        raise CredentialsError(f"{where}: the token holds spaces, line breaks or non-ASCII")
    return {"Authorization": f"Bearer {token}"}


class NoAuth:
    """No credential (or a client certificate only, which lives in the TLS context)."""

    async def headers(self) -> dict[str, str]:
        """No headers."""
        return {}

    async def refresh(self) -> bool:
        """Nothing to reload."""
        return False

    def __repr__(self) -> str:
        return "NoAuth()"


class TokenFileAuth:
    """A bearer token read from a file on first use and again on :meth:`refresh`, as
    the kubelet rotates service account tokens."""

    __slots__ = ("_token", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._token: str | None = None

    async def headers(self) -> dict[str, str]:
        """The ``Authorization: Bearer`` header; raises CredentialsError when the
        file cannot be read (it is read again on the next call)."""
        if self._token is None:
            self._token = self._read()
        return bearer(self._token, f"token file {self.path}")

    async def refresh(self) -> bool:
        """Read the file again; True when the token changed."""
        before, self._token = self._token, self._read()
        return self._token != before

    def _read(self) -> str:
        # A file read is quick: no need to leave the event loop for it.
        try:
            with open(self.path, encoding="utf-8") as file:
                token = file.read().strip()
        except OSError as exc:
            raise CredentialsError(f"token file {self.path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise CredentialsError(f"token file {self.path}: not UTF-8 text") from None
        if not token:
            raise CredentialsError(f"token file {self.path} is empty")
        bearer(token, f"token file {self.path}")  # a bad token is not kept
        return token

    def __repr__(self) -> str:
        return f"TokenFileAuth({self.path!r})"


class Credentials(msgspec.Struct, frozen=True):
    """The API server's endpoint and how to authenticate to it."""

    endpoint: Endpoint
    auth: Auth
    source: str  # "in-cluster" or the kubeconfig file(s), for a log line


def load(
    env: Mapping[str, str], *, home: str, service_account_dir: str = SERVICE_ACCOUNT_DIR
) -> Credentials:
    """The in-cluster service account when there is one, else the kubeconfig:
    ``KUBECONFIG`` (a ``:``-separated list) or ``home/.kube/config``.

    Raises CredentialsError with a one-line message naming the file and field.
    """
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    token = os.path.join(service_account_dir, "token")
    if host and port and os.path.exists(token):
        return _in_cluster(host, port, service_account_dir)
    if not host:
        no_service_account = "KUBERNETES_SERVICE_HOST unset"
    elif not port:
        no_service_account = "KUBERNETES_SERVICE_PORT unset"
    else:
        no_service_account = f"no token at {token}"
    listed = [p for p in env.get("KUBECONFIG", "").split(":") if p]
    if not listed:
        listed = [os.path.join(home, ".kube", "config")]
    # Like kubectl, skip the files of the list that do not exist.
    paths = [path for path in listed if os.path.exists(path)]
    if not paths:
        raise CredentialsError(
            f"no in-cluster service account ({no_service_account})"
            f" and no kubeconfig at {':'.join(listed)}"
        )
    # Outside a Pod only: the kubeconfig loader (with its YAML, certificates and plugins)
    # is never imported in one.
    from status_reporter.api.kubeconfig import load_kubeconfig  # noqa: PLC0415

    return load_kubeconfig(paths, env)


def _in_cluster(host: str, port: str, service_account_dir: str) -> Credentials:
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise CredentialsError(f"KUBERNETES_SERVICE_PORT is not a port number: {port!r}")
    ca = os.path.join(service_account_dir, "ca.crt")
    tls = tls_context(cafile=ca, where=f"CA file {ca}")
    token = TokenFileAuth(os.path.join(service_account_dir, "token"))
    return Credentials(Endpoint(host, int(port), tls), token, "in-cluster")


def tls_context(
    *, cafile: str | None = None, cadata: str | None = None, where: str
) -> ssl.SSLContext:
    """A verifying client context that trusts the given CA, or the system's when None."""
    try:
        return ssl.create_default_context(cafile=cafile, cadata=cadata)
    except ssl.SSLError:
        raise CredentialsError(f"{where}: no valid PEM certificate") from None
    except OSError as exc:
        raise CredentialsError(f"{where}: {exc.strerror}") from None
