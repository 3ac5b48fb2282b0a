"""A client-go credential plugin (``client.authentication.k8s.io`` v1 or v1beta1), run
for a kubeconfig's ``exec`` user (README "Configuration").

The plugin runs as a child process of the event loop, bounded in time, on the first
request, when its credential expires and after a 401. A request waits for it within
its own time budget; one that gives up (its time is up, a stop) leaves the run going
for the next request, which waits for the same run instead of starting another.
:meth:`ExecAuth.close` kills a run still going when the reporter exits. It may give a
token or a client certificate. Only a kubeconfig names a plugin, so a Pod never
imports this module.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from status_reporter.api.auth import CredentialsError, bearer, load_client_cert

EXEC_TIMEOUT: Final = 30.0
API_VERSIONS: Final = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
# A credential this close to its expiry is renewed first: a request may take that long.
_EXPIRY_MARGIN: Final = timedelta(seconds=10)
_STDERR_TAIL: Final = 400


class _Issued(msgspec.Struct, frozen=True):
    """What one run of the plugin gave: a token, a client certificate and key (PEM), or
    both, and when they expire."""

    token: str | None
    cert: tuple[str, str] | None
    expiry: datetime | None


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
        # What the last run gave; None before the first.
        self._issued: _Issued | None = None
        # The run going on, shared by every request that waits for it.
        self._running: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None

    async def headers(self) -> dict[str, str]:
        """The ``Authorization`` header when the plugin gave a token (else none),
        running the plugin first if there is no valid credential yet."""
        issued = self._issued
        if issued is None or (
            issued.expiry is not None and self._now() >= issued.expiry - _EXPIRY_MARGIN
        ):
            await self._issue()
        token = self._issued.token if self._issued is not None else None
        return bearer(token, self._where) if token else {}

    async def refresh(self) -> bool:
        """Run the plugin again (or wait for the run going on); True when its credential
        changed."""
        before = self._issued
        await self._issue()
        after = self._issued
        assert after is not None
        return before is None or (before.token, before.cert) != (after.token, after.cert)

    def close(self) -> None:
        """Kill a run still going, with whatever it started (the reporter is exiting)."""
        if self._process is not None and self._process.returncode is None:
            _kill(self._process)

    async def _issue(self) -> None:
        """Wait for a run of the plugin, starting one unless one is going on. Giving up
        the wait (a cancellation) leaves the run going, bounded by its own time limit."""
        running = self._running
        if running is None:
            running = self._running = asyncio.ensure_future(self._run())
            running.add_done_callback(self._ran)
        await asyncio.shield(running)

    def _ran(self, running: asyncio.Task[None]) -> None:
        self._running = None
        if not running.cancelled():
            running.exception()  # seen by the waiters, if any are left

    async def _run(self) -> None:
        """Run the plugin as a child process of the event loop: waiting for it never
        blocks the loop."""
        try:
            process = self._process = await asyncio.create_subprocess_exec(
                *self._argv,
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                # A group of its own: killed, it takes what it started along.
                start_new_session=True,
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
            self._process = None
            if process.returncode is None:
                _kill(process)
                # Reaped by the loop's child watcher; do not wait for it.
        if process.returncode != 0:
            tail = " ".join(stderr.decode("utf-8", "replace").split())[-_STDERR_TAIL:]
            raise CredentialsError(
                f"{self._where}: exit code {process.returncode}: {tail or '(no stderr)'}"
            )
        issued = self._parse(stdout)
        if issued.cert is not None and self._tls is not None:
            cert, key = issued.cert
            load_client_cert(self._tls, cert.encode(), key.encode(), self._where)
        self._issued = issued

    def _parse(self, stdout: bytes) -> _Issued:
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
        return _Issued(
            token or None, (cert, key) if cert and key else None, self._expiry_of(status)
        )

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


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the plugin's process group (it leads one), or the plugin alone."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        process.kill()
