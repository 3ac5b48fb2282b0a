"""Hostile inputs in the results directory, through the real reporter and a real API
server (README "The adapter contract", "Logs"): a storm of other files, a directory on
the path swapped for a symlink, forged log fields, nesting as deep as Go allows."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness.checks import SUCCESS, eventually
from harness.cluster import AdapterJob, create_job
from harness.logfmt import logfmt_fields
from harness.reporter import ReporterRun
from harness.storm import Storm, cpu_seconds
from lightkube import Client

pytestmark = pytest.mark.integration

Reporter = Callable[..., ReporterRun]
POLL_INTERVAL = 2.0
# README "The adapter contract": the storm the reporter shrugs off.
STORM_RATE = 100_000
STORM_CPU_SHARE = 0.10


@pytest.fixture
def memory_job(admin: Client, namespace: str) -> Iterator[AdapterJob]:
    """A Job whose results directory is a tmpfs (an ``emptyDir`` with ``medium:
    Memory``), where a storm reaches its rate: an ext4 journal caps it far lower."""
    results = Path(tempfile.mkdtemp(prefix="results-", dir="/dev/shm"))
    try:
        yield create_job(admin, namespace, results)
    finally:
        shutil.rmtree(results, ignore_errors=True)


def monitoring(job: AdapterJob, reporter: Reporter, **env: str) -> ReporterRun:
    job.running()
    run = reporter(job, {"POLL_INTERVAL_SECONDS": str(int(POLL_INTERVAL)), **env})
    eventually(lambda: "monitoring adapter" in run.output)
    return run


def test_a_result_is_seen_within_the_poll_interval_during_a_storm_of_other_files(
    memory_job: AdapterJob, reporter: Reporter
) -> None:
    job = memory_job
    run = monitoring(job, reporter)
    pid = run.process.pid
    with Storm(job.results_dir, seconds=10.0) as storm:
        time.sleep(1.0)  # the storm at full speed
        before, started = cpu_seconds(pid), time.monotonic()
        time.sleep(6.0)
        share = (cpu_seconds(pid) - before) / (time.monotonic() - started)
        written = time.monotonic()
        job.write_result_atomically(SUCCESS)
        eventually(job.condition, timeout=10, every=0.01)
        seen = time.monotonic() - written
    assert storm.rate >= STORM_RATE, f"the storm reached {storm.rate:,.0f} operations/s only"
    assert share <= STORM_CPU_SHARE, f"{share:.1%} of a core at {storm.rate:,.0f} operations/s"
    assert seen < POLL_INTERVAL, f"condition written {seen:.2f} s after the result"
    assert run.wait() == 0, run.output
    condition = job.condition()
    assert condition is not None
    assert condition["reason"] == "ValidationPassed"


def test_a_results_subdirectory_made_a_symlink_is_invalid_result_format(
    job: AdapterJob, reporter: Reporter, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "reporter-fs"
    elsewhere.mkdir()
    (elsewhere / "adapter-result.json").write_text(json.dumps({**SUCCESS, "reason": "FromFS"}))
    job.results_dir.mkdir(exist_ok=True)
    sub = job.results_dir / "sub"
    run = monitoring(job, reporter, RESULTS_PATH=str(sub / "adapter-result.json"))
    assert f"resolved_path={sub / 'adapter-result.json'}" in run.output
    sub.symlink_to(elsewhere)  # the adapter's volume pointing into the reporter's file system
    assert run.wait() == 1, run.output
    condition = job.condition()
    assert condition is not None
    assert condition["reason"] == "InvalidResultFormat"
    assert condition["message"] == (
        f"Failed to parse adapter result: result directory {sub} is a symbolic link, "
        "which is not followed"
    )


def test_forged_fields_in_details_stay_inside_one_field_of_a_text_log(
    job: AdapterJob, reporter: Reporter
) -> None:
    details = {"note": " job=victim-job level=error reason=Forged "}
    run = monitoring(job, reporter, LOG_FORMAT="text")
    job.write_result({**SUCCESS, "details": details})
    assert run.wait() == 0, run.output
    (line,) = [line for line in run.output.splitlines() if " adapter result details " in line]
    fields = logfmt_fields(line)
    assert fields["job"] == job.name
    assert json.loads(fields["details"]) == details
    assert "level" not in fields
    assert fields.get("reason") != "Forged"


def deep(levels: int) -> str:
    return json.dumps(SUCCESS)[:-1] + ', "details": ' + "[" * levels + "]" * levels + "}"


@pytest.mark.parametrize(
    ("levels", "reason"), [(9_999, "ValidationPassed"), (10_000, "InvalidResultFormat")]
)
def test_nesting_as_deep_as_go_allows_in_the_running_reporter(
    job: AdapterJob, reporter: Reporter, levels: int, reason: str
) -> None:
    run = monitoring(job, reporter)
    job.write_result(deep(levels))
    run.wait()
    condition = job.condition()
    assert condition is not None, run.output
    assert condition["reason"] == reason, condition
    if reason == "InvalidResultFormat":
        assert (
            condition["message"]
            == "Failed to parse adapter result: invalid JSON: nested too deeply"
        )
