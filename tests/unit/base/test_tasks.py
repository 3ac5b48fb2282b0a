"""The run's concurrency shapes: a scope whose children end with it, supervision inside
each child, and the interruption that cuts a call short. Cancellation differs between
Python 3.11 and 3.12+, so these run on every interpreter the toolchain check covers."""

from __future__ import annotations

import asyncio

import pytest

from status_reporter.base import logs
from status_reporter.base.tasks import CUT, Interrupt, scope, supervised
from tests.unit.fakes import FakeClock, settle


async def _forever() -> None:
    await asyncio.Event().wait()


async def _forever_then(ended: asyncio.Event) -> None:
    """Wait forever; ``ended`` is set however the wait ends."""
    try:
        await _forever()
    finally:
        ended.set()


# --- scope ---------------------------------------------------------------------------


async def test_the_children_end_with_the_body() -> None:
    before = asyncio.all_tasks()
    async with scope() as children:
        child = children.spawn(_forever(), "forever")
        await settle()
        assert not child.done()
    assert child.cancelled()
    assert asyncio.all_tasks() - before == set()


async def test_an_error_of_the_body_is_raised_as_itself_and_ends_the_children() -> None:
    ended = asyncio.Event()

    async def body() -> None:
        async with scope() as children:
            children.spawn(_forever_then(ended), "child")
            await settle()
            raise LookupError("body")

    with pytest.raises(LookupError, match="body"):
        await body()
    assert ended.is_set()


async def test_a_cancelled_scope_cancels_its_children_and_is_cancelled() -> None:
    child_ended = asyncio.Event()

    async def body() -> None:
        async with scope() as children:
            children.spawn(_forever_then(child_ended), "child")
            await _forever()

    task = asyncio.create_task(body())
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert child_ended.is_set()


async def test_a_child_that_ended_early_is_not_cancelled_again() -> None:
    async def quick() -> None:
        await asyncio.sleep(0)

    async with scope() as children:
        child = children.spawn(quick(), "quick")
        await settle()
    assert child.done()
    assert not child.cancelled()


# --- supervised ------------------------------------------------------------------------


async def test_a_failing_child_is_logged_and_replaced_by_its_fallback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure()
    fell_back = asyncio.Event()

    async def fails() -> None:
        raise RuntimeError("decoder bug")

    async def fallback() -> None:
        fell_back.set()

    await supervised("Pod watch", fails, logs.get_logger(), fallback)
    assert fell_back.is_set()
    out = capsys.readouterr().out
    assert "monitor failed" in out
    assert "decoder bug" in out


async def test_a_failing_child_leaves_its_siblings_running() -> None:
    async def fails() -> None:
        raise RuntimeError("bug")

    async with scope() as children:
        sibling = children.spawn(_forever(), "sibling")
        children.spawn(supervised("failing", fails, logs.get_logger()), "failing")
        await settle()
        assert not sibling.done()


async def test_a_failing_fallback_is_logged_and_never_raises(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure()

    async def fails() -> None:
        raise RuntimeError("first")

    async def fails_too() -> None:
        raise ValueError("second")

    await supervised("Pod watch", fails, logs.get_logger(), fails_too)
    out = capsys.readouterr().out
    assert out.count("monitor failed") == 2
    assert "second" in out


async def test_supervision_lets_cancellation_through() -> None:
    task = asyncio.create_task(supervised("forever", _forever, logs.get_logger(), _forever))
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- Interrupt -------------------------------------------------------------------------


async def test_a_call_that_ends_first_gives_its_result() -> None:
    stop = Interrupt(FakeClock())

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert await stop.cut(answer()) == 42
    assert not stop.is_set()


async def test_the_interruption_cuts_a_running_call_short() -> None:
    clock = FakeClock()
    stop = Interrupt(clock)
    cancelled = asyncio.Event()
    call = asyncio.create_task(stop.cut(_forever_then(cancelled)))
    await settle()
    await clock.advance(3)
    assert stop.set()
    assert await call is CUT
    assert cancelled.is_set()
    assert stop.since == 1003.0


async def test_after_the_interruption_a_call_never_starts() -> None:
    stop = Interrupt(FakeClock())
    stop.set()
    started = False

    async def work() -> None:
        nonlocal started
        started = True

    assert await stop.cut(work()) is CUT
    assert not started


async def test_the_first_interruption_counts() -> None:
    clock = FakeClock()
    stop = Interrupt(clock)
    assert stop.set()
    await clock.advance(2)
    assert not stop.set()
    assert stop.since == 1000.0


async def test_a_timeout_of_the_call_itself_is_not_taken_for_the_interruption() -> None:
    stop = Interrupt(FakeClock())

    async def times_out() -> None:
        await asyncio.sleep(0)
        raise TimeoutError("its own")

    with pytest.raises(TimeoutError, match="its own"):
        await stop.cut(times_out())


async def test_an_outside_cancellation_is_not_taken_for_the_interruption() -> None:
    stop = Interrupt(FakeClock())
    task = asyncio.create_task(stop.cut(_forever()))
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_waiters_wake_when_interrupted() -> None:
    stop = Interrupt(FakeClock())
    waiter = asyncio.create_task(stop.wait())
    await settle()
    assert not waiter.done()
    stop.set()
    await settle()
    assert waiter.done()
