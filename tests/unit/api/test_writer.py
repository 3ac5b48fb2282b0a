"""Writing the condition over the in-memory cluster: planning from the held copy of the Job,
reading it only when there is none, and what is logged."""

from __future__ import annotations

import pytest

from status_reporter.api.protocol import ApiError, Operations
from status_reporter.api.retry import KubeError
from status_reporter.api.writer import ConditionWriter
from status_reporter.base import logs
from status_reporter.core.conditions import Condition, rfc3339
from status_reporter.core.models import JobCondition
from tests.unit.fakes import FakeClock
from tests.unit.memcluster import MemoryCluster

OPS = Operations.of("job-a", "pod-a", "ns-a")
DONE = Condition("True", "Done", "all good")


def writer(cluster: MemoryCluster) -> ConditionWriter:
    return ConditionWriter(cluster, OPS, "Available", clock=cluster.clock, log=logs.get_logger())


def message(line: str) -> str:
    """A text log line without its timestamp, level, component, version and hostname."""
    return line.split("] ", 3)[3]


async def test_without_a_copy_the_job_is_read_first(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure()
    cluster = MemoryCluster(FakeClock(autojump=True))
    await writer(cluster).write(DONE, deadline=cluster.clock.now() + 10)
    assert (cluster.calls["get_job"], cluster.calls["patch"]) == (1, 1)
    condition = cluster.condition()
    assert condition is not None
    assert condition.last_transition_time == rfc3339(cluster.clock.wall())
    assert [message(line) for line in capsys.readouterr().out.splitlines()] == [
        "condition written type=Available status=True reason=Done"
    ]


async def test_an_identical_condition_read_first_is_not_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure()
    same = JobCondition(type="Available", status="True", reason="Done", message="all good")
    cluster = MemoryCluster(FakeClock(autojump=True), conditions=[same])
    await writer(cluster).write(DONE, deadline=cluster.clock.now() + 10)
    # The copy just read is fresh: not read a second time.
    assert (cluster.calls["get_job"], cluster.calls["patch"]) == (1, 0)
    assert [message(line) for line in capsys.readouterr().out.splitlines()] == [
        "condition already recorded; nothing to write type=Available"
    ]


async def test_a_normal_write_may_use_a_pooled_connection() -> None:
    cluster = MemoryCluster(FakeClock(autojump=True))
    await writer(cluster).write(DONE, deadline=cluster.clock.now() + 4)
    assert cluster.fresh_patches == [False]


async def test_a_held_copy_is_planned_from_without_a_read() -> None:
    cluster = MemoryCluster(FakeClock(autojump=True))
    condition_writer = writer(cluster)
    condition_writer.plan_from(cluster.job)
    await condition_writer.write(DONE, deadline=cluster.clock.now() + 10)
    assert (cluster.calls["get_job"], cluster.calls["patch"]) == (0, 1)


async def test_a_held_copy_that_shows_the_condition_is_read_again_before_skipping() -> None:
    cluster = MemoryCluster(FakeClock(autojump=True))
    condition_writer = writer(cluster)
    condition_writer.plan_from(cluster.job)
    await condition_writer.write(DONE, deadline=cluster.clock.now() + 10)
    # The patch's answer shows the condition: the Job is read once more, unchanged.
    await condition_writer.write(DONE, deadline=cluster.clock.now() + 10)
    assert (cluster.calls["get_job"], cluster.calls["patch"]) == (1, 1)
    # Another writer replaces it: the stale copy still shows it, the read does not.
    other = JobCondition(type="Available", status="True", reason="Other", message="m")
    cluster.set_conditions([other])
    await condition_writer.write(DONE, deadline=cluster.clock.now() + 10)
    assert (cluster.calls["get_job"], cluster.calls["patch"]) == (2, 2)
    assert cluster.condition() is not None
    assert cluster.condition().reason == "Done"  # type: ignore[union-attr]


async def test_a_trusted_permission_retries_a_forbidden_read_too() -> None:
    # An API server that has just restarted refuses requests until its caches are filled.
    cluster = MemoryCluster(FakeClock(autojump=True))
    cluster.fail("get_job", ApiError(403, "HTTP 403: forbidden"))
    condition_writer = writer(cluster)
    condition_writer.trust_permission(10)
    await condition_writer.write(DONE, deadline=cluster.clock.now() + 10)
    assert (cluster.calls["get_job"], cluster.calls["patch"]) == (2, 1)


async def test_a_last_attempt_without_a_copy_only_patches() -> None:
    cluster = MemoryCluster(FakeClock(autojump=True))
    await writer(cluster).write(DONE, deadline=cluster.clock.now() + 4, read_first=False)
    assert (cluster.calls["get_job"], cluster.calls["patch"]) == (0, 1)
    assert cluster.fresh_patches == [True]  # a pooled connection may be dead
    assert cluster.condition() is not None


async def test_a_black_hole_ends_the_write_at_its_deadline() -> None:
    cluster = MemoryCluster(FakeClock(autojump=True))
    cluster.hang = True
    start = cluster.clock.now()
    with pytest.raises(KubeError) as info:
        await writer(cluster).write(DONE, deadline=start + 25)
    assert cluster.clock.now() - start <= 25
    assert "API server unreachable" in str(info.value)


async def test_the_read_first_is_retried_and_bounded() -> None:
    cluster = MemoryCluster(FakeClock(autojump=True))
    cluster.fail("get_job", ApiError(503, "busy"), ApiError(404, "HTTP 404: gone"))
    with pytest.raises(KubeError) as info:
        await writer(cluster).write(DONE, deadline=cluster.clock.now() + 10)
    assert info.value.status == 404
    assert cluster.calls["get_job"] == 2
    assert cluster.calls["patch"] == 0
