"""Frozen reference copy (commit 48c5cda) of bot4.simulator.clock — the oracle for the fast path.

The discrete-event clock: integer simulated nanoseconds and a priority queue of events.

Ties are broken by a sequence number assigned at scheduling time, so two events due at the
same nanosecond always run in the order they were scheduled: that, plus seeded randomness,
is what makes a run reproducible byte for byte.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any

from bot4.simulator.errors import SimulatorError

Event = tuple[int, int, int, Any]  # (due_ns, seq, kind, payload)


class EventQueue:
    """Events ordered by (due time, scheduling order); ``now`` never goes backwards."""

    __slots__ = ("_heap", "_seq", "now")

    def __init__(self, start_ns: int = 0) -> None:
        self._heap: list[Event] = []
        self._seq = 0
        self.now = start_ns

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, due_ns: int, kind: int, payload: Any = None) -> None:
        """Queue an event; ``due_ns`` earlier than ``now`` is a bug in the caller."""
        if due_ns < self.now:
            raise SimulatorError(
                f"cannot schedule an event in the past ({due_ns}ns < now {self.now}ns)"
            )
        self._seq += 1
        heappush(self._heap, (due_ns, self._seq, kind, payload))

    def peek_time(self) -> int | None:
        """Due time of the next event, or ``None`` when the queue is empty."""
        return self._heap[0][0] if self._heap else None

    def last_due(self, exclude: tuple[int, ...] = ()) -> int | None:
        """Latest due time among queued events whose kind is not in ``exclude``."""
        return max((e[0] for e in self._heap if e[2] not in exclude), default=None)

    def pop(self) -> Event:
        """Remove the next event and advance ``now`` to its due time."""
        event = heappop(self._heap)
        self.now = event[0]
        return event
