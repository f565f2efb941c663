"""Token-bucket rate limiting, shared by the venue (429-like rejects) and the engine's client.

Why a hand-written bucket: it sits on the hot path of every request, so an acquire is a
handful of float operations on slot attributes and no allocation. The time source is
injected and counts integer nanoseconds, so the simulator passes simulated time and a live
client passes ``time.monotonic_ns``; nothing here knows about the simulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from bot4.simulator.errors import SimulatorError

Clock = Callable[[], int]
_NS_PER_S = 1_000_000_000


class TokenBucket:
    """A bucket of ``capacity`` tokens refilled at ``rate`` tokens per second, starting full.

    Over any interval of ``elapsed`` seconds the bucket admits at most
    ``capacity + rate * elapsed`` tokens. A clock that goes backwards refills nothing.
    """

    __slots__ = ("_capacity", "_clock", "_last", "_per_ns", "_tokens", "rate")

    def __init__(
        self,
        capacity: float,
        rate: float,
        *,
        clock: Clock = time.monotonic_ns,
        now: int | None = None,
    ) -> None:
        if not capacity > 0:
            raise SimulatorError(f"token bucket capacity must be > 0, got {capacity}")
        if not rate >= 0:
            raise SimulatorError(f"token bucket refill rate must be >= 0, got {rate}")
        self._capacity = float(capacity)
        self.rate = float(rate)
        self._per_ns = self.rate / _NS_PER_S
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock() if now is None else now

    @property
    def capacity(self) -> float:
        """Most tokens the bucket can hold (the burst size)."""
        return self._capacity

    def try_acquire_at(self, now: int, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens at time ``now`` (ns) if they are there; never blocks."""
        tokens = self._tokens
        last = self._last
        if now > last:
            tokens += (now - last) * self._per_ns
            if tokens > self._capacity:  # noqa: PLR1730 - a compare is cheaper than min()
                tokens = self._capacity
            self._last = now
        if tokens >= cost:
            self._tokens = tokens - cost
            return True
        self._tokens = tokens
        return False

    def try_acquire(self, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens now, by the injected clock."""
        return self.try_acquire_at(self._clock(), cost)

    def available_at(self, now: int) -> float:
        """Tokens the bucket would hold at ``now`` (ns), without taking any."""
        if now <= self._last:
            return self._tokens
        return min(self._capacity, self._tokens + (now - self._last) * self._per_ns)

    def wait_ns(self, now: int, cost: float = 1.0) -> int:
        """Nanoseconds from ``now`` until ``cost`` tokens are there (0 if they already are).

        A client uses this to pace itself instead of spinning; with a zero refill rate and
        too few tokens the wait is unbounded and ``-1`` is returned.
        """
        missing = cost - self.available_at(now)
        if missing <= 0:
            return 0
        if self._per_ns == 0.0:
            return -1
        return int(missing / self._per_ns) + 1


@dataclass(frozen=True, slots=True)
class BucketConfig:
    """Capacity (burst) and refill rate per second of one endpoint's buckets."""

    capacity: float
    rate: float


class RateLimiter:
    """One bucket per ``(account, endpoint)``, created on first use from the endpoint's config.

    Endpoints without a config are not limited. This is the venue side; a client that
    talks to one venue endpoint can use a single :class:`TokenBucket` directly.
    """

    __slots__ = ("_buckets", "_configs")

    def __init__(self, configs: dict[str, BucketConfig]) -> None:
        self._configs = dict(configs)
        self._buckets: dict[tuple[Hashable, str], TokenBucket] = {}

    def allow(self, account: Hashable, endpoint: str, now: int, cost: float = 1.0) -> bool:
        """Whether a request of ``account`` to ``endpoint`` at ``now`` (ns) is admitted."""
        key = (account, endpoint)
        bucket = self._buckets.get(key)
        if bucket is None:
            config = self._configs.get(endpoint)
            if config is None:
                return True
            bucket = TokenBucket(config.capacity, config.rate, clock=lambda: now, now=now)
            self._buckets[key] = bucket
        return bucket.try_acquire_at(now, cost)
