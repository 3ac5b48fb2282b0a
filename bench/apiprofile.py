"""Where kube-apiserver's CPU goes: its CPU profile (``/debug/pprof/profile``), taken
in one-second pieces for as long as a fleet runs, each sample put in a category by
the stack frames it holds.

The pieces follow each other without a gap the harness cares about: a phase of
``bench/fleet.py`` begins at the start of a piece (:meth:`Profiler.boundary`), so
that the pieces whose middle falls inside a phase cover it whole. ``go tool pprof``
(the Go toolchain builds the control plane) reads them.
"""

from __future__ import annotations

import http.client
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PIECE_SECONDS = 1
# A Go CPU profile samples every 10 ms of CPU time.
SAMPLE_SECONDS = 0.01

# Categories, first match wins; a sample is matched against all its frames. The
# request kinds come last because their handlers hold the other categories' frames
# (a GET's stack runs through the authentication filter, and so on).
PROFILING = "profiling (the measurement itself)"
AUDIT = "audit log (the measurement)"
TLS = "TLS handshakes"
AUTHENTICATION = "authentication"
AUTHORIZATION = "authorization"
RULES_REVIEW = "the rules review"
GETS = "GETs"
WATCH_SETUP = "watch set-up"
WATCH_EVENTS = "watch: events sent"
WRITES = "writes (update, patch)"
CREATES = "creates (Events)"
SERVING = "HTTP serving, other filters"
GC = "garbage collection, Go runtime"
BACKGROUND = "background (controllers, storage)"

RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (category, re.compile(pattern))
    for category, pattern in (
        (PROFILING, r"^runtime/pprof\.|^net/http/pprof\.|/server/routes\.\w*[Pp]rofil"),
        (AUDIT, r"^k8s\.io/apiserver/(pkg/audit|plugin/pkg/audit)\b"),
        (TLS, r"^crypto/tls\.\(\*Conn\)\.[Hh]andshake|^crypto/tls\.\(\*serverHandshakeState"),
        (AUTHENTICATION, r"\.AuthenticateRequest$|\.AuthenticateToken$"),
        (AUTHORIZATION, r"\.Authorize$"),
        (RULES_REVIEW, r"selfsubjectrulesreview"),
        (WATCH_EVENTS, r"\(\*WatchServer\)\.|\(\*cacheWatcher\)\.|\.\(\*Cacher\)\.dispatch"),
        (
            WATCH_SETUP,
            r"handlers\.(handleWatch|serveWatch)|\.\(\*Cacher\)\.Watch|\(\*Store\)\.Watch",
        ),
        (GETS, r"handlers\.(GetResource|getResourceHandler|ListResource)"),
        (WRITES, r"handlers\.(UpdateResource|PatchResource)|\(\*patcher\)\."),
        (CREATES, r"handlers\.(CreateResource|createHandler|CreateNamedResource)"),
        (SERVING, r"^net/http\.|^golang\.org/x/net/http2\.|^net/http\.\(\*http2"),
        (GC, r"^runtime\.(gcBgMarkWorker|bgsweep|bgscavenge|mallocgc|gcAssist|mcall|morestack)"),
    )
)
CATEGORIES = (*(category for category, _ in RULES), BACKGROUND)
# The categories a table of the reporters' own work shows (the rest is the harness's
# measuring, the Go runtime or the server's own background).
REQUEST_CATEGORIES = (
    TLS,
    AUTHENTICATION,
    AUTHORIZATION,
    RULES_REVIEW,
    GETS,
    WATCH_SETUP,
    WATCH_EVENTS,
    WRITES,
    CREATES,
    SERVING,
)


def category(frames: Sequence[str]) -> str:
    """The category of a sample whose stack holds ``frames`` (function names)."""
    for name, pattern in RULES:
        if any(pattern.search(frame) for frame in frames):
            return name
    return BACKGROUND


def go_tool() -> str | None:
    """The ``go`` command that reads profiles, or None when there is none."""
    return shutil.which("go")


