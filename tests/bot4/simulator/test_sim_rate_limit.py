"""TokenBucket and the per-(account, endpoint) limiter."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.simulator.errors import SimulatorError
from bot4.simulator.rate_limit import BucketConfig, RateLimiter, TokenBucket

S = 1_000_000_000


def test_bucket_bursts_then_refills() -> None:
    bucket = TokenBucket(3, 2.0, now=0)
    assert [bucket.try_acquire_at(0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.try_acquire_at(S // 4)  # 0.5 tokens
    assert bucket.try_acquire_at(S // 2)  # 1.0 token
    assert bucket.available_at(S // 2) == pytest.approx(0.0)
    assert bucket.available_at(100 * S) == 3.0  # capped at capacity
    assert bucket.capacity == 3.0


def test_bucket_with_injected_clock() -> None:
    now = [0]
    bucket = TokenBucket(1, 1.0, clock=lambda: now[0])
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    now[0] = S
    assert bucket.try_acquire()


def test_clock_going_backwards_refills_nothing() -> None:
    bucket = TokenBucket(1, 1.0, now=10 * S)
    assert bucket.try_acquire_at(10 * S)
    assert not bucket.try_acquire_at(5 * S)
    assert bucket.available_at(5 * S) == 0.0
    assert bucket.try_acquire_at(11 * S)


def test_wait_ns() -> None:
    bucket = TokenBucket(2, 4.0, now=0)
    assert bucket.wait_ns(0) == 0
    bucket.try_acquire_at(0, 2)
    wait = bucket.wait_ns(0)
    assert S // 4 <= wait <= S // 4 + 1
    assert bucket.try_acquire_at(wait)
    frozen = TokenBucket(1, 0.0, now=0)
    frozen.try_acquire_at(0)
    assert frozen.wait_ns(10 * S) == -1


@pytest.mark.parametrize(
    ("capacity", "rate"), [(0, 1.0), (-1, 1.0), (1, -0.5), (float("nan"), 1.0)]
)
def test_bad_bucket_parameters(capacity: float, rate: float) -> None:
    with pytest.raises(SimulatorError, match="token bucket"):
        TokenBucket(capacity, rate, now=0)


def test_limiter_keys_by_account_and_endpoint() -> None:
    limiter = RateLimiter({"order": BucketConfig(1, 0.0)})
    assert limiter.allow("a", "order", 0)
    assert not limiter.allow("a", "order", S)
    assert limiter.allow("b", "order", S)
    assert all(limiter.allow("a", "cancel", S) for _ in range(100))  # not configured


@settings(max_examples=80)
@given(
    capacity=st.integers(1, 20),
    rate=st.floats(0.0, 1000.0),
    gaps=st.lists(st.integers(0, S // 10), min_size=1, max_size=200),
    cost=st.sampled_from([1.0, 2.0, 0.5]),
)
def test_never_admits_more_than_capacity_plus_refill(
    capacity: int, rate: float, gaps: list[int], cost: float
) -> None:
    bucket = TokenBucket(capacity, rate, now=0)
    t = 0
    admitted = 0.0
    for gap in gaps:
        t += gap
        if bucket.try_acquire_at(t, cost):
            admitted += cost
        assert admitted <= capacity + rate * t / S + 1e-6
