"""Global fuse: manual and automatic trips reach every breaker; reset is explicit and logged."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest

from bot4.infrastructure.breaker import BreakerConfig, CircuitBreaker
from bot4.infrastructure.clock import ManualClock
from bot4.infrastructure.errors import CircuitOpenError, ConfigError
from bot4.infrastructure.fuse import Fuse, FuseConfig, process_fuse
from bot4.infrastructure.state import BreakerState

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class BoomError(Exception):
    pass


def fail() -> None:
    raise BoomError("down")


def breakers(fuse: Fuse, clock: ManualClock, *names: str) -> list[CircuitBreaker]:
    return [CircuitBreaker(name, BreakerConfig(), clock=clock, fuse=fuse) for name in names]


def trip_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(10):
        with pytest.raises(BoomError):
            breaker.call(fail)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"max_open": 0}, "max_open must be None or an integer >= 1"),
        ({"max_open": True}, "max_open"),
        ({"max_state_changes": 2.5}, "max_state_changes"),
        ({"flap_window": 0}, "flap_window must be a positive number"),
        ({"flap_window": False}, "flap_window"),
    ],
)
def test_invalid_fuse_config(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match="invalid fuse config") as info:
        FuseConfig(**overrides)
    assert fragment in str(info.value)


def test_manual_trip_holds_every_breaker_open_until_reset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    fuse = Fuse(clock=clock)
    a, b = breakers(fuse, clock, "a", "b")
    with caplog.at_level(logging.INFO, logger="bot4.infrastructure.fuse"):
        assert fuse.trip("operator kill switch")
        assert not fuse.trip("second trip is a no-op")
    assert (fuse.tripped, fuse.reason, fuse.trips) == (True, "operator kill switch", 1)
    for breaker in (a, b):
        with pytest.raises(CircuitOpenError, match="held open: global fuse tripped: operator"):
            breaker.call(int)
    clock.advance(3600)  # no cooldown releases a fused breaker
    assert a.state is OPEN
    # A breaker created while tripped is held open at once.
    (late,) = breakers(fuse, clock, "late")
    assert late.state is OPEN
    with caplog.at_level(logging.INFO, logger="bot4.infrastructure.fuse"):
        assert fuse.reset(by="alice", reason="exchange back")
        assert not fuse.reset(by="alice", reason="twice")
    assert not fuse.tripped
    assert {x.state for x in (a, b, late)} == {HALF_OPEN}
    assert "global fuse tripped: operator kill switch (2 breakers held open)" in caplog.text
    assert "global fuse reset by alice: exchange back" in caplog.text
    assert "ignored: it is not tripped" in caplog.text


@pytest.mark.parametrize(("by", "reason"), [("", "why"), ("bob", "  ")])
def test_reset_needs_who_and_why(by: str, reason: str) -> None:
    fuse = Fuse()
    fuse.trip("x")
    with pytest.raises(ConfigError, match="needs who"):
        fuse.reset(by=by, reason=reason)
    assert fuse.tripped


def test_auto_trip_when_n_breakers_are_open() -> None:
    clock = ManualClock()
    fuse = Fuse(FuseConfig(max_open=2), clock=clock)
    a, b, c = breakers(fuse, clock, "a", "b", "c")
    trip_breaker(a)
    assert fuse.trips == 0
    trip_breaker(b)
    assert fuse.tripped
    assert str(fuse.reason) == "2 breakers open at once: a, b"
    assert c.state is OPEN
    assert c.forced_reason == "global fuse tripped: 2 breakers open at once: a, b"


def test_auto_trip_on_flap_rate() -> None:
    clock = ManualClock()
    fuse = Fuse(FuseConfig(max_state_changes=3, flap_window=60.0), clock=clock)
    a, b = breakers(fuse, clock, "a", "b")
    trip_breaker(a)  # change at t=0
    clock.advance(61)
    assert a.state is HALF_OPEN  # change at t=61; the one at t=0 has left the window
    trip_breaker(b)  # 2 changes in the window
    assert fuse.reason is None
    for _ in range(4):
        with pytest.raises(BoomError):
            a.call(fail)  # the probes fail: a re-opens, the 3rd change in the window
    assert fuse.tripped
    assert "3 breaker state changes within 60s (flapping)" in (fuse.reason or "")


def test_configure_and_unregister() -> None:
    clock = ManualClock()
    fuse = Fuse(clock=clock)
    a, b = breakers(fuse, clock, "a", "b")
    fuse.register(a)  # idempotent
    assert fuse.breakers == (a, b)
    fuse.configure(FuseConfig(max_open=1))
    assert fuse.config.max_open == 1
    fuse.unregister(b)
    trip_breaker(b)
    assert fuse.reason is None
    trip_breaker(a)
    assert fuse.tripped
    assert b.forced_reason is None


def test_fuse_does_not_keep_breakers_alive() -> None:
    fuse = Fuse()
    breakers(fuse, ManualClock(), "temp")
    gc.collect()
    assert fuse.breakers == ()


def test_process_fuse_is_a_singleton() -> None:
    assert process_fuse() is process_fuse()
