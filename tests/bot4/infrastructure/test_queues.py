"""Bounded queues: policies when full, nothing lost, priorities, emergency drain, metrics."""

from __future__ import annotations

import logging
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from bot4.infrastructure.clock import ManualClock
from bot4.infrastructure.deadletter import read_dead_letters
from bot4.infrastructure.errors import ConfigError, QueueEmptyError, QueueRejectedError
from bot4.infrastructure.metrics import Metrics
from bot4.infrastructure.queues import BoundedQueue, EmergencyDrain, FullPolicy, QueueEvent


def test_fifo_with_depth_capacity_and_percent() -> None:
    queue: BoundedQueue[int] = BoundedQueue("orders", 4)
    assert (queue.name, queue.capacity, queue.policy) == ("orders", 4, "block")
    for i in range(3):
        assert queue.put(i) == ()
    assert (queue.depth, len(queue), queue.depth_percent) == (3, 3, 75.0)
    assert repr(queue) == "BoundedQueue('orders', depth=3, capacity=4, policy='block')"
    assert [queue.get() for _ in range(3)] == [0, 1, 2]
    assert queue.depth_percent == 0.0


def test_highest_priority_first_fifo_within() -> None:
    queue: BoundedQueue[str] = BoundedQueue("q", 10)
    for item, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -1)]:
        queue.put(item, priority=priority)
    assert [queue.get() for _ in range(5)] == ["b", "d", "a", "c", "e"]


def test_many_priorities_still_order_correctly() -> None:
    queue: BoundedQueue[int] = BoundedQueue("q", 100)
    for round_ in range(2):
        for priority in range(12):
            queue.put(priority * 10 + round_, priority=priority)
        assert [queue.get() for _ in range(12)] == [p * 10 + round_ for p in reversed(range(12))]


def test_reject_policy_hands_the_item_back() -> None:
    events: list[QueueEvent] = []
    queue: BoundedQueue[str] = BoundedQueue("orders", 1, policy="reject")
    queue.add_listener(events.append)
    queue.put("first")
    with pytest.raises(QueueRejectedError) as info:
        queue.put("order-secret-42")
    error = info.value
    assert (error.queue, error.reason, error.item) == ("orders", "full", "order-secret-42")
    assert str(error) == "queue 'orders' rejected an item (full): full (1 items); retry later"
    assert "secret" not in repr(error)
    assert queue.rejected_total == 1
    assert [(e.kind, e.count, e.reason) for e in events] == [("rejected", 1, "full")]
    assert queue.get() == "first"


def test_block_policy_times_out_with_a_reason() -> None:
    queue: BoundedQueue[int] = BoundedQueue("q", 1, timeout=0.01)
    queue.put(1)
    with pytest.raises(QueueRejectedError, match=r"\(timeout\): still full after waiting 0.01s"):
        queue.put(2)
    with pytest.raises(QueueRejectedError) as info:
        queue.put(3, timeout=0)
    assert info.value.item == 3
    assert queue.rejected_total == 2


def test_block_policy_waits_for_room() -> None:
    queue: BoundedQueue[int] = BoundedQueue("q", 1)
    queue.put(1)
    taken: list[int] = []

    def consumer() -> None:
        time.sleep(0.02)
        taken.append(queue.get())

    thread = threading.Thread(target=consumer)
    thread.start()
    assert queue.put(2, timeout=None) == ()
    thread.join()
    assert taken == [1]
    assert queue.get() == 2


def test_shed_policy_returns_the_lowest_priority_item() -> None:
    events: list[QueueEvent] = []
    queue: BoundedQueue[str] = BoundedQueue("q", 3, policy="shed")
    queue.add_listener(events.append)
    queue.put("low-old", priority=0)
    queue.put("low-new", priority=0)
    queue.put("high", priority=2)
    assert queue.put("mid", priority=1) == ("low-old",)
    assert queue.shed_total == 1
    with pytest.raises(QueueRejectedError, match=r"\(priority\): full and nothing queued") as info:
        queue.put("also-low", priority=0)
    assert info.value.item == "also-low"
    assert [queue.get() for _ in range(3)] == ["high", "mid", "low-new"]
    assert [e.kind for e in events] == ["shed", "rejected"]
    assert events[0].reason == "priority 0 item shed for priority 1"


