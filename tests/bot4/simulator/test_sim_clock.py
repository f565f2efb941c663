"""Discrete-event queue: time order, FIFO ties, no scheduling in the past."""

from __future__ import annotations

import pytest

from bot4.simulator.clock import EventQueue
from bot4.simulator.errors import SimulatorError


def test_events_run_in_time_then_scheduling_order() -> None:
    q = EventQueue()
    q.schedule(20, 1, "late")
    q.schedule(10, 2, "first")
    q.schedule(10, 0, "second")
    assert len(q) == 3 and q.peek_time() == 10
    assert [q.pop()[3] for _ in range(3)] == ["first", "second", "late"]
    assert q.now == 20 and q.peek_time() is None


def test_last_due_and_past_events() -> None:
    q = EventQueue(start_ns=5)
    assert q.last_due() is None
    q.schedule(7, 1)
    q.schedule(9, 2)
    assert q.last_due() == 9
    assert q.last_due(exclude=(2,)) == 7
    with pytest.raises(SimulatorError, match="in the past"):
        q.schedule(4, 0)
