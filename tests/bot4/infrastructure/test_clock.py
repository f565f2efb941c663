"""ManualClock: simulated time only moves forward, and only when told to."""

from __future__ import annotations

import math

import pytest

from bot4.infrastructure.clock import ManualClock, monotonic
from bot4.infrastructure.errors import ConfigError


def test_manual_clock_advances_on_demand() -> None:
    clock = ManualClock(5)
    assert clock() == 5.0
    assert clock.advance(2.5) == 7.5
    assert clock() == 7.5
    assert repr(clock) == "ManualClock(now=7.5)"


@pytest.mark.parametrize("seconds", [-1.0, math.nan])
def test_manual_clock_refuses_to_go_backwards(seconds: float) -> None:
    clock = ManualClock()
    with pytest.raises(ConfigError, match="cannot go backwards"):
        clock.advance(seconds)
    assert clock() == 0.0


def test_default_clock_is_monotonic() -> None:
    first = monotonic()
    assert monotonic() >= first