def test_get_timeout_and_blocking_get() -> None:
    queue: BoundedQueue[int] = BoundedQueue("q", 2)
    with pytest.raises(QueueEmptyError, match=r"queue 'q' stayed empty for 0\.01s"):
        queue.get(timeout=0.01)
    threading.Timer(0.02, queue.put, args=(7,)).start()
    assert queue.get() == 7


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "", "capacity": 1}, "non-empty name"),
        ({"name": "q", "capacity": 0}, "capacity must be an integer >= 1"),
        ({"name": "q", "capacity": True}, "capacity"),
        (
            {"name": "q", "capacity": 1, "policy": "drop"},
            "policy must be one of block, reject, shed",
        ),
        ({"name": "q", "capacity": 1, "timeout": -1}, "timeout must be None or seconds >= 0"),
        ({"name": "q", "capacity": 1, "timeout": float("nan")}, "timeout"),
    ],
)
def test_invalid_queue_settings(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        BoundedQueue(**kwargs)


def test_invalid_per_call_timeouts() -> None:
    queue: BoundedQueue[int] = BoundedQueue("q", 1)
    queue.put(1)
    with pytest.raises(ConfigError, match="timeout must be None or seconds"):
        queue.put(2, timeout=-5)
    queue.get()
    with pytest.raises(ConfigError, match="timeout must be None or seconds"):
        queue.get(timeout=-1)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"path": "dead.jsonl"}, "must be a pathlib.Path"),
        ({"threshold_percent": 100}, "threshold_percent must be in"),
        ({"after": -1}, "'after' must be seconds >= 0"),
        ({"drain_to_percent": 95}, "drain_to_percent must be in"),
    ],
)
def test_invalid_emergency_settings(kwargs: dict[str, Any], fragment: str) -> None:
    settings: dict[str, Any] = {"path": Path("dead.jsonl"), **kwargs}
    with pytest.raises(ConfigError, match=fragment):
        EmergencyDrain(**settings)


@given(
    st.sampled_from(["block", "reject", "shed"]),
    st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=3)), max_size=60),
)
def test_every_item_is_accounted_for(policy: FullPolicy, ops: list[tuple[bool, int]]) -> None:
    """Each item put is got, returned (shed), handed back (rejected) or still queued."""
    queue: BoundedQueue[int] = BoundedQueue("q", 5, policy=policy, timeout=0)
    put: list[int] = []
    got: list[int] = []
    returned: list[int] = []
    refused: list[int] = []
    for index, (is_put, priority) in enumerate(ops):
        if is_put:
            put.append(index)
            try:
                returned.extend(queue.put(index, priority=priority))
            except QueueRejectedError as exc:
                refused.append(exc.item)
        elif queue.depth:
            got.append(queue.get())
    remaining = [queue.get() for _ in range(queue.depth)]
    assert sorted(got + returned + refused + remaining) == put
    assert queue.rejected_total == len(refused)
    assert queue.shed_total == len(returned)


# -- emergency drain -------------------------------------------------------------------------


def full_queue(tmp_path: Path, clock: ManualClock, **kwargs: Any) -> BoundedQueue[Any]:
    drain = EmergencyDrain(tmp_path / "dead.jsonl", after=60.0, **kwargs)
    queue: BoundedQueue[Any] = BoundedQueue(
        "orders", 20, policy="reject", emergency=drain, clock=clock
    )
    for i in range(20):
        queue.put({"id": i}, priority=i % 2)
    return queue


