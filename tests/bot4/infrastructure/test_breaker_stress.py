"""Multithreaded stress: no lost outcomes on the lock-free closed path, legal transitions,
and a half-open flood admits only the probe budget."""

from __future__ import annotations

import contextlib
import random
import sys
import threading
from collections.abc import Iterator

import pytest

from bot4.infrastructure.breaker import BreakerConfig, CircuitBreaker
from bot4.infrastructure.clock import ManualClock
from bot4.infrastructure.errors import CircuitOpenError
from bot4.infrastructure.state import BreakerEvent, BreakerState

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
LEGAL = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (HALF_OPEN, CLOSED)}


class BoomError(Exception):
    pass


@pytest.fixture(autouse=True)
def tiny_switch_interval() -> Iterator[None]:
    """Make the interpreter switch threads as often as possible to provoke races."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def run_threads(count: int, target: object) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.e2e
def test_closed_path_loses_no_outcome() -> None:
    threads, calls = 8, 5_000
    breaker = CircuitBreaker(
        "stress",
        BreakerConfig(window_calls=threads * calls, max_window_samples=threads * calls),
        clock=ManualClock(),
        fuse=None,
    )

    @breaker
    def maybe_fail(i: int) -> int:
        if i % 4 == 0:
            raise BoomError
        return i

    def worker(_: int) -> None:
        for i in range(calls):
            with contextlib.suppress(BoomError):
                maybe_fail(i)

    run_threads(threads, worker)
    snap = breaker.snapshot()
    assert snap.state is CLOSED
    assert snap.samples == threads * calls  # every append landed
    assert snap.failures_total == threads * calls // 4
    assert snap.error_rate == 0.25


def test_concurrent_random_traffic_makes_only_legal_transitions() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(
        "chaos",
        BreakerConfig(probe_calls=5, cooldown=1.0, backoff_factor=1.0),
        clock=clock,
        fuse=None,
    )
    events: list[BreakerEvent] = []
    lock = threading.Lock()
    in_probe = 0
    max_in_probe = 0

    def listener(event: BreakerEvent) -> None:
        if event.kind == "state":
            with lock:
                events.append(event)

    breaker.add_listener(listener)

    def call(rng: random.Random, error_rate: float) -> None:
        nonlocal in_probe, max_in_probe
        with breaker.guard() as guard:
            probing = guard.is_probe
            if probing:
                with lock:
                    in_probe += 1
                    max_in_probe = max(max_in_probe, in_probe)
            try:
                if rng.random() < error_rate:
                    raise BoomError
            finally:
                if probing:
                    with lock:
                        in_probe -= 1

    def worker(seed: int) -> None:
        # Every worker moves the clock and alternates bursts of errors (the breaker opens)
        # with calm stretches (its probes pass), so transitions happen whatever order the
        # threads run in: with one worker advancing time and a steady 40 % error rate, a
        # run where that worker finished first never left the state it was in.
        rng = random.Random(seed)
        for step in range(3_000):
            if step % 20 == 0:
                clock.advance(0.5)
            with contextlib.suppress(BoomError, CircuitOpenError):
                call(rng, 0.8 if (step // 150) % 2 == 0 else 0.1)

    run_threads(6, worker)
    assert len(events) >= 4
    assert {(event.old, event.new) for event in events} <= LEGAL
    assert breaker.state_changes == len(events)  # no change happened without its event
    assert max_in_probe <= 5


def test_half_open_flood_admits_only_the_probe_budget() -> None:
    clock = ManualClock()
    budget, flood = 4, 32
    breaker = CircuitBreaker("flood", BreakerConfig(probe_calls=budget), clock=clock, fuse=None)
    for _ in range(10):
        with pytest.raises(BoomError), breaker.guard():
            raise BoomError
    clock.advance(30)
    assert breaker.state is HALF_OPEN

    start = threading.Barrier(flood)
    release = threading.Event()
    admitted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def probe() -> None:
        release.wait(timeout=10)

    def worker(i: int) -> None:
        start.wait()
        try:
            with breaker.guard():
                with lock:
                    admitted.append(i)
                probe()
        except CircuitOpenError:
            with lock:
                refused.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(flood)]
    for thread in threads:
        thread.start()
    # Hold the admitted probes until every other caller has been refused.
    while len(refused) < flood - budget and any(t.is_alive() for t in threads):
        if len(admitted) > budget:
            break
        threading.Event().wait(0.001)
    release.set()
    for thread in threads:
        thread.join()
    assert len(admitted) == budget
    assert len(refused) == flood - budget
    assert breaker.state is CLOSED  # all probes succeeded: not stuck half-open
