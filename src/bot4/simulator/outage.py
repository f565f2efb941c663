"""Venue outages: scheduled windows plus random ones with Poisson arrivals.

A pattern is materialized once per run into a sorted tuple of windows (seeded), so the
simulator asks "what is down at t?" with a cursor rather than drawing during the run, and
the same seed always yields the same outages.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from enum import StrEnum

from bot4.simulator.errors import SimulatorError
from bot4.simulator.latency import LatencyDistribution

_NS_PER_S = 1_000_000_000
_NS_PER_US = 1_000


class OutageKind(StrEnum):
    """What the participant experiences during an outage."""

    CONNECTION_DROP = "connection_drop"  # requests lost; reports held until reconnect
    REJECT_ALL = "reject_all"  # every request rejected as exchange_unavailable
    STALE_MARKET_DATA = "stale_market_data"  # market data stops updating
    SLOW_RESPONSES = "slow_responses"  # report latency multiplied by slow_factor


@dataclass(frozen=True, slots=True)
class OutageWindow:
    """One outage: ``[start_ns, end_ns)`` of one kind."""

    start_ns: int
    end_ns: int
    kind: OutageKind

    def __post_init__(self) -> None:
        if self.start_ns < 0 or self.end_ns <= self.start_ns:
            raise SimulatorError(
                f"outage window must have 0 ≤ start < end, got start={self.start_ns}ns "
                f"end={self.end_ns}ns"
            )


@dataclass(frozen=True, slots=True)
class RandomOutages:
    """Poisson outage arrivals at ``rate_per_hour``; durations drawn from ``duration`` (µs)."""

    rate_per_hour: float
    duration: LatencyDistribution
    kinds: tuple[OutageKind, ...] = (OutageKind.REJECT_ALL,)


@dataclass(frozen=True, slots=True)
class OutagePattern:
    """Scheduled windows and optional random outages; ``slow_factor`` scales slow responses."""

    scheduled: tuple[OutageWindow, ...] = ()
    random_outages: RandomOutages | None = None
    slow_factor: float = 10.0

    def materialize(self, horizon_ns: int, rng: random.Random) -> tuple[OutageWindow, ...]:
        """All windows that start before ``horizon_ns``, sorted by start (seeded by ``rng``)."""
        windows = [w for w in self.scheduled if w.start_ns < horizon_ns]
        spec = self.random_outages
        if spec is not None and spec.rate_per_hour > 0 and spec.kinds:
            rate_per_ns = spec.rate_per_hour / (3600 * _NS_PER_S)
            duration = spec.duration.sampler(rng)
            t = 0
            while True:
                t += round(rng.expovariate(rate_per_ns))
                if t >= horizon_ns:
                    break
                length = max(1, duration())
                windows.append(OutageWindow(t, t + length, rng.choice(spec.kinds)))
        windows.sort(key=lambda w: (w.start_ns, w.end_ns, w.kind.value))
        return tuple(windows)


class OutageSchedule:
    """Answers "is an outage of this kind active at t?" in O(log n) per query.

    Overlapping windows of one kind are merged, so each kind is a sorted list of disjoint
    intervals and a lookup is one bisection.
    """

    __slots__ = ("_by_kind", "windows")

    def __init__(self, windows: tuple[OutageWindow, ...]) -> None:
        self.windows = windows
        self._by_kind: dict[OutageKind, tuple[list[int], list[int]]] = {}
        for kind in OutageKind:
            starts: list[int] = []
            ends: list[int] = []
            for w in sorted((w for w in windows if w.kind is kind), key=lambda w: w.start_ns):
                if ends and w.start_ns <= ends[-1]:
                    ends[-1] = max(ends[-1], w.end_ns)
                else:
                    starts.append(w.start_ns)
                    ends.append(w.end_ns)
            self._by_kind[kind] = (starts, ends)

    def active_until(self, now: int, kind: OutageKind) -> int:
        """End (ns) of the outage of ``kind`` in force at ``now``, or 0 if none is."""
        starts, ends = self._by_kind[kind]
        i = bisect_right(starts, now) - 1
        if i >= 0 and now < ends[i]:
            return ends[i]
        return 0

    def total_ns(self, horizon_ns: int) -> int:
        """Time within ``[0, horizon_ns)`` covered by at least one outage (overlaps once)."""
        total = 0
        cur_start = cur_end = -1
        for w in self.windows:
            start, end = w.start_ns, min(w.end_ns, horizon_ns)
            if end <= start:
                continue
            if start > cur_end:
                total += max(0, cur_end - cur_start)
                cur_start, cur_end = start, end
            else:
                cur_end = max(cur_end, end)
        total += max(0, cur_end - cur_start)
        return total


def seconds_to_ns(seconds: float) -> int:
    """Scenario seconds to integer nanoseconds."""
    return round(seconds * _NS_PER_S)


def microseconds_to_ns(us: float) -> int:
    """Scenario microseconds to integer nanoseconds."""
    return round(us * _NS_PER_US)
