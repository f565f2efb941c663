"""Orders per second through the matching engine with partial fills on, one core.

Run: .venv/bin/python benchmarks/simulator/bench_matching.py [--quick]

Two figures: the whole ``ExchangeSimulator`` (latency, rate limiting, validation, reports,
market data) — what a user runs, against the goal of 300k orders/s — and the bare
``OrderBook`` (price-time matching, partial fills, rests, cancels) against its goal of 1M, so
the cost of the venue around the book is visible. ``benchmarks/suite.py`` times both against
the pre-optimisation implementation in the same run. The order stream is seeded and
generated before timing starts; it mixes resting limits, marketable limits that partially
fill and rest, IOCs, market orders and cancels.
"""

from __future__ import annotations

import argparse
import random
import time
from decimal import Decimal
from typing import Any

from bot4.simulator import ExchangeSimulator, Order, OrderType, Side, parse_scenario
from bot4.simulator.book import OrderBook
from bot4.simulator.orders import TimeInForce

GOAL = 300_000  # the venue
BOOK_GOAL = 1_000_000
Row = tuple[int, int, int, int, int]  # order_id, side, price, qty, tif (-1 = cancel)


def order_stream(n: int, seed: int = 1) -> list[Row]:
    rng = random.Random(seed)  # noqa: S311 - seeded benchmark data
    rows: list[Row] = []
    live: list[int] = []
    for oid in range(1, n + 1):
        if live and rng.random() < 0.15:
            victim = live.pop(rng.randrange(len(live)))
            rows.append((victim, 0, 0, 0, -1))
        side = 1 if rng.random() < 0.5 else -1
        draw = rng.random()
        if draw < 0.05:
            tif = int(TimeInForce.MARKET)
        elif draw < 0.20:
            tif = int(TimeInForce.IOC)
        else:
            tif = int(TimeInForce.GTC)
            live.append(oid)
        # centred on 10_000 ticks: about half the limits cross and partially fill
        price = 10_000 + side * rng.randint(-4, 8) * -1
        rows.append((oid, side, price, rng.randint(1, 12), tif))
    return rows


def bench_book(rows: list[Row]) -> tuple[float, int, int, int]:
    book = OrderBook()
    submit, cancel = book.submit, book.cancel
    fills = partial = orders = 0
    start = time.perf_counter()
    for oid, side, price, qty, tif in rows:
        if tif < 0:
            cancel(oid)
            continue
        orders += 1
        res = submit(oid, side, price, qty, tif)
        if res.fills:
            fills += len(res.fills)
            if res.remaining:
                partial += 1
    elapsed = time.perf_counter() - start
    if book.is_crossed():
        raise SystemExit("book crossed: the benchmark found a matching bug")
    return orders / elapsed, orders, fills, partial


# One instrument, fixed latencies, no rate limit in the way: the venue's own cost.
VENUE_SCENARIO: dict[str, Any] = {
    "instrument": [
        {
            "symbol": "X",
            "tick_size": "1",
            "lot_size": "1",
            "initial_mid": "10000",
            "flow": {"arrival_rate": 1e-9},
        }
    ],
    "latency": {"submit": {"value": 50}, "ack": {"value": 50}},
    "rate_limits": {"order": {"capacity": 1e12, "rate": 1e12}},
    "matching": {"self_trade_prevention": "off"},
}
KINDS = {
    int(TimeInForce.GTC): OrderType.LIMIT,
    int(TimeInForce.IOC): OrderType.IOC,
    int(TimeInForce.MARKET): OrderType.MARKET,
}


def bench_exchange(n: int) -> tuple[float, int]:
    sim = ExchangeSimulator(parse_scenario(VENUE_SCENARIO))
    rows = [r for r in order_stream(n, seed=2) if r[4] >= 0]
    orders = [
        Order(
            oid,
            "X",
            Side.BUY if side > 0 else Side.SELL,
            Decimal(qty),
            None if tif == TimeInForce.MARKET else Decimal(price),
            KINDS[tif],
            "a" if oid % 2 else "b",
        )
        for oid, side, price, qty, tif in rows
    ]
    reports = 0
    start = time.perf_counter()
    t = 0
    for order in orders:
        t += 1_000
        sim.submit(order, t)
        reports += len(sim.advance(t))
    reports += len(sim.drain())
    return len(orders) / (time.perf_counter() - start), reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run for a smoke check")
    args = parser.parse_args()
    n, repeats, n_ex = (50_000, 1, 5_000) if args.quick else (500_000, 3, 50_000)
    rows = order_stream(n)
    best = max((bench_book(rows) for _ in range(repeats)), key=lambda r: r[0])
    rate, orders, fills, partial = best
    ex_rate, reports = bench_exchange(n_ex)
    print(f"{'path':<44} {'orders/s':>12}")
    print(f"{'OrderBook.submit (partial fills on)':<44} {rate:12,.0f}")
    print(f"{'ExchangeSimulator submit+advance (full venue)':<44} {ex_rate:12,.0f}")
    print()
    print(f"book: {orders:,} orders, {fills:,} fills, {partial:,} partially filled on arrival")
    print(f"exchange: {reports:,} reports delivered")
    print(
        f"ExchangeSimulator / goal {GOAL:,}: {ex_rate / GOAL:.2f}x "
        f"({'met' if ex_rate >= GOAL else 'NOT met'})"
    )
    print(
        f"OrderBook / goal {BOOK_GOAL:,}: {rate / BOOK_GOAL:.2f}x "
        f"({'met' if rate >= BOOK_GOAL else 'NOT met'})"
    )
    print(f"OrderBook / ExchangeSimulator: {rate / ex_rate:.1f}x")


if __name__ == "__main__":
    main()
