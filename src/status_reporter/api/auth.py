"""How requests authenticate to the API server, whatever the credentials came from: the
:class:`Auth` interface, bearer tokens (written, or read from a file and read again after
a 401), client certificates, and the :class:`Credentials` that pair them with the
endpoint.

Shared by the in-cluster service account (:mod:`status_reporter.api.credentials`), the
kubeconfig (:mod:`status_reporter.api.kubeconfig`) and credential plugins
(:mod:`status_reporter.api.execplugin`). Tokens never appear in exception messages or
reprs.
"""

from __future__ import annotations

import os
import ssl
from typing import Protocol

import msgspec

from status_reporter.api.transport import Endpoint, ResumingContext


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

    def close(self) -> None:
        """End whatever still runs to get a credential (the reporter is exiting)."""
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

    def close(self) -> None:
        """Nothing runs."""

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

    def close(self) -> None:
        """Nothing runs: the file is read when asked."""

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

    def close(self) -> None:
        """Nothing runs."""

    def __repr__(self) -> str:
        return "TokenAuth(<hidden>)"


def load_client_cert(tls: ssl.SSLContext, cert: bytes | str, key: bytes | str, where: str) -> None:
    """Load a client certificate and key given as files or as PEM data."""
    # Read files here too, for an error that names the file ssl would not name.
    pem = [part if isinstance(part, bytes) else read_file(part, where) for part in (cert, key)]
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


def read_file(path: str, where: str) -> bytes:
    """The bytes of the file at ``path``; CredentialsError naming ``where`` if unreadable."""
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


def tls_context(
    *, cafile: str | None = None, cadata: str | None = None, where: str
) -> ssl.SSLContext:
    """A verifying client context that trusts the given CA, or the system's when None.
    Its connections resume the TLS session of an earlier one (README "Configuration")."""
    try:
        return ResumingContext.verifying(cafile=cafile, cadata=cadata)
    except ssl.SSLError:
        raise CredentialsError(f"{where}: no valid PEM certificate") from None
    except OSError as exc:
        raise CredentialsError(f"{where}: {exc.strerror}") from None
