"""Circuit breaker: thresholds, hysteresis, probes, back-off, flapping, the three call styles."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot4.errors import Bot4Error
from bot4.infrastructure.breaker import BreakerConfig, CircuitBreaker
from bot4.infrastructure.clock import ManualClock
from bot4.infrastructure.errors import CircuitOpenError, ConfigError, InfrastructureError
from bot4.infrastructure.fuse import process_fuse
from bot4.infrastructure.state import BreakerEvent, BreakerState

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class BoomError(Exception):
    """The failure the protected function raises."""


def ok() -> str:
    return "ok"


def fail() -> str:
    raise BoomError("downstream failed")


def make(clock: ManualClock | None = None, **overrides: Any) -> CircuitBreaker:
    return CircuitBreaker(
        "exchange", BreakerConfig(**overrides), clock=clock or ManualClock(), fuse=None
    )


def run(breaker: CircuitBreaker, outcome: bool) -> None:
    """One call that succeeds or fails; refusals propagate."""
    if outcome:
        assert breaker.call(ok) == "ok"
    else:
        with pytest.raises(BoomError):
            breaker.call(fail)


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.config.min_samples):
        run(breaker, False)
    assert breaker.observed_state is OPEN


def half_open(breaker: CircuitBreaker, clock: ManualClock) -> None:
    trip(breaker)
    clock.advance(breaker.cooldown_remaining)
    assert breaker.state is HALF_OPEN


# -- configuration ---------------------------------------------------------------------


def test_defaults_follow_the_design() -> None:
    cfg = BreakerConfig()
    assert (cfg.open_threshold, cfg.close_threshold, cfg.min_samples) == (0.5, 0.35, 10)
    assert cfg.allowed_probe_failures == 3
    assert [cfg.cooldown_for(level) for level in range(6)] == [30, 60, 120, 240, 480, 600]
    assert cfg.cooldown_for(10_000) == 600


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"close_threshold": 0.5}, "close_threshold < open_threshold"),
        ({"close_threshold": 0.6}, "hysteresis"),
        ({"close_threshold": 0.0}, "0 < close_threshold"),
        ({"open_threshold": 1.5}, "open_threshold <= 1"),
        ({"open_threshold": math.nan}, "open_threshold"),
        ({"min_samples": 9}, "min_samples must be an integer >= 10"),
        ({"min_samples": True}, "min_samples"),
        ({"min_samples": 10.0}, "min_samples"),
        ({"window_calls": 5}, "window_calls must be an integer >= min_samples"),
        ({"window_seconds": 0}, "window_seconds must be None or a positive number"),
        ({"window_seconds": math.inf}, "window_seconds"),
        ({"max_window_samples": 3}, "max_window_samples"),
        ({"probe_calls": 0}, "probe_calls must be an integer >= 1"),
        ({"probe_timeout": -1.0}, "probe_timeout must be a positive number"),
        ({"cooldown": 0}, "cooldown must be a positive number"),
        ({"flap_window": "60"}, "flap_window must be a positive number"),
        ({"backoff_factor": 0.5}, "backoff_factor must be in [1, 100]"),
        ({"max_cooldown": 1.0}, "max_cooldown must be >= cooldown"),
        ({"quick_reopen": -1.0}, "quick_reopen must be a number >= 0"),
        ({"flap_threshold": 1}, "flap_threshold must be an integer >= 2"),
        ({"failure_types": (ValueError, "x")}, "failure_types must be a tuple of exception"),
        ({"exclude": [KeyError]}, "exclude must be a tuple of exception classes"),
        ({"failure_types": ()}, "failure_types must not be empty"),
    ],
)
def test_invalid_config_is_one_clear_error(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match="invalid circuit breaker config") as info:
        BreakerConfig(**overrides)
    assert fragment in str(info.value)
    assert isinstance(info.value, Bot4Error)
    assert "\n" not in str(info.value)


def test_component_name_is_required() -> None:
    with pytest.raises(ConfigError, match="non-empty component name"):
        CircuitBreaker("", fuse=None)


# -- closed → open ---------------------------------------------------------------------


def test_does_not_open_below_min_samples() -> None:
    breaker = make()
    for _ in range(9):
        run(breaker, False)
    assert breaker.state is CLOSED
    run(breaker, False)
    assert breaker.state is OPEN


def test_opens_at_exactly_the_open_threshold() -> None:
    breaker = make()
    for outcome in [True] * 5 + [False] * 4:
        run(breaker, outcome)
    assert breaker.state is CLOSED
    run(breaker, False)  # 5 of 10 = 50%
    assert breaker.state is OPEN
    assert breaker.error_rate() == 0.5


def first_open_index(outcomes: list[bool], window: int, min_samples: int = 10) -> int | None:
    """Reference model: the call after which the breaker must be open."""
    recent: deque[bool] = deque(maxlen=window)
    for index, outcome in enumerate(outcomes):
        recent.append(outcome)
        failures = recent.count(False)
        if not outcome and len(recent) >= min_samples and failures / len(recent) >= 0.5:
            return index
    return None


@given(st.lists(st.booleans(), max_size=80), st.integers(min_value=10, max_value=30))
def test_opens_exactly_when_the_window_model_says(outcomes: list[bool], window: int) -> None:
    breaker = make(window_calls=window)
    expected = first_open_index(outcomes, window)
    for index, outcome in enumerate(outcomes):
        run(breaker, outcome)
        if breaker.observed_state is OPEN:
            assert index == expected
            break
    else:
        assert expected is None


def test_open_breaker_refuses_without_calling() -> None:
    clock = ManualClock()
    breaker = make(clock)
    trip(breaker)
    called: list[int] = []
    with pytest.raises(
        CircuitOpenError, match=r"'exchange' refused the call: open .*retry in 30.0s"
    ):
        breaker.call(called.append, 1)
    assert called == []
    assert breaker.rejected_total == 1
    assert breaker.failures_total == 10
    assert breaker.cooldown_remaining == 30.0
    clock.advance(10)
    assert breaker.cooldown_remaining == 20.0


def test_time_window_forgets_old_outcomes() -> None:
    clock = ManualClock()
    breaker = make(clock, window_seconds=60.0)
    for _ in range(9):
        run(breaker, False)
    clock.advance(61)
    run(breaker, False)
    assert breaker.state is CLOSED
    snap = breaker.snapshot()
    assert (snap.samples, snap.error_rate) == (1, 1.0)
    for _ in range(9):
        run(breaker, True)
    clock.advance(30)  # the outcomes at t=61 are still inside the 60 s window
    for _ in range(7):
        run(breaker, False)
    assert breaker.state is CLOSED  # 8 failures / 17 calls
    run(breaker, False)
    assert breaker.state is OPEN  # 9 / 18 = 50%


# -- open → half-open → closed / open ---------------------------------------------------


def test_cooldown_half_opens() -> None:
    clock = ManualClock()
    breaker = make(clock)
    trip(breaker)
    clock.advance(29.9)
    assert breaker.state is OPEN
    clock.advance(0.1)
    assert breaker.state is HALF_OPEN
    assert breaker.error_rate() == 0.0


def test_half_open_admits_only_the_probe_budget() -> None:
    clock = ManualClock()
    breaker = make(clock, probe_calls=3)
    half_open(breaker, clock)
    guards = [breaker.guard() for _ in range(3)]
    for guard in guards:
        guard.__enter__()
    with pytest.raises(CircuitOpenError, match="all 3 probe calls in flight"):
        breaker.call(ok)
    for guard in guards:
        guard.__exit__(None, None, None)
    assert breaker.state is CLOSED


@pytest.mark.parametrize(
    ("probes", "expected"),
    [
        ([True] * 7, CLOSED),  # decided early: even 3 more failures would be 30%
        ([False, False, False] + [True] * 7, CLOSED),  # 30% <= 35%
        ([False] * 4, OPEN),  # 40% > 35% though below the 50% open threshold
        ([True] * 6 + [False] * 4, OPEN),
    ],
)
def test_hysteresis_closes_only_at_or_below_close_threshold(
    probes: list[bool], expected: BreakerState
) -> None:
    clock = ManualClock()
    breaker = make(clock)
    half_open(breaker, clock)
    for outcome in probes:
        assert breaker.observed_state is HALF_OPEN
        run(breaker, outcome)
    assert breaker.observed_state is expected


@given(st.lists(st.booleans(), min_size=10, max_size=10))
def test_probe_decision_matches_the_full_window_rate(probes: list[bool]) -> None:
    clock = ManualClock()
    breaker = make(clock)
    half_open(breaker, clock)
    for outcome in probes:
        if breaker.observed_state is not HALF_OPEN:
            break
        run(breaker, outcome)
    closes = probes.count(False) / len(probes) <= 0.35
    assert breaker.observed_state is (CLOSED if closes else OPEN)


def test_closing_starts_a_fresh_window() -> None:
    clock = ManualClock()
    breaker = make(clock)
    half_open(breaker, clock)
    for _ in range(7):
        run(breaker, True)
    snap = breaker.snapshot()
    assert (snap.state, snap.samples, snap.error_rate) == (CLOSED, 0, 0.0)


def test_back_off_doubles_on_quick_reopen_and_resets_later() -> None:
    clock = ManualClock()
    breaker = make(clock, cooldown=10.0, max_cooldown=35.0, quick_reopen=60.0)
    trip(breaker)
    cooldowns = [breaker.cooldown_remaining]
    for _ in range(3):  # probes fail: re-open with a longer cooldown
        clock.advance(breaker.cooldown_remaining)
        for _ in range(4):
            run(breaker, False)
        cooldowns.append(breaker.cooldown_remaining)
    assert cooldowns == [10.0, 20.0, 35.0, 35.0]
    assert breaker.snapshot().backoff_level == 3
    # Recover, then fail again soon after: still a quick re-open.
    clock.advance(breaker.cooldown_remaining)
    for _ in range(7):
        run(breaker, True)
    clock.advance(5)
    trip(breaker)
    assert breaker.cooldown_remaining == 35.0
    # Recover and stay healthy past quick_reopen: the back-off is forgiven.
    clock.advance(breaker.cooldown_remaining)
    for _ in range(7):
        run(breaker, True)
    clock.advance(61)
    trip(breaker)
    assert breaker.cooldown_remaining == 10.0
    assert breaker.snapshot().backoff_level == 0


def test_back_off_factor_one_keeps_the_cooldown() -> None:
    clock = ManualClock()
    breaker = make(clock, backoff_factor=1.0)
    half_open(breaker, clock)
    for _ in range(4):
        run(breaker, False)
    assert breaker.cooldown_remaining == 30.0


def test_stuck_half_open_reopens_after_probe_timeout() -> None:
    clock = ManualClock()
    breaker = make(clock, probe_calls=2, probe_timeout=5.0)
    half_open(breaker, clock)
    events: list[BreakerEvent] = []
    breaker.add_listener(events.append)
    hung = [breaker.guard(), breaker.guard()]
    for guard in hung:
        guard.__enter__()
    clock.advance(4.9)
    assert breaker.state is HALF_OPEN
    clock.advance(0.1)
    assert breaker.state is OPEN
    assert "probes did not finish within probe_timeout=5.0s; cooldown 60s" in events[-1].reason
    with pytest.raises(CircuitOpenError, match=r"open \(error rate 100%\); retry in 60.0s"):
        breaker.call(ok)
    # The hung probes finish late: their generation is gone, so they decide nothing,
    # but a late failure is still counted as an error.
    failures = breaker.failures_total
    hung[0].__exit__(None, None, None)
    hung[1].__exit__(BoomError, BoomError("late"), None)
    assert breaker.observed_state is OPEN
    assert breaker.failures_total == failures + 1


def test_slow_traffic_is_not_stuck() -> None:
    clock = ManualClock()
    breaker = make(clock, probe_calls=3, probe_timeout=5.0)
    half_open(breaker, clock)
    run(breaker, True)
    clock.advance(100)  # budget not exhausted: keep waiting for probes
    assert breaker.state is HALF_OPEN
    run(breaker, True)
    run(breaker, True)
    assert breaker.state is CLOSED


def test_cancelled_probe_gives_its_slot_back() -> None:
    clock = ManualClock()
    breaker = make(clock, probe_calls=1)
    half_open(breaker, clock)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted)
    assert breaker.state is HALF_OPEN
    assert breaker.failures_total == 10
    run(breaker, True)
    assert breaker.state is CLOSED


# -- what counts as a failure -------------------------------------------------------------


def test_excluded_exceptions_count_as_success_and_others_are_ignored() -> None:
    breaker = make(failure_types=(OSError,), exclude=(FileNotFoundError,))

    def missing() -> None:
        raise FileNotFoundError("no such order")

    def bug() -> None:
        raise ValueError("caller bug")

    for _ in range(20):
        with pytest.raises(FileNotFoundError):
            breaker.call(missing)
        with pytest.raises(ValueError, match="caller bug"):
            breaker.call(bug)
    snap = breaker.snapshot()
    assert (snap.state, snap.samples, snap.error_rate, snap.failures_total) == (CLOSED, 20, 0, 0)

    def down() -> None:
        raise ConnectionError("reset")

    for _ in range(20):
        with pytest.raises(ConnectionError):
            breaker.call(down)
    assert breaker.state is OPEN


def test_keyboard_interrupt_in_closed_state_is_not_recorded() -> None:
    breaker = make()

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted)
    assert breaker.snapshot().samples == 0


def test_late_failure_from_a_discarded_window_counts_but_does_not_decide() -> None:
    clock = ManualClock()
    breaker = make(clock)
    slow = breaker.guard()
    slow.__enter__()  # admitted while closed
    trip(breaker)
    clock.advance(30)
    for _ in range(7):
        run(breaker, True)
    assert breaker.state is CLOSED
    slow.__exit__(BoomError, BoomError("late"), None)
    snap = breaker.snapshot()
    assert (snap.samples, snap.failures_total) == (0, 11)


# -- call styles -----------------------------------------------------------------------


def test_decorator_keeps_metadata_and_guards_every_call() -> None:
    clock = ManualClock()
    breaker = make(clock)
    calls: list[int] = []

    @breaker
    def send(order_id: int, *, qty: int = 1) -> int:
        """Send an order."""
        calls.append(order_id)
        if qty < 0:
            raise BoomError("rejected")
        return order_id * qty

    assert send.__name__ == "send"
    assert send.__doc__ == "Send an order."
    assert send(3, qty=2) == 6
    for _ in range(9):  # 9 of 10 failed: open
        with pytest.raises(BoomError):
            send(1, qty=-1)
    with pytest.raises(CircuitOpenError):
        send(5)
    assert 5 not in calls
    clock.advance(30)
    assert send(7) == 7  # half-open probe through the decorator
    for _ in range(6):
        send(8)
    assert breaker.state is CLOSED
    half_open(breaker, clock)
    with pytest.raises(BoomError):
        send(9, qty=-1)
    assert breaker.snapshot().samples == 1


def test_decorated_method_binds_self() -> None:
    breaker = make()

    class Client:
        def __init__(self) -> None:
            self.sent = 0

        @breaker
        def send(self, n: int) -> int:
            self.sent += n
            return self.sent

    client = Client()
    assert client.send(2) == 2
    assert client.send(3) == 5


def test_guard_context_manager_records_outcomes() -> None:
    breaker = make()
    with breaker.guard():
        pass
    for _ in range(9):
        with pytest.raises(BoomError), breaker.guard():
            raise BoomError("x")
    assert breaker.state is OPEN
    with pytest.raises(CircuitOpenError), breaker.guard():
        pytest.fail("an open breaker must not enter the block")


def test_guard_is_single_use() -> None:
    breaker = make()
    guard = breaker.guard()
    with guard:
        pass
    with pytest.raises(InfrastructureError, match="single-use"), guard:
        pass


async def _sleep_then(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def _sleep_then_fail() -> int:
    await asyncio.sleep(0)
    raise BoomError("async downstream")


def test_async_decorator_call_and_guard() -> None:
    clock = ManualClock()
    breaker = make(clock)
    guarded = breaker(_sleep_then)
    assert guarded.__name__ == "_sleep_then"

    async def scenario() -> list[object]:
        seen: list[object] = [await guarded(4), await breaker.call_async(_sleep_then, 5)]
        async with breaker.guard():
            seen.append(await _sleep_then(6))
        for _ in range(7):  # 7 of 10 failed: open
            with pytest.raises(BoomError):
                await breaker.call_async(_sleep_then_fail)
        with pytest.raises(CircuitOpenError):
            await guarded(1)
        clock.advance(30)
        seen.append(await guarded(7))
        for _ in range(4):
            with pytest.raises(BoomError):
                await breaker.call_async(_sleep_then_fail)
        seen.append(breaker.observed_state)
        return seen

    assert asyncio.run(scenario()) == [4, 5, 6, 7, OPEN]


def test_cancellation_is_not_a_failure() -> None:
    clock = ManualClock()
    breaker = make(clock, probe_calls=1)
    half_open(breaker, clock)

    async def scenario() -> None:
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(breaker.call_async(hang))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert breaker.state is HALF_OPEN
    assert breaker.failures_total == 10
    assert breaker.call(ok) == "ok"
    assert breaker.state is CLOSED


# -- events, flapping, manual control -------------------------------------------------------


def test_listeners_see_state_changes_and_failures() -> None:
    clock = ManualClock()
    breaker = make(clock)
    events: list[BreakerEvent] = []
    breaker.add_listener(events.append)
    half_open(breaker, clock)
    kinds = [(e.kind, e.old, e.new) for e in events]
    assert kinds == [("failure", CLOSED, CLOSED)] * 10 + [
        ("state", CLOSED, OPEN),
        ("state", OPEN, HALF_OPEN),
    ]
    assert events[10].error_rate == 1.0
    assert "error rate 100% over 10 calls reached 50%; cooldown 30s" in events[10].reason
    breaker.remove_listener(events.append)
    breaker.remove_listener(events.append)  # unknown: ignored
    run(breaker, True)
    assert len(events) == 12


def test_a_failing_listener_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    breaker = make()

    def broken(event: BreakerEvent) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(broken)
    with caplog.at_level(logging.INFO, logger="bot4.infrastructure.breaker"):
        trip(breaker)
    assert breaker.state is OPEN
    assert "circuit breaker 'exchange': a listener failed" in caplog.text
    assert any(
        r.levelno == logging.WARNING and "closed -> open" in r.getMessage() for r in caplog.records
    )


def test_flap_detection() -> None:
    clock = ManualClock()
    breaker = make(clock, flap_threshold=4, flap_window=100.0)
    assert not breaker.is_flapping()
    half_open(breaker, clock)  # 2 changes
    for _ in range(7):
        run(breaker, True)  # 3
    assert not breaker.is_flapping()
    trip(breaker)  # 4
    assert breaker.state_changes == 4
    assert breaker.is_flapping()
    clock.advance(101)
    assert not breaker.is_flapping()


def test_force_open_and_release() -> None:
    clock = ManualClock()
    breaker = make(clock)
    breaker.release("nothing to release")
    assert breaker.state is CLOSED
    breaker.force_open("maintenance")
    assert str(breaker.forced_reason) == "maintenance"
    with pytest.raises(CircuitOpenError, match="held open: maintenance"):
        breaker.call(ok)
    clock.advance(10_000)
    assert breaker.state is OPEN
    assert breaker.cooldown_remaining == 0.0
    changes = breaker.state_changes
    breaker.force_open("again")  # already open: no new state change
    assert breaker.state_changes == changes
    breaker.release("done")
    assert breaker.forced_reason is None
    assert breaker.state is HALF_OPEN
    for _ in range(7):
        run(breaker, True)
    assert breaker.state is CLOSED


def test_repr_and_introspection() -> None:
    breaker = make()
    assert repr(breaker) == "CircuitBreaker('exchange', state=closed)"
    assert breaker.component == "exchange"
    assert breaker.cooldown_remaining == 0.0
    assert [s.code for s in BreakerState] == [0, 1, 2]


def test_default_breakers_register_with_the_process_fuse() -> None:
    breaker = CircuitBreaker("registered-by-default")
    assert breaker in process_fuse().breakers
    process_fuse().unregister(breaker)
    assert breaker not in process_fuse().breakers


def test_call_passes_arguments_through() -> None:
    breaker = make()
    join: Callable[..., str] = "-".join
    assert breaker.call(join, ["a", "b"]) == "a-b"
    assert breaker.call(dict, a=1) == {"a": 1}
