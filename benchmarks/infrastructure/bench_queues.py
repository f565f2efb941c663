"""Queue put/get throughput: bot4 bounded queues vs queue.Queue and asyncio.Queue.

Run: .venv/bin/python benchmarks/infrastructure/bench_queues.py [--quick]
Scenarios: a burst (put N, then get N) in one thread/task, and a producer and a
consumer thread handing N items across a queue of capacity 1024.
"""

from __future__ import annotations

import argparse
import asyncio
import queue as stdlib_queue
import sys
import threading
import time
from collections.abc import Callable

from bot4.infrastructure.queues import AsyncBoundedQueue, BoundedQueue

CAPACITY = 1024


def best_of(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def sync_burst(make: Callable[[], object], n: int) -> float:
    q = make()
    put, get = q.put, q.get  # type: ignore[attr-defined]
    start = time.perf_counter()
    for _ in range(n // CAPACITY):
        for i in range(CAPACITY):
            put(i)
        for _ in range(CAPACITY):
            get()
    return time.perf_counter() - start


def threaded(make: Callable[[], object], n: int) -> float:
    q = make()
    put, get = q.put, q.get  # type: ignore[attr-defined]

    def consume() -> None:
        for _ in range(n):
            get()

    consumer = threading.Thread(target=consume)
    start = time.perf_counter()
    consumer.start()
    for i in range(n):
        put(i)
    consumer.join()
    return time.perf_counter() - start


def async_burst(make: Callable[[], object], n: int) -> float:
    async def run() -> float:
        q = make()
        put, get = q.put, q.get  # type: ignore[attr-defined]
        start = time.perf_counter()
        for _ in range(n // CAPACITY):
            for i in range(CAPACITY):
                await put(i)
            for _ in range(CAPACITY):
                await get()
        return time.perf_counter() - start

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run for CI smoke checks")
    args = parser.parse_args(argv)
    n, repeat = (CAPACITY * 20, 2) if args.quick else (CAPACITY * 200, 5)

    def ours() -> BoundedQueue[int]:
        return BoundedQueue("bench", CAPACITY, timeout=None)

    def ours_async() -> AsyncBoundedQueue[int]:
        return AsyncBoundedQueue("bench", CAPACITY, timeout=None)

    def peer() -> stdlib_queue.Queue[int]:
        return stdlib_queue.Queue(CAPACITY)

    def peer_async() -> asyncio.Queue[int]:
        return asyncio.Queue(CAPACITY)

    rows = [
        ("burst, 1 thread", "queue.Queue", best_of(repeat, lambda: sync_burst(peer, n))),
        ("burst, 1 thread", "bot4 BoundedQueue", best_of(repeat, lambda: sync_burst(ours, n))),
        ("producer+consumer", "queue.Queue", best_of(repeat, lambda: threaded(peer, n))),
        ("producer+consumer", "bot4 BoundedQueue", best_of(repeat, lambda: threaded(ours, n))),
        ("burst, asyncio", "asyncio.Queue", best_of(repeat, lambda: async_burst(peer_async, n))),
        (
            "burst, asyncio",
            "bot4 AsyncBoundedQueue",
            best_of(repeat, lambda: async_burst(ours_async, n)),
        ),
    ]
    print(f"{n} items per run, best of {repeat}")
    print(f"{'scenario':<20}{'queue':<24}{'items/s':>14}{'ns/item':>10}")
    for scenario, name, seconds in rows:
        print(f"{scenario:<20}{name:<24}{n / seconds:>14,.0f}{seconds / n * 1e9:>10.0f}")
    print()
    for index in range(0, len(rows), 2):
        (scenario, peer_name, peer_s), (_, our_name, our_s) = rows[index], rows[index + 1]
        print(f"{scenario:<20} {our_name} / {peer_name} throughput: {peer_s / our_s:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