def test_emergency_drain_writes_lowest_priority_items_to_the_dead_letter_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    queue = full_queue(tmp_path, clock)
    metrics = Metrics()
    metrics.bind_queue(queue)
    events: list[QueueEvent] = []
    queue.add_listener(events.append)
    clock.advance(60)
    queue.check_emergency()  # exactly 60 s: not yet "more than"
    assert queue.depth == 20
    clock.advance(0.5)
    with caplog.at_level(logging.WARNING):
        queue.check_emergency()
    assert queue.depth == 10
    path = tmp_path / "dead.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    letters = read_dead_letters(path)
    assert [letter.item["id"] for letter in letters] == list(range(0, 20, 2))
    assert {(letter.queue, letter.priority, letter.drained_at) for letter in letters} == {
        ("orders", 0, 60.5)
    }
    assert [queue.get()["id"] for _ in range(10)] == list(range(1, 20, 2))
    assert (queue.dead_lettered_total, queue.emergency_drains) == (10, 1)
    assert [(e.kind, e.count) for e in events] == [("drained", 10)]
    assert "above 95% for more than 60s: drained 10 items" in caplog.text
    exported = {
        (s.name, s.labels.get("queue")): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }
    assert exported[("queue_dead_lettered_total", "orders")] == 10
    assert exported[("queue_emergency_drains_total", "orders")] == 1
    assert exported[("queue_items", "orders")] == 0
    assert exported[("queue_capacity", "orders")] == 20


def test_dropping_below_the_threshold_resets_the_timer(tmp_path: Path) -> None:
    clock = ManualClock()
    queue = full_queue(tmp_path, clock)
    clock.advance(30)
    queue.get()  # 19/20 = 95%: not above the threshold
    queue.put({"id": 99})  # back to 100%: the timer restarts now
    clock.advance(31)
    queue.check_emergency()
    assert queue.depth == 20
    clock.advance(30)
    queue.check_emergency()
    assert queue.depth == 10


def test_producers_trigger_the_drain_too(tmp_path: Path) -> None:
    clock = ManualClock()
    drain = EmergencyDrain(
        tmp_path / "dead.jsonl", threshold_percent=50.0, after=1.0, drain_to_percent=30.0
    )
    queue: BoundedQueue[int] = BoundedQueue("q", 10, emergency=drain, clock=clock, timeout=0)
    for i in range(6):
        queue.put(i)
    clock.advance(2)
    queue.put(6)  # 70% for more than 1 s: drain down to 30%
    assert queue.depth == 3
    assert [letter.item for letter in read_dead_letters(tmp_path / "dead.jsonl")] == [0, 1, 2, 3]


def test_custom_serializer(tmp_path: Path) -> None:
    clock = ManualClock()
    queue = full_queue(tmp_path, clock, serialize=lambda item: f"order#{item['id']}")
    clock.advance(61)
    queue.check_emergency()
    assert read_dead_letters(tmp_path / "dead.jsonl")[0].item == "order#0"


def test_failed_drain_keeps_every_item_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    queue = full_queue(tmp_path / "missing-dir", clock)
    metrics = Metrics()
    metrics.bind_queue(queue)
    events: list[QueueEvent] = []
    queue.add_listener(events.append)
    clock.advance(61)
    with caplog.at_level(logging.ERROR):
        queue.check_emergency()
    assert queue.depth == 20
    assert "emergency drain to" in caplog.text
    assert "FileNotFoundError); 10 items kept in the queue" in caplog.text
    assert [(e.kind, e.count, e.reason) for e in events] == [
        ("drained", 0, "failed: FileNotFoundError")
    ]
    assert queue.dead_lettered_total == 0
    assert b'queue_emergency_drains_total{queue="orders"} 0.0' in metrics.exposition()
    odd = [queue.get()["id"] for _ in range(10)]
    even = [queue.get()["id"] for _ in range(10)]
    assert (odd, even) == (list(range(1, 20, 2)), list(range(0, 20, 2)))


