"""What the sidecar adds over exit codes: the same dummy-validator Jobs with and without
status-reporter, as HyperFleet's validation adapter reads them.

The cluster tests run every :data:`CASES` entry both ways and :func:`publish` writes
the table to ``bench-results/`` and splices it into README.md between :data:`BEGIN`
and :data:`END`.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from harness.consumer import View
from harness.controlplane import ROOT
from harness.records import checkout_commit, splice

README = ROOT / "README.md"
RECORD = ROOT / "bench-results" / "hyperfleet-exit-codes.md"
BEGIN = "<!-- hyperfleet-exit-codes: begin (written by make test-cluster) -->"
END = "<!-- hyperfleet-exit-codes: end -->"
# Over the adapter's 128Mi limit. The shell outlives dd by a second: on cgroup v1 an
# OOM-killed PID 1 can be reported as Error rather than OOMKilled.
OOM_SCRIPT = "dd if=/dev/zero of=/dev/null bs=256M count=1\nrc=$?\nsleep 1\nexit $rc\n"


@dataclass(frozen=True)
class Case:
    """One adapter behaviour: the ``SIMULATE_RESULT`` value, and what the harness changes."""

    name: str
    simulate: str
    what: str
    max_wait: int = 300
    active_deadline: int | None = None
    adapter_script: str | None = None


CASES = (
    Case("success", "success", "writes a success result, exits 0"),
    Case("failure", "failure", "writes a failure result, exits 1"),
    # The deadline shortened from 310 s to 40 s: the sidecar-less Job ends there.
    Case(
        "hang",
        "hang",
        "never ends (`MAX_WAIT_TIME_SECONDS` 20 s, `activeDeadlineSeconds` 40 s)",
        max_wait=20,
        active_deadline=40,
    ),
    Case("crash", "crash", "exits 1 without a result"),
    Case("invalid-json", "invalid-json", "writes invalid JSON, exits 0"),
    Case("missing-status", "missing-status", "writes a result without `status`, exits 0"),
    Case("something-else", "something-else", "unknown value: writes a success result, exits 0"),
    Case(
        "oom", "success", "is OOM-killed (256 MB under its 128Mi limit)", adapter_script=OOM_SCRIPT
    ),
    Case(
        "deadline",
        "hang",
        "never ends; the Job's `activeDeadlineSeconds` (30 s) ends first",
        active_deadline=30,
    ),
)


@dataclass(frozen=True)
class Row:
    """One case as the consumer read it: with the sidecar; without it, the Job's own
    terminal condition and the validation adapter's view of that; and the same Job as
    hyperfleet-adapter's exit-code example reads it."""

    case: Case
    with_sidecar: View
    job_condition: str
    without_sidecar: View
    exit_code_reading: View


def _view(view: View) -> str:
    status, reason, message = (str(part).replace("|", "\\|") for part in view)
    return f"`{status}` `{reason}`: {message}"


def table(rows: Sequence[Row]) -> str:
    """The README section: the markers and the table between them."""
    lines = [
        BEGIN,
        "| `SIMULATE_RESULT` | the adapter | with the sidecar | without it: the Job's own "
        "condition | without it: what the validation adapter reads | without it, read as "
        "hyperfleet-adapter's exit-code example reads a Job |",
        "|---|---|---|---|---|---|",
        *(
            f"| {row.case.name} | {row.case.what} | {_view(row.with_sidecar)} | "
            f"{row.job_condition} | {_view(row.without_sidecar)} | "
            f"{_view(row.exit_code_reading)} |"
            for row in rows
        ),
        END,
    ]
    return "\n".join(lines)


def publish(rows: Sequence[Row]) -> str:
    """Write the table to :data:`RECORD` (with when and on which commit) and splice it
    into README.md; returns the section."""
    section = table(rows)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    RECORD.parent.mkdir(exist_ok=True)
    RECORD.write_text(f"measured {stamp} on commit {checkout_commit()}\n\n{section}\n")
    README.write_text(splice(README.read_text(), BEGIN, END, section))
    return section


def cases_in(document: str) -> list[str]:
    """The case names of the table between the markers of ``document`` (empty without)."""
    if BEGIN not in document or END not in document:
        return []
    body = document.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("| ")][1:]
    return [row.split("|")[1].strip() for row in rows]
