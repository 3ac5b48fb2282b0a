"""Watching the result file with real inotify: the directory appearing, vanishing and
coming back, a queue overflow, and inotify being unavailable."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from status_reporter.base import logs
from status_reporter.core.contract import ResultMissing
from status_reporter.core.record import Record
from status_reporter.monitors import resultfile
from status_reporter.monitors.resultfile import EVENT_GAP_SECONDS, ResultFile, watch_file
from tests.unit.fakes import FakeClock, settle


class Watch:
    """``watch_file`` running as a task, counting its notifications."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "adapter-result.json"
        self.clock = FakeClock()
        self.calls = 0
        self.task: asyncio.Task[None] | None = None

    def _notify(self) -> None:
        self.calls += 1

    async def start(self) -> Watch:
        self.task = asyncio.create_task(
            watch_file(str(self.path), self.clock, 2.0, self._notify, logs.get_logger())
        )
        await settle()
        return self

    async def events(self) -> None:
        """Let inotify's events reach the watcher."""
        for _ in range(20):
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_a_write_of_the_result_file_notifies(tmp_path: Path) -> None:
    watch = await Watch(tmp_path).start()
    assert watch.calls == 1  # once when the watch is in place
    watch.path.write_text("{}")
    (tmp_path / "other.json").write_text("{}")
    await watch.events()
    assert watch.calls >= 2
    before = watch.calls
    (tmp_path / "other.json").write_text("[]")
    await watch.events()
    assert watch.calls == before  # another file in the directory is none of its business
    await watch.stop()


