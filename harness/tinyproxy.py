"""A real egress proxy for the fault suite: Debian's tinyproxy (``tinyproxy-bin``,
installed by ``hack/faults/install-tools.sh``) on 127.0.0.1, with basic auth, opening
CONNECT tunnels to any port. Its log records each CONNECT, which the tests count.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from harness.controlplane import die_with_parent, free_port

_CONNECT = re.compile(r"CONNECT (\S+) HTTP/1\.[01]")


class TinyProxy:
    """tinyproxy listening on 127.0.0.1:``port``, requiring ``user`` and a random
    ``password``."""

    def __init__(self, workdir: Path, user: str = "reporter") -> None:
        self.workdir = workdir
        self.user = user
        self.password = secrets.token_hex(12)
        self.port = 0
        self.log = workdir / "tinyproxy.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The proxy's URL with its credentials."""
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}"

    def start(self) -> TinyProxy:
        """Start tinyproxy in the foreground and wait until it accepts connections."""
        binary = shutil.which("tinyproxy")
        if binary is None:
            raise RuntimeError("tinyproxy is missing: run hack/faults/install-tools.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = self.workdir / "tinyproxy.conf"
        # No ConnectPort line: CONNECT is allowed to any port (the API server's is random).
        config.write_text(
            f"Port {self.port}\n"
            "Listen 127.0.0.1\n"
            "Timeout 600\n"
            "MaxClients 100\n"
            "Allow 127.0.0.1\n"
            f"BasicAuth {self.user} {self.password}\n"
            f'LogFile "{self.log}"\n'
            "LogLevel Connect\n"
            f'PidFile "{self.workdir / "tinyproxy.pid"}"\n'
        )
        self._process = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "tinyproxy.stderr").open("wb"),
            preexec_fn=die_with_parent,  # noqa: PLW1509 - no threads run Python here yet
        )
        deadline = time.monotonic() + 10
        while not self._accepting():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tinyproxy did not start: {self.log_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def _accepting(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def log_text(self) -> str:
        """What tinyproxy logged so far."""
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def connects(self) -> list[str]:
        """The targets of the CONNECT requests it received, in order."""
        return _CONNECT.findall(self.log_text())

    def stop(self) -> None:
        """Stop the process and wait for it."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
