"""The reference Go implementation's measured figures, quoted as external figures.

These numbers were measured outside ``make bench``, by the methods given with them,
and are used for the ratio columns and the "at most one request more than the
reference" check. ``make bench REFERENCE_BINARY=...`` adds a measurement of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A measured figure: one value, or the range over several measurements."""

    low: float
    high: float

    @classmethod
    def of(cls, low: float, high: float | None = None) -> Span:
        """A single value, or the range ``low``–``high``."""
        return cls(low, low if high is None else high)

    def format(self, digits: int, unit: str = "") -> str:
        """``low`` or ``low–high``, with ``digits`` decimals."""
        text = f"{self.low:.{digits}f}"
        if self.high != self.low:
            text += f"–{self.high:.{digits}f}"
        return f"{text} {unit}".strip()


@dataclass(frozen=True)
class Source:
    """One measurement of the reference binary."""

    label: str
    short: str
    method: str
    rss_mib: Span | None
    # Adapter run time in s (0: the result is there at start-up) → CPU seconds per Job.
    cpu_seconds: dict[int, Span] = field(default_factory=dict)
    first_request_ms: Span | None = None
    # Adapter run time in s → API requests per Job under the reference Role.
    requests: dict[int, Span] = field(default_factory=dict)
    requests_note: dict[int, str] = field(default_factory=dict)


EARLIER = Source(
    label="earlier side-by-side measurement",
    short="earlier",
    method=(
        "the reference Go binary built from its public source and run side by side with "
        "status-reporter against one kube-apiserver, with the same RBAC and the same "
        "in-cluster credentials, interleaved, 20 runs each, on 2 cores"
    ),
    rss_mib=Span.of(32.7),
    cpu_seconds={0: Span.of(0.018), 10: Span.of(0.019), 60: Span.of(0.028)},
    first_request_ms=Span.of(32),
    requests={10: Span.of(3), 60: Span.of(8)},
)

THIS_MACHINE = Source(
    label="this machine, 2026-11-27",
    short="2026-11-27",
    method=(
        "the reference built from openshift-hyperfleet/status-reporter commit 40317e8 with "
        "Go 1.26.8 and `CGO_ENABLED=0`; in-cluster credentials (it reads no kubeconfig) "
        "through a private mount namespace with a tmpfs over `/run` holding the token and "
        "`ca.crt`; the harness's kube-apiserver; 20 interleaved runs per scenario; peak RSS "
        "and CPU from `wait4()` in a small launcher; start → first request is the first "
        "audit event's `requestReceivedTimestamp` minus the launcher's clock before `fork`; "
        "load average 2.5–7 on 2 cores"
    ),
    rss_mib=Span.of(33.7, 34.7),
    cpu_seconds={0: Span.of(0.017, 0.020), 10: Span.of(0.019), 60: Span.of(0.033)},
    first_request_ms=Span.of(18, 23),
    requests={0: Span.of(3), 10: Span.of(4), 60: Span.of(9)},
    requests_note={60: "9; 8 in 4 of 20 runs"},
)

SOURCES = (EARLIER, THIS_MACHINE)

REQUEST_PATTERN = (
    "no permission review, one read of the Job, a PUT of the Job's status (`update` on "
    "`jobs/status`), plus a read of the Pod every 10 s"
)


def reference_requests(runtime: int, sources: Sequence[Source] = SOURCES) -> Span | None:
    """The lowest and highest request count any of ``sources`` measured for ``runtime``."""
    spans = [s.requests[runtime] for s in sources if runtime in s.requests]
    if not spans:
        return None
    return Span(min(s.low for s in spans), max(s.high for s in spans))