async def test_a_directory_deleted_and_created_again_is_watched_again(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    watch = await Watch(results).start()
    results.rmdir()
    await watch.events()
    after_delete = watch.calls
    assert after_delete > 1  # the directory going away is a reason to look again
    results.mkdir()
    await watch.events()
    assert watch.calls == after_delete  # not noticed before the next check, 2 s later
    await watch.clock.advance(2.0)
    await watch.events()
    watching_again = watch.calls
    assert watching_again > after_delete  # watching again, and a look at once
    watch.path.write_text("{}")
    await watch.events()
    assert watch.calls > watching_again
    await watch.stop()


async def test_an_overflowing_event_queue_means_look_again(tmp_path: Path) -> None:
    watch = await Watch(tmp_path).start()
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    noise = [tmp_path / "noise-a", tmp_path / "noise-b"]
    # Events about other files only, more than the kernel queues, while the watcher
    # cannot read them: only the overflow itself can make it look again. Only a name
    # created is an event of the directory's, and two names in turn are never merged.
    for index in range(limit + 100):
        noise[index % 2].write_bytes(b"")
        noise[index % 2].unlink()
    before = watch.calls
    for _ in range(500):  # thousands of queued events to get through first
        await asyncio.sleep(0.01)
        if watch.calls > before:
            break
    assert watch.calls == before + 1
    await watch.stop()


@contextlib.contextmanager
def no_free_descriptors() -> Iterator[None]:
    """Lower the process's descriptor limit below its lowest free descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = next(fd for fd in range(3, soft) if not os.path.exists(f"/proc/self/fd/{fd}"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_inotify_unavailable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure()
    with no_free_descriptors():
        watcher = watch_file(
            str(tmp_path / "r.json"), FakeClock(), 2.0, lambda: None, logs.get_logger()
        )
        await asyncio.wait_for(watcher, timeout=5)
    assert "inotify unavailable, watching the result file by polling" in capsys.readouterr().out


async def test_a_burst_of_writes_costs_one_notification_per_gap(tmp_path: Path) -> None:
    """Events after a wake-up wait in the kernel's queue (which merges identical ones)
    for EVENT_GAP_SECONDS: the cost does not follow the write rate."""
    watch = Watch(tmp_path)
    watch.path.write_text("{}")  # the file exists: it is watched itself
    await watch.start()
    assert watch.calls == 1  # once when the watch is in place
    for index in range(200):
        watch.path.write_text(str(index))
    await watch.events()
    assert watch.calls == 2  # once for the burst
    for index in range(200):
        watch.path.write_text(str(index))
    await watch.events()
    assert watch.calls == 2  # the next burst waits for the gap
    await watch.clock.advance(EVENT_GAP_SECONDS)
    await watch.events()
    assert watch.calls == 3
    await watch.clock.advance(EVENT_GAP_SECONDS)
    await watch.events()
    assert watch.calls == 3
    await watch.stop()


async def notifications(watch: Watch, action: Callable[[], object]) -> int:
    """How many notifications ``action`` causes, a gap included."""
    before = watch.calls
    action()
    await watch.events()
    await watch.clock.advance(EVENT_GAP_SECONDS)
    await watch.events()
    return watch.calls - before


async def test_the_file_created_replaced_by_rename_and_removed_notifies(tmp_path: Path) -> None:
    watch = await Watch(tmp_path).start()
    staged = tmp_path / "staged"
    # Created (the directory's event), then written (the file's own).
    assert await notifications(watch, lambda: watch.path.write_text("{}")) == 1
    assert await notifications(watch, lambda: watch.path.write_text("[]")) == 1
    assert await notifications(watch, lambda: staged.write_text("{}")) == 0
    # Moved in: a new file, watched in its turn.
    assert await notifications(watch, lambda: staged.rename(watch.path)) == 1
    assert await notifications(watch, lambda: watch.path.write_text("{}")) == 1
    assert await notifications(watch, watch.path.unlink) == 1
    await watch.stop()


async def test_other_names_never_notify(tmp_path: Path) -> None:
    watch = await Watch(tmp_path).start()
    other = tmp_path / "progress.log"
    for _ in range(100):
        with other.open("a") as log:
            log.write("x\n")
        (tmp_path / "adapter-result.json.tmp").write_text("{}")
        (tmp_path / "adapter-result.json.tmp").unlink()
        (tmp_path / "x-adapter-result.json").write_text("{}")
        (tmp_path / "x-adapter-result.json").unlink()
    for _ in range(4):
        await watch.events()
        await watch.clock.advance(EVENT_GAP_SECONDS)
    assert watch.calls == 1
    await watch.stop()


def test_the_path_is_resolved_once_and_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure()
    (tmp_path / "run").mkdir()
    (tmp_path / "var-run").symlink_to(tmp_path / "run")
    configured = str(tmp_path / "var-run" / "sub" / "r.json")
    read: list[str] = []

    def reading(path: str) -> ResultMissing:
        read.append(path)
        return ResultMissing()

    result = ResultFile(
        configured,
        interval=2.0,
        clock=FakeClock(),
        log=logs.get_logger(),
        read=reading,
        wake=lambda: None,
    )
    resolved = str(tmp_path / "run" / "sub" / "r.json")
    assert f"result file path resolved results_path={configured} resolved_path={resolved}" in (
        capsys.readouterr().out
    )
    (tmp_path / "var-run").unlink()  # whatever happens to the link later
    result.refresh(Record(deadline=100.0, max_wait_seconds=100, settle_seconds=2.0))
    assert read == [resolved]


@dataclass
class Reads:
    """The watcher's wake-ups that read its directory's events, and the bytes of each
    read of an inotify descriptor."""

    wake_ups: int = 0
    chunks: list[int] = field(default_factory=list)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    """What the watcher reads, from now on."""
    seen = Reads()
    real_drain, real_read = resultfile._drain, os.read

    def draining(fd: int, *needles: bytes) -> bool:
        seen.wake_ups += bool(needles)
        return real_drain(fd, *needles)

    def reading(fd: int, size: int) -> bytes:
        chunk = real_read(fd, size)
        seen.chunks.append(len(chunk))
        return chunk

    monkeypatch.setattr(resultfile, "_drain", draining)
    monkeypatch.setattr("status_reporter.monitors.resultfile.os.read", reading)
    return seen


async def test_what_other_files_do_is_filtered_by_the_kernel(tmp_path: Path, reads: Reads) -> None:
    watch = Watch(tmp_path)
    watch.path.write_text("{}")  # watched itself, too
    progress = tmp_path / "progress.log"
    progress.write_text("")
    await watch.start()
    for index in range(1_000):
        with progress.open("a") as log:  # echo >> progress.log
            log.write(f"{index}\n")
    progress.unlink()
    await watch.events()
    assert reads == Reads()  # no event reached the reporter at all
    await watch.stop()


async def test_names_created_in_a_storm_are_read_in_bulk_once_per_gap(
    tmp_path: Path, reads: Reads
) -> None:
    watch = await Watch(tmp_path).start()
    for index in range(5_000):
        (tmp_path / f"storm-{index}").write_bytes(b"")
    await watch.events()
    assert reads.wake_ups == 1  # then it waits for the gap, the events in the kernel's queue
    for index in range(5_000):
        (tmp_path / f"storm-{index}").unlink()
        (tmp_path / f"storm-{index}").write_bytes(b"")
    await watch.events()
    assert reads.wake_ups == 1
    before = len(reads.chunks)
    await watch.clock.advance(EVENT_GAP_SECONDS)
    await watch.events()
    assert reads.wake_ups == 2
    # 5,000 events of 32 bytes: read in bulk, 64 KiB at a time, and never decoded.
    assert sum(reads.chunks[before:]) == 5_000 * 32
    assert len(reads.chunks[before:]) <= 5
    assert watch.calls == 1  # none of them was the file
    await watch.stop()


async def test_a_file_deleted_and_created_again_is_watched_again(tmp_path: Path) -> None:
    watch = await Watch(tmp_path).start()
    for _ in range(3):
        # A new file, often with the deleted one's inode number: watched anew all the same.
        assert await notifications(watch, lambda: watch.path.write_text("{}")) == 1
        assert await notifications(watch, lambda: watch.path.write_text("[]")) == 1
        assert await notifications(watch, watch.path.unlink) == 1
    await watch.stop()
