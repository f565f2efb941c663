"""TokenBucket ns/acquire against aiolimiter and limits, measured in the same run.

Run: .venv/bin/python benchmarks/simulator/bench_rate_limit.py [--quick]

Every limiter is sized so that no call is refused or waits: this measures the cost of the
admission check itself on the hot path. aiolimiter is async-only, so its acquire is timed
inside a running event loop, and so is our bucket in the same loop for a like-for-like row.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from bot4.simulator.rate_limit import BucketConfig, RateLimiter, TokenBucket

BIG = 10**12


def best_of(repeats: int, n: int, body: Callable[[int], None]) -> float:
    """Best ns per call over ``repeats`` runs of ``n`` calls (best = least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        body(n)
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def bench_bucket_at(n: int) -> None:
    bucket = TokenBucket(BIG, BIG, now=0)
    acquire = bucket.try_acquire_at
    for t in range(n):
        acquire(t)


def bench_bucket_clock(n: int) -> None:
    bucket = TokenBucket(BIG, BIG)
    acquire = bucket.try_acquire
    for _ in range(n):
        acquire()


def bench_keyed(n: int) -> None:
    limiter = RateLimiter({"order": BucketConfig(BIG, BIG)})
    allow = limiter.allow
    for t in range(n):
        allow("acct", "order", t)


def bench_limits(
    strategy: type[FixedWindowRateLimiter] | type[MovingWindowRateLimiter],
) -> Callable[[int], None]:
    def body(n: int) -> None:
        limiter = strategy(MemoryStorage())
        item = RateLimitItemPerSecond(10**9)
        hit = limiter.hit
        for _ in range(n):
            hit(item, "acct", "order")

    return body


def bench_aiolimiter(n: int) -> None:
    async def main() -> None:
        limiter = AsyncLimiter(BIG, 1)
        for _ in range(n):
            await limiter.acquire()

    asyncio.run(main())


def bench_bucket_in_loop(n: int) -> None:
    async def main() -> None:
        bucket = TokenBucket(BIG, BIG)
        acquire = bucket.try_acquire
        for _ in range(n):
            acquire()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run for a smoke check")
    args = parser.parse_args()
    n, repeats = (20_000, 2) if args.quick else (300_000, 5)
    slow_n = max(2_000, n // 10)  # moving window is O(hits in window); keep its run bounded
    rows = [
        ("bot4 TokenBucket.try_acquire_at(t)", best_of(repeats, n, bench_bucket_at)),
        ("bot4 TokenBucket.try_acquire() (monotonic_ns)", best_of(repeats, n, bench_bucket_clock)),
        ("bot4 RateLimiter.allow(account, endpoint, t)", best_of(repeats, n, bench_keyed)),
        ("bot4 TokenBucket in an asyncio loop", best_of(repeats, n, bench_bucket_in_loop)),
        ("aiolimiter AsyncLimiter.acquire()", best_of(repeats, n, bench_aiolimiter)),
        (
            "limits FixedWindowRateLimiter.hit (memory)",
            best_of(repeats, n, bench_limits(FixedWindowRateLimiter)),
        ),
        (
            "limits MovingWindowRateLimiter.hit (memory)",
            best_of(repeats, slow_n, bench_limits(MovingWindowRateLimiter)),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'limiter':<{width}}  ns/acquire")
    for name, ns in rows:
        print(f"{name:<{width}}  {ns:10.1f}")
    ours = dict(rows)
    bucket = ours["bot4 TokenBucket.try_acquire_at(t)"]
    keyed = ours["bot4 RateLimiter.allow(account, endpoint, t)"]
    in_loop = ours["bot4 TokenBucket in an asyncio loop"]
    print()
    fixed = ours["limits FixedWindowRateLimiter.hit (memory)"]
    moving = ours["limits MovingWindowRateLimiter.hit (memory)"]
    for peer, ns in (("limits fixed window", fixed), ("limits moving window", moving)):
        print(
            f"{peer} / TokenBucket: {ns / bucket:6.1f}x   / RateLimiter.allow: {ns / keyed:6.1f}x"
        )
    aio = ours["aiolimiter AsyncLimiter.acquire()"]
    print(f"aiolimiter acquire / TokenBucket (both in asyncio): {aio / in_loop:6.1f}x")
    goal = min(fixed, moving) / keyed
    verdict = "met" if goal >= 5 else "NOT met"
    print(
        f"goal >= 5x faster than limits (keyed, vs its fastest strategy): {verdict} ({goal:.1f}x)"
    )


if __name__ == "__main__":
    main()
