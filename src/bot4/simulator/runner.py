"""A whole simulated session: the built-in strategy trading against the venue, and its summary.

The strategy is deliberately simple (random orders near the touch at Poisson times, cancels
or replaces of orders that rested too long) because its job is to exercise every path of
the venue, not to make money. It sees the market only through delivered QUOTE reports, as
a real client would.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from bot4.simulator.exchange import ExchangeSimulator
from bot4.simulator.orders import Order, OrderType, ReportKind, Side
from bot4.simulator.reports import Report
from bot4.simulator.rng import stream
from bot4.simulator.scenario import Scenario

_NS_PER_S = 1_000_000_000
_RESPONSES = frozenset({ReportKind.ACK, ReportKind.REJECT})


@dataclass
class Summary:
    """Counts and latencies of one run, built from the reports the participant received."""

    orders: int = 0
    acks: int = 0
    fills: int = 0
    partial_fills: int = 0
    filled_orders: int = 0
    replaces: int = 0
    cancels_sent: int = 0
    cancels_lost: int = 0
    volume: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    market_data: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    cancel_rejects: Counter[str] = field(default_factory=Counter)
    cancelled: Counter[str] = field(default_factory=Counter)
    latencies_ns: list[int] = field(default_factory=list)
    outage_ns: int = 0
    end_ns: int = 0

    def observe(self, report: Report, sent_at: dict[int, int]) -> None:
        """Account for one delivered report; ``sent_at`` maps order id → send time."""
        kind = report.kind
        if kind in (ReportKind.TRADE, ReportKind.QUOTE):
            self.market_data += 1
            return
        if kind in _RESPONSES:
            sent = sent_at.pop(report.order_id, None)
            if sent is not None:
                self.latencies_ns.append(report.time_ns - sent)
        if kind is ReportKind.ACK:
            self.acks += 1
        elif kind is ReportKind.FILL:
            self.fills += 1
            self.volume += report.quantity or 0
            self.fees += report.fee or 0
            if report.leaves:
                self.partial_fills += 1
            else:
                self.filled_orders += 1
        elif kind is ReportKind.REJECT:
            self.rejects[str(report.reason)] += 1
        elif kind is ReportKind.CANCEL_REJECT:
            self.cancel_rejects[str(report.reason)] += 1
            if report.reason == "too_late_to_cancel":
                self.cancels_lost += 1
        elif kind is ReportKind.CANCELLED:
            self.cancelled[str(report.reason)] += 1
        elif kind is ReportKind.REPLACED:
            self.replaces += 1

    def percentile_us(self, q: float) -> float:
        """Latency percentile (nearest rank) from send to first answer, in microseconds."""
        if not self.latencies_ns:
            return 0.0
        data = sorted(self.latencies_ns)
        rank = min(len(data) - 1, max(0, round(q / 100 * len(data) + 0.5) - 1))
        return data[rank] / 1_000

    def format(self) -> str:
        """Human-readable summary, one fact per line."""

        def counts(c: Counter[str]) -> str:
            return ", ".join(f"{k}={v}" for k, v in sorted(c.items())) or "none"

        return "\n".join(
            [
                f"simulated      {self.end_ns / _NS_PER_S:.3f}s",
                f"orders         {self.orders} sent, {self.acks} acked",
                f"fills          {self.fills} ({self.partial_fills} partial, "
                f"{self.filled_orders} completing an order)",
                f"volume         {self.volume} (fees {self.fees.normalize():f})",
                f"rejects        {sum(self.rejects.values())}: {counts(self.rejects)}",
                f"cancelled      {sum(self.cancelled.values())}: {counts(self.cancelled)}",
                f"cancel rejects {sum(self.cancel_rejects.values())}: "
                + counts(self.cancel_rejects),
                f"cancels lost   {self.cancels_lost} of {self.cancels_sent} sent",
                f"replaces       {self.replaces}",
                f"outage time    {self.outage_ns / _NS_PER_S:.3f}s",
                f"market data    {self.market_data} messages",
                "latency        p50={:.1f}µs p90={:.1f}µs p99={:.1f}µs max={:.1f}µs".format(
                    *(self.percentile_us(q) for q in (50, 90, 99, 100))
                ),
            ]
        )


class RandomStrategy:
    """Random orders near the touch; cancels or replaces orders resting longer than a limit."""

    def __init__(self, sim: ExchangeSimulator, scenario: Scenario, rng: random.Random) -> None:
        self.sim = sim
        self.cfg = scenario.strategy
        self.instrument = scenario.instruments[0]
        self.rng = rng
        mid = self.instrument.initial_mid
        self.bid: Decimal = mid - self.instrument.tick_size
        self.ask: Decimal = mid + self.instrument.tick_size
        self.resting: dict[int, int] = {}  # order id -> time it was acked
        self.sent_at: dict[int, int] = {}
        self.next_id = 1
        self.cancels_sent = 0

    def on_report(self, report: Report) -> None:
        """Track the top of book and which of our orders are resting."""
        if report.instrument != self.instrument.symbol:
            return
        kind = report.kind
        if kind is ReportKind.QUOTE:
            if report.price is not None:
                self.bid = report.price
            if report.ask is not None:
                self.ask = report.ask
        elif kind is ReportKind.ACK:
            self.resting[report.order_id] = report.time_ns
        elif kind is ReportKind.CANCELLED or (kind is ReportKind.FILL and not report.leaves):
            self.resting.pop(report.order_id, None)

    def act(self, now: int) -> None:
        """Send one new order, and a cancel or replace for the oldest stale resting order."""
        cfg, rng, inst = self.cfg, self.rng, self.instrument
        stale_before = now - round(cfg.cancel_after_s * _NS_PER_S)
        for order_id, acked in list(self.resting.items()):
            if acked > stale_before:
                break
            del self.resting[order_id]
            if rng.random() < cfg.replace_fraction:
                new_price = self.bid if rng.random() < 0.5 else self.ask
                new_qty = inst.lot_size * (1 + int(rng.expovariate(1.0 / cfg.mean_size_lots)))
                self.sim.cancel_replace(order_id, new_price, new_qty, cfg.account, now)
            else:
                self.sim.cancel(order_id, cfg.account, now)
                self.cancels_sent += 1
            break
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        draw = rng.random()
        offset = inst.tick_size * rng.randint(0, cfg.max_offset_ticks)
        qty = inst.lot_size * (1 + int(rng.expovariate(1.0 / cfg.mean_size_lots)))
        price: Decimal | None
        if draw < cfg.market_fraction:
            kind, price = OrderType.MARKET, None
        elif draw < cfg.market_fraction + cfg.ioc_fraction:
            kind = OrderType.IOC
            price = self.ask + offset if side is Side.BUY else self.bid - offset
        else:
            kind = OrderType.LIMIT
            price = self.bid - offset if side is Side.BUY else self.ask + offset
        order = Order(self.next_id, inst.symbol, side, qty, price, kind, cfg.account)
        self.sent_at[order.order_id] = now
        self.next_id += 1
        self.sim.submit(order, now)


def run_session(
    scenario: Scenario,
    *,
    seed: int | None = None,
    orders: int | None = None,
    sink: Callable[[Report], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Run the built-in strategy for ``orders`` orders (default: the scenario's duration)."""
    seed_ = scenario.seed if seed is None else seed
    rate = scenario.strategy.order_rate
    total = orders if orders is not None else max(1, round(scenario.duration_s * rate))
    horizon = max(round(scenario.duration_s * _NS_PER_S), round(total / rate * _NS_PER_S))
    summary = Summary()
    sim = ExchangeSimulator(scenario, seed=seed_, sink=sink, horizon_ns=horizon)
    rng = stream(seed_, "strategy")
    strategy = RandomStrategy(sim, scenario, rng)
    step = max(1, total // 100)
    t = 0
    for i in range(total):
        t += max(1, round(rng.expovariate(rate) * _NS_PER_S))
        for report in sim.advance(t):
            strategy.on_report(report)
            summary.observe(report, strategy.sent_at)
        strategy.act(t)
        if progress is not None and (i + 1) % step == 0:
            progress(i + 1, total)
    for report in sim.drain():
        summary.observe(report, strategy.sent_at)
    summary.orders = total
    summary.cancels_sent = strategy.cancels_sent
    summary.outage_ns = sim.outage_ns()
    summary.end_ns = sim.now
    return summary