_VALUE = re.compile(r"^\s*(\d+(?:\.\d+)?)(ns|us|µs|ms|s)\s+(\S.*)$")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
# How ``-traces`` marks a frame inlined into its caller.
_INLINE = " (inline)"


def parse_traces(text: str) -> dict[str, float]:
    """CPU seconds by category from ``go tool pprof -traces`` output."""
    seconds: dict[str, float] = {}
    value: float = 0.0
    frames: list[str] = []
    for line in [*text.splitlines(), "-----------+"]:
        if line.startswith("-----------+"):
            if frames:
                name = category(frames)
                seconds[name] = seconds.get(name, 0.0) + value
            value, frames = 0.0, []
            continue
        match = _VALUE.match(line)
        if match:
            value = float(match.group(1)) * _UNITS[match.group(2)]
            frames.append(match.group(3).strip().removesuffix(_INLINE))
        elif frames and line.strip():
            frames.append(line.strip().removesuffix(_INLINE))
    return seconds


def categorise(paths: Sequence[Path], go: str) -> dict[str, float]:
    """CPU seconds by category over the profiles at ``paths`` (merged)."""
    if not paths:
        return {}
    result = subprocess.run(
        [go, "tool", "pprof", "-traces", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return parse_traces(result.stdout)


@dataclass(frozen=True)
class Piece:
    """One profile of about a second: when it was asked for and when it came back."""

    start: float
    end: float
    path: Path

    @property
    def middle(self) -> float:
        """The wall clock halfway through."""
        return (self.start + self.end) / 2


class Profiler:
    """Takes kube-apiserver's CPU profile in back-to-back pieces in a thread of its own,
    over one kept-alive connection (no TLS handshake per piece)."""

    def __init__(
        self,
        url: str,
        token: str,
        ca_file: Path,
        directory: Path,
        log: Callable[[str], None],
    ) -> None:
        self._host, port = url.removeprefix("https://").rsplit(":", 1)
        self._port = int(port)
        self._token = token
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self._directory = directory
        self._log = log
        directory.mkdir(parents=True, exist_ok=True)
        self.pieces: list[Piece] = []
        self.failures = 0
        self._asked = 0
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="apiserver-profile")
        self._thread.start()

    def _connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=PIECE_SECONDS + 30
        )

    def _run(self) -> None:
        connection = self._connect()
        while not self._stop.is_set():
            start = time.time()
            with self._changed:
                self._asked += 1
                self._changed.notify_all()
            try:
                connection.request(
                    "GET",
                    f"/debug/pprof/profile?seconds={PIECE_SECONDS}",
                    headers={"Authorization": f"Bearer {self._token}"},
                )
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.failures += 1
                self._log(f"profile piece failed: {exc!r}")
                connection.close()
                connection = self._connect()
                self._stop.wait(0.2)
                continue
            end = time.time()
            if response.status != 200:
                self.failures += 1
                self._log(f"profile piece answered {response.status}: {body[:200]!r}")
                self._stop.wait(0.2)
                continue
            path = self._directory / f"piece-{len(self.pieces):05d}.pb.gz"
            path.write_bytes(body)
            self.pieces.append(Piece(start, end, path))
        connection.close()

    def boundary(self) -> float:
        """Wait until the next piece has been asked for; its start (wall clock)."""
        with self._changed:
            target = self._asked + 1
            self._changed.wait_for(lambda: self._asked >= target or self._stop.is_set())
        started = time.time()
        # Let the request reach the server and its profile begin.
        time.sleep(0.02)
        return started

    def between(self, start: float, end: float) -> list[Piece]:
        """The pieces whose middle lies in [start, end)."""
        return [p for p in list(self.pieces) if start <= p.middle < end]

    def stop(self) -> None:
        """Stop after the piece being taken."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join()


def per_second(seconds: dict[str, float], duration: float) -> dict[str, float]:
    """CPU seconds per second of ``duration``, by category."""
    return {name: value / duration for name, value in seconds.items()} if duration > 0 else {}