def test_unserializable_items_stay_queued(tmp_path: Path) -> None:
    clock = ManualClock()
    drain = EmergencyDrain(tmp_path / "dead.jsonl", after=0.0)
    queue: BoundedQueue[object] = BoundedQueue("q", 2, emergency=drain, clock=clock, timeout=0)
    queue.put(object())
    queue.put(object())
    clock.advance(1)
    queue.check_emergency()
    assert queue.depth == 2
    assert not (tmp_path / "dead.jsonl").exists()


def test_a_drain_wakes_blocked_producers(tmp_path: Path) -> None:
    clock = ManualClock()
    drain = EmergencyDrain(tmp_path / "dead.jsonl", after=10.0)
    queue: BoundedQueue[int] = BoundedQueue("q", 4, emergency=drain, clock=clock)
    for i in range(4):
        queue.put(i)
    result: list[tuple[int, ...]] = []
    producer = threading.Thread(target=lambda: result.append(queue.put(4, timeout=10)))
    producer.start()
    while producer.is_alive() and not queue._not_full._waiters:  # type: ignore[attr-defined]
        time.sleep(0.001)
    clock.advance(11)
    queue.check_emergency()
    producer.join(timeout=5)
    assert result == [()]
    assert [queue.get() for _ in range(queue.depth)] == [2, 3, 4]


def test_check_emergency_without_configuration_is_a_no_op() -> None:
    queue: BoundedQueue[int] = BoundedQueue("q", 1)
    queue.put(1)
    queue.check_emergency()
    assert queue.depth == 1


def test_a_failing_listener_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    queue: BoundedQueue[int] = BoundedQueue("q", 1, policy="reject")

    def broken(event: QueueEvent) -> None:
        raise RuntimeError("listener bug")

    queue.add_listener(broken)
    queue.put(1)
    with caplog.at_level(logging.ERROR), pytest.raises(QueueRejectedError):
        queue.put(2)
    assert "queue 'q': a listener failed" in caplog.text


def test_queue_metrics_gauges_and_rejections() -> None:
    metrics = Metrics()
    queue: BoundedQueue[int] = BoundedQueue("fills", 4, policy="shed")
    assert metrics.bind_queue(queue) is metrics.bind_queue(queue)
    for i in range(4):
        queue.put(i)
    queue.put(9, priority=1)
    with pytest.raises(QueueRejectedError):
        queue.put(10)
    with pytest.raises(QueueRejectedError):
        queue.put(11)
    exported = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }
    label = (("queue", "fills"),)
    assert exported[("queue_items", label)] == 4
    assert exported[("queue_capacity", label)] == 4
    assert exported[("queue_depth_percent", label)] == 100.0
    assert exported[("queue_shed_total", label)] == 1
    assert exported[("queue_rejected_total", (("queue", "fills"), ("reason", "priority")))] == 2


def test_a_failed_drain_restores_items_across_many_priorities(tmp_path: Path) -> None:
    clock = ManualClock()
    drain = EmergencyDrain(tmp_path / "missing" / "dead.jsonl", after=0.0, drain_to_percent=0.0)
    queue: BoundedQueue[int] = BoundedQueue("q", 12, emergency=drain, clock=clock, timeout=0)
    for priority in range(12):
        queue.put(priority, priority=priority)
    clock.advance(1)
    queue.check_emergency()  # every lane emptied, then restored
    assert [queue.get() for _ in range(12)] == list(reversed(range(12)))


def test_many_producers_and_consumers_lose_nothing() -> None:
    queue: BoundedQueue[int] = BoundedQueue("q", 8, timeout=None)
    producers, per_producer = 4, 2_000
    got: list[list[int]] = [[] for _ in range(producers)]

    def produce(base: int) -> None:
        for i in range(per_producer):
            queue.put(base * per_producer + i, priority=i % 3)

    def consume(slot: int) -> None:
        for _ in range(per_producer):
            got[slot].append(queue.get(timeout=10))

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
    threads += [threading.Thread(target=consume, args=(i,)) for i in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(item for chunk in got for item in chunk) == list(range(producers * per_producer))
    assert queue.depth == 0
