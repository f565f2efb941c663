"""Breaker guard overhead in the closed state: bare call vs bot4 vs pybreaker.

Run: .venv/bin/python benchmarks/infrastructure/bench_breaker.py [--quick]
Goal (issue 6): bot4's added cost <= 250 ns per call and >= 5x cheaper than pybreaker.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable

import pybreaker

from bot4.infrastructure.breaker import BreakerConfig, CircuitBreaker


def target(x: int) -> int:
    return x + 1


def per_call_ns(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Best-of-``repeat`` time per call, in nanoseconds (the least disturbed run)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run for CI smoke checks")
    args = parser.parse_args(argv)
    number, repeat = (20_000, 3) if args.quick else (200_000, 7)

    ours = CircuitBreaker("bench", BreakerConfig(), fuse=None)
    ours_decorated = ours(target)
    peer = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    peer_decorated = peer(target)

    timings = {
        "bare call": per_call_ns(lambda: target(1), number, repeat),
        "bot4 @breaker": per_call_ns(lambda: ours_decorated(1), number, repeat),
        "bot4 breaker.call": per_call_ns(lambda: ours.call(target, 1), number, repeat),
        "bot4 with guard()": per_call_ns(lambda: _guarded(ours), number, repeat),
        "pybreaker @breaker": per_call_ns(lambda: peer_decorated(1), number, repeat),
        "pybreaker .call": per_call_ns(lambda: peer.call(target, 1), number, repeat),
    }
    bare = timings["bare call"]
    print(f"{'variant':<22}{'ns/call':>10}{'overhead ns':>14}")
    for name, ns in timings.items():
        print(f"{name:<22}{ns:>10.1f}{ns - bare:>14.1f}")
    ours_over = timings["bot4 @breaker"] - bare
    peer_over = timings["pybreaker @breaker"] - bare
    ratio = peer_over / ours_over if ours_over > 0 else float("inf")
    print(f"\nbot4 decorator overhead: {ours_over:.0f} ns (goal <= 250 ns)")
    print(f"pybreaker / bot4 overhead ratio: {ratio:.1f}x (goal >= 5x)")
    total_ratio = timings["pybreaker @breaker"] / timings["bot4 @breaker"]
    print(f"pybreaker / bot4 total time ratio: {total_ratio:.1f}x")
    return 0


def _guarded(breaker: CircuitBreaker) -> int:
    with breaker.guard():
        return target(1)


if __name__ == "__main__":
    sys.exit(main())
