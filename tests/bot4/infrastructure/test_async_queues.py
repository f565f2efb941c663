"""The asyncio bounded queue: same policies, waiting without threads, no lost wake-ups."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot4.infrastructure.clock import ManualClock
from bot4.infrastructure.deadletter import read_dead_letters
from bot4.infrastructure.errors import QueueEmptyError, QueueRejectedError
from bot4.infrastructure.queues import AsyncBoundedQueue, EmergencyDrain


def test_fifo_priorities_and_depth() -> None:
    async def scenario() -> list[str]:
        queue: AsyncBoundedQueue[str] = AsyncBoundedQueue("async", 4)
        await queue.put("a")
        await queue.put("b", priority=1)
        await queue.put("c")
        assert (queue.depth, queue.depth_percent) == (3, 75.0)
        return [await queue.get() for _ in range(3)]

    assert asyncio.run(scenario()) == ["b", "a", "c"]


def test_get_waits_for_a_put_and_times_out_when_empty() -> None:
    async def scenario() -> int:
        queue: AsyncBoundedQueue[int] = AsyncBoundedQueue("async", 1)
        with pytest.raises(QueueEmptyError, match=r"stayed empty for 0\.01s"):
            await queue.get(timeout=0.01)
        getter = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        await queue.put(5)
        return await getter

    assert asyncio.run(scenario()) == 5


def test_block_put_waits_for_room_or_times_out() -> None:
    async def scenario() -> None:
        queue: AsyncBoundedQueue[int] = AsyncBoundedQueue("async", 1, timeout=0.01)
        await queue.put(1)
        with pytest.raises(QueueRejectedError, match=r"\(timeout\)") as info:
            await queue.put(2)
        assert info.value.item == 2
        putter = asyncio.create_task(queue.put(3, timeout=None))
        await asyncio.sleep(0)
        assert await queue.get() == 1
        assert await putter == ()
        assert await queue.get() == 3
        assert queue.rejected_total == 1

    asyncio.run(scenario())


def test_reject_and_shed_policies() -> None:
    async def scenario() -> None:
        rejecting: AsyncBoundedQueue[int] = AsyncBoundedQueue("r", 1, policy="reject")
        await rejecting.put(1)
        with pytest.raises(QueueRejectedError, match=r"\(full\)"):
            await rejecting.put(2)
        shedding: AsyncBoundedQueue[str] = AsyncBoundedQueue("s", 2, policy="shed")
        await shedding.put("low", priority=0)
        await shedding.put("high", priority=5)
        assert await shedding.put("mid", priority=3) == ("low",)
        with pytest.raises(QueueRejectedError, match=r"\(priority\)"):
            await shedding.put("lower", priority=1)

    asyncio.run(scenario())


def test_a_cancelled_getter_passes_its_wake_up_on() -> None:
    async def scenario() -> int:
        queue: AsyncBoundedQueue[int] = AsyncBoundedQueue("async", 2)
        first = asyncio.create_task(queue.get())
        second = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        await queue.put(7)  # wakes the first getter …
        first.cancel()  # … which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        return await asyncio.wait_for(second, timeout=1)

    assert asyncio.run(scenario()) == 7


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    async def scenario() -> None:
        queue: AsyncBoundedQueue[int] = AsyncBoundedQueue("async", 1)
        getter = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        getter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await getter
        assert not queue._getters
        await queue.put(1)
        assert await queue.get() == 1

    asyncio.run(scenario())


def test_emergency_drain_frees_room_for_blocked_producers(tmp_path: Path) -> None:
    clock = ManualClock()
    drain = EmergencyDrain(tmp_path / "dead.jsonl", after=10.0)

    async def scenario() -> tuple[int, ...]:
        queue: AsyncBoundedQueue[int] = AsyncBoundedQueue(
            "async", 4, emergency=drain, clock=clock, timeout=None
        )
        for i in range(4):
            await queue.put(i)
        blocked = [asyncio.create_task(queue.put(10 + i)) for i in range(2)]
        await asyncio.sleep(0)
        queue.check_emergency()  # too early
        clock.advance(11)
        queue.check_emergency()
        assert queue.depth == 2
        for task in blocked:
            assert await task == ()
        AsyncBoundedQueue("other", 1).check_emergency()  # not configured: no-op
        return tuple([await queue.get() for _ in range(queue.depth)])

    assert asyncio.run(scenario()) == (2, 3, 10, 11)
    assert [letter.item for letter in read_dead_letters(tmp_path / "dead.jsonl")] == [0, 1]


def test_drain_on_get_path(tmp_path: Path) -> None:
    clock = ManualClock()
    drain = EmergencyDrain(
        tmp_path / "dead.jsonl", threshold_percent=50.0, after=1.0, drain_to_percent=0.0
    )

    async def scenario() -> int:
        queue: AsyncBoundedQueue[int] = AsyncBoundedQueue("async", 4, emergency=drain, clock=clock)
        for i in range(4):
            await queue.put(i)
        clock.advance(2)
        first = await queue.get()  # 3 left, still above 50% for > 1 s: drain everything
        assert queue.depth == 0
        return first

    assert asyncio.run(scenario()) == 0
    assert [letter.item for letter in read_dead_letters(tmp_path / "dead.jsonl")] == [1, 2, 3]


def test_a_put_right_after_a_cancel_keeps_the_item() -> None:
    async def scenario() -> int:
        queue: AsyncBoundedQueue[int] = AsyncBoundedQueue("async", 1)
        getter = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        getter.cancel()  # its future is cancelled but still queued as a waiter
        await queue.put(9)
        with pytest.raises(asyncio.CancelledError):
            await getter
        return await queue.get(timeout=1)

    assert asyncio.run(scenario()) == 9
