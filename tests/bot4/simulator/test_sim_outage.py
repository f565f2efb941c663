"""Outage patterns: scheduled and Poisson windows, lookups, total time."""

from __future__ import annotations

import random

import pytest

from bot4.simulator.errors import SimulatorError
from bot4.simulator.latency import LatencyDistribution
from bot4.simulator.outage import (
    OutageKind,
    OutagePattern,
    OutageSchedule,
    OutageWindow,
    RandomOutages,
    microseconds_to_ns,
    seconds_to_ns,
)

S = 1_000_000_000


def test_window_validation() -> None:
    with pytest.raises(SimulatorError, match="start < end"):
        OutageWindow(5, 5, OutageKind.REJECT_ALL)
    with pytest.raises(SimulatorError, match="start < end"):
        OutageWindow(-1, 5, OutageKind.REJECT_ALL)


def test_schedule_lookup_merges_overlaps_per_kind() -> None:
    windows = (
        OutageWindow(10, 20, OutageKind.REJECT_ALL),
        OutageWindow(15, 30, OutageKind.REJECT_ALL),
        OutageWindow(40, 50, OutageKind.REJECT_ALL),
        OutageWindow(12, 18, OutageKind.CONNECTION_DROP),
    )
    sched = OutageSchedule(windows)
    assert sched.active_until(5, OutageKind.REJECT_ALL) == 0
    assert sched.active_until(10, OutageKind.REJECT_ALL) == 30
    assert sched.active_until(29, OutageKind.REJECT_ALL) == 30
    assert sched.active_until(30, OutageKind.REJECT_ALL) == 0
    assert sched.active_until(45, OutageKind.REJECT_ALL) == 50
    assert sched.active_until(13, OutageKind.CONNECTION_DROP) == 18
    assert sched.active_until(13, OutageKind.SLOW_RESPONSES) == 0
    assert sched.total_ns(1000) == 20 + 10  # [10, 30) and [40, 50)
    assert sched.total_ns(45) == 20 + 5
    assert sched.total_ns(5) == 0
    assert OutageSchedule(()).total_ns(100) == 0


def test_random_outages_are_seeded_and_inside_the_horizon() -> None:
    pattern = OutagePattern(
        scheduled=(OutageWindow(seconds_to_ns(1), seconds_to_ns(2), OutageKind.REJECT_ALL),),
        random_outages=RandomOutages(
            rate_per_hour=3600.0,
            duration=LatencyDistribution(value=1000.0),
            kinds=(OutageKind.CONNECTION_DROP, OutageKind.SLOW_RESPONSES),
        ),
    )
    a = pattern.materialize(60 * S, random.Random(1))
    b = pattern.materialize(60 * S, random.Random(1))
    assert a == b
    assert 30 < len(a) < 100
    assert all(w.start_ns < 60 * S for w in a)
    assert [w.start_ns for w in a] == sorted(w.start_ns for w in a)
    assert {w.kind for w in a} == {
        OutageKind.REJECT_ALL,
        OutageKind.CONNECTION_DROP,
        OutageKind.SLOW_RESPONSES,
    }
    assert pattern.materialize(S // 2, random.Random(1))[0].kind is not OutageKind.REJECT_ALL


def test_no_random_outages_when_rate_is_zero() -> None:
    pattern = OutagePattern(random_outages=RandomOutages(0.0, LatencyDistribution()))
    assert pattern.materialize(S, random.Random(0)) == ()


def test_unit_helpers() -> None:
    assert seconds_to_ns(1.5) == 1_500_000_000
    assert microseconds_to_ns(2.5) == 2_500
