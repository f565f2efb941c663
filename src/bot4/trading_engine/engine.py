"""The engine loop: strategy → queue → gate → risk → rate limit → breaker → venue → fills.

Everything runs on simulated time from the exchange simulator, so the same scenario,
seed and config give the same audit log and summary byte for byte. Each stage is one
of the engine's parts used as in production: a bounded queue with backpressure between
the strategy and routing, the EmotionFreeGate, the single-order risk checker, the
client-side token bucket (the same class the venue uses), and a circuit breaker around
the venue whose outcome for an order is its ack or reject — or the lack of one within
``response_timeout``. The global fuse stops new orders and cancels resting ones.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from bot4.infrastructure.breaker import CircuitBreaker, Guard
from bot4.infrastructure.clock import ManualClock
from bot4.infrastructure.errors import CircuitOpenError, QueueRejectedError
from bot4.infrastructure.fuse import Fuse
from bot4.infrastructure.metrics import Metrics
from bot4.infrastructure.queues import BoundedQueue
from bot4.infrastructure.state import BreakerEvent
from bot4.risk.orders import Order as RiskOrder
from bot4.risk.reasons import Reason as RiskReason
from bot4.risk.single import SingleOrderChecker
from bot4.risk.state import RiskState
from bot4.simulator.orders import TERMINAL, Order, OrderType, RejectReason, ReportKind, Side
from bot4.simulator.rate_limit import TokenBucket
from bot4.simulator.reports import Report
from bot4.simulator.scenario import Scenario
from bot4.trading_engine.audit_log import (
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_CHECKPOINT_INTERVAL_NS,
    AuditLog,
    FsyncPolicy,
)
from bot4.trading_engine.checkpoint import NoteSigner
from bot4.trading_engine.config import EngineConfig
from bot4.trading_engine.emotion_gate import (
    Decision,
    EmotionFreeGate,
    GateMetrics,
    Reason,
    Signal,
)
from bot4.trading_engine.errors import TradingEngineError
from bot4.trading_engine.override import OverrideVerifier
from bot4.trading_engine.strategy import Intent, Quote, Strategy, StrategyContext, load_strategy
from bot4.trading_engine.venue import Venue

log = logging.getLogger(__name__)

_NS_PER_S = 1_000_000_000
# Venue answers that mean "the venue is not serving us", not "this order is wrong".
_VENUE_FAILURES = frozenset(
    {
        RejectReason.EXCHANGE_UNAVAILABLE.value,
        RejectReason.CONNECTION_LOST.value,
        RejectReason.RATE_LIMITED.value,
    }
)

# ``Reason.value`` is an enum descriptor call; the summary counts by the plain string.
_REASON_VALUE = {reason: reason.value for reason in Reason}


class VenueUnavailableError(Exception):
    """Recorded as a breaker failure: the venue refused or did not answer in time."""


@dataclass
class RunSummary:
    """What happened in one run; rendered at the end and compared across runs in tests."""

    seed: int
    simulated_s: float = 0.0
    signals: int = 0
    shed: int = 0
    halted_dropped: int = 0
    gate: Counter[str] = field(default_factory=Counter)
    risk_rejected: Counter[str] = field(default_factory=Counter)
    client_rate_limited: int = 0
    breaker_refused: int = 0
    submitted: int = 0
    acked: int = 0
    venue_rejects: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    submit_errors: int = 0
    resumed: int = 0
    max_queue_depth: int = 0
    fills: int = 0
    cancels_sent: int = 0
    breaker_transitions: list[str] = field(default_factory=list)
    fuse_tripped: bool = False
    drawdown_halt: bool = False
    halted_at_s: float | None = None
    signal_outcomes: int = 0
    equity_start: float = 0.0
    equity_end: float = 0.0
    max_drawdown: float = 0.0
    realized_pnl: float = 0.0
    audit_head: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, key-sorted at dump time."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Counter):
                value = dict(sorted(value.items()))
            elif isinstance(value, list):
                value = list(value)
            data[f.name] = value
        return data

    def render(self) -> str:
        """The human summary printed by ``bot4 run``."""

        def counts(c: Counter[str]) -> str:
            return ", ".join(f"{k}={v}" for k, v in sorted(c.items())) or "none"

        return "\n".join(
            [
                f"simulated      {self.simulated_s:.3f}s (seed {self.seed})",
                f"signals        {self.signals} (shed {self.shed}, "
                f"dropped while halted {self.halted_dropped})",
                f"gate           {counts(self.gate)}",
                f"risk rejects   {counts(self.risk_rejected)}",
                f"client limit   {self.client_rate_limited} · "
                f"breaker refused {self.breaker_refused}",
                f"orders         {self.submitted} sent, {self.acked} acked, {self.fills} fills, "
                f"{self.timeouts} timed out, {self.cancels_sent} cancels",
                f"venue rejects  {counts(self.venue_rejects)}",
                f"breaker        {' → '.join(self.breaker_transitions) or 'closed throughout'}",
                f"halts          fuse {'TRIPPED' if self.fuse_tripped else 'ok'} · "
                f"drawdown {'HALTED' if self.drawdown_halt else 'ok'}",
                f"equity         {self.equity_start:.2f} → {self.equity_end:.2f} "
                f"(realized {self.realized_pnl:+.2f}, max drawdown {self.max_drawdown:.2%})",
                f"evidence       {self.signal_outcomes} signal outcomes measured",
                f"audit head     {self.audit_head or '-'}",
            ]
        )


@dataclass
class _Book:
    """Our position in one instrument."""

    position: float = 0.0
    avg_price: float = 0.0
    bid: float = math.nan
    ask: float = math.nan


@dataclass
class _Pending:
    guard: Guard
    deadline_ns: int
    instrument: str
    side: int


class Engine:
    """One trading session against a venue (the caller builds it: simulator or adapter).

    ``scenario`` describes the instruments traded (symbols, lots); ``venue`` is where orders
    go. For a simulated run, ``venue = ExchangeSimulator(scenario, seed=seed)``.
    """

    def __init__(
        self,
        scenario: Scenario,
        config: EngineConfig,
        *,
        venue: Venue,
        seed: int | None = None,
        audit_path: Path | None = None,
        audit_fsync: FsyncPolicy = FsyncPolicy.INTERVAL,
        audit_signer: NoteSigner | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        checkpoint_interval_ns: int = DEFAULT_CHECKPOINT_INTERVAL_NS,
        metrics: Metrics | None = None,
        strategy: Strategy | None = None,
        override: OverrideVerifier | None = None,
        override_token: str | None = None,
    ) -> None:
        self.scenario = scenario
        self.config = config
        self.seed = scenario.seed if seed is None else seed
        self.venue = venue
        self.metrics = metrics or Metrics()
        # Records carry simulated time: the same seed gives the same log, byte for byte.
        audit_log = (
            AuditLog(
                audit_path,
                fsync=audit_fsync,
                signer=audit_signer,
                checkpoint_every=checkpoint_every,
                checkpoint_interval_ns=checkpoint_interval_ns,
                clock=lambda: self.venue.now,
                on_checkpoint=lambda c: self.metrics.record_checkpoint(
                    c.origin, c.size, c.root.hex()
                ),
            )
            if audit_path is not None
            else None
        )
        self.clock = ManualClock()
        self.fuse = Fuse(config.fuse, clock=self.clock)
        self.breaker = CircuitBreaker("exchange", config.breaker, clock=self.clock, fuse=self.fuse)
        self.metrics.bind_breaker(self.breaker)
        self.metrics.bind_fuse(self.fuse)
        self.queue: BoundedQueue[Signal] = BoundedQueue(
            "signals",
            config.queue.capacity,
            policy="shed" if config.queue.policy == "shed" else "reject",
            clock=self.clock,
        )
        self.metrics.bind_queue(self.queue)
        self.gate = EmotionFreeGate(
            config.gate,
            audit_log=audit_log,
            metrics=GateMetrics(self.metrics.registry),
            override=override,
            clock=lambda: self.venue.now,
        )
        # An operator's override token goes with the one order it names, once.
        self.override_token = override_token
        self.override_claims = (
            override.inspect(override_token)
            if override is not None and override_token is not None
            else None
        )
        self.override_decision: Decision | None = None
        self.audit_log = audit_log
        self.bucket = TokenBucket(
            config.client.capacity, config.client.rate_per_s, clock=lambda: self.venue.now, now=0
        )
        lots = {inst.symbol: float(inst.lot_size) for inst in scenario.instruments}
        self.strategy = strategy or load_strategy(
            config.strategy,
            StrategyContext(tuple(lots), lots, self.seed, dict(config.strategy_params)),
        )
        self.summary = RunSummary(seed=self.seed)
        self._books = {inst.symbol: _Book() for inst in scenario.instruments}
        self._instruments = {inst.symbol: inst for inst in scenario.instruments}
        self._cash = 0.0
        self._pending: dict[int, _Pending] = {}
        self._open: dict[int, str] = {}
        self._outcomes: deque[tuple[int, str, int, float]] = deque()
        self._next_id = 1
        self._risk = self._fresh_risk()
        self._risk_dirty = False
        self._halted = False
        self._closing = False
        self._latencies_ns: list[int] = []
        self.breaker_closed_at_ns: int | None = None
        self.submit_hook: Callable[[Order, int], None] | None = None
        self.breaker.add_listener(self._on_breaker)

    # --- public ---------------------------------------------------------------------------

    def run(
        self,
        duration_ns: int,
        stop: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RunSummary:
        """Run until ``duration_ns`` of simulated time or until ``stop`` is set."""
        step = self.config.step_ns
        self.summary.equity_start = self.equity()
        t = 0
        while t < duration_ns and not (stop is not None and stop.is_set()):
            t = min(t + step, duration_ns)
            self.clock.advance(step / _NS_PER_S)
            self._step(t)
            if progress is not None:
                progress(t, duration_ns)
        # Collect answers still in flight; the strategy gets no more quotes.
        self._closing = True
        for report in self.venue.advance(t + self.config.response_timeout_ns):
            self._on_report(report)
        return self._finish(t)

    @property
    def next_order_id(self) -> int:
        """The id the next order will get (ids are never reused)."""
        return self._next_id

    def equity(self) -> float:
        """Initial equity + cash + positions marked at mid (last known)."""
        value = self.config.initial_equity + self._cash
        for book in self._books.values():
            if book.position:
                mid = (book.bid + book.ask) / 2.0
                value += book.position * (mid if math.isfinite(mid) else book.avg_price)
        return value

    # --- the loop -------------------------------------------------------------------------

    def _step(self, t: int) -> None:
        for report in self.venue.advance(t):
            self._on_report(report)
        self._expire(t)
        self._measure_outcomes(t)
        equity = self.equity()
        if equity > 0:
            self.gate.observe_equity(equity, t)
        if self.gate.halted and not self._halted:
            self.summary.drawdown_halt = True
            self._halt(t, f"drawdown limit {self.config.gate.drawdown_limit:.0%} reached")
        if self.fuse.tripped and not self._halted:
            self._halt(t, f"global fuse tripped: {self.fuse.reason}")
        queue = self.queue
        budget = self.config.max_routes_per_step or queue.depth
        get, latency, route = queue.get, self._latencies_ns.append, self._route
        while queue.depth and budget > 0:
            budget -= 1
            signal = get(timeout=0)
            latency(t - signal.ts_ns)
            route(signal, t)
        self.summary.max_queue_depth = max(self.summary.max_queue_depth, queue.depth)

    def _on_report(self, report: Report) -> None:
        kind = report.kind
        if kind is ReportKind.QUOTE:
            self._on_quote(report)
            return
        if report.account != self.config.account:
            return
        if kind in (ReportKind.ACK, ReportKind.REJECT):
            self._resolve(report)
        if kind is ReportKind.ACK:
            self.summary.acked += 1
            self._open[report.order_id] = report.instrument
        elif kind is ReportKind.REJECT:
            self.summary.venue_rejects[report.reason or "unknown"] += 1
        elif kind is ReportKind.FILL:
            self._on_fill(report)
        if (
            kind in (ReportKind.CANCELLED, ReportKind.REJECT)
            or self.venue.status(report.order_id) in TERMINAL
        ):
            self._open.pop(report.order_id, None)

    def _on_quote(self, report: Report) -> None:
        book = self._books.get(report.instrument)
        if book is None or report.price is None or report.ask is None:
            return
        book.bid, book.ask = float(report.price), float(report.ask)
        quote = Quote(report.instrument, book.bid, book.ask, report.time_ns)
        self.gate.observe_price(report.instrument, quote.mid)
        if self._halted or self._closing:
            return
        for intent in self.strategy.on_quote(quote, book.position):
            self._enqueue(intent, report.time_ns)

    def _enqueue(self, intent: Intent, t: int) -> None:
        self.summary.signals += 1
        oid = self._next_id
        self._next_id += 1
        position = self._books[intent.instrument].position
        reduces = (
            position != 0
            and (position > 0) != (intent.side > 0)
            and intent.quantity <= abs(position)
        )
        signal = Signal(
            str(oid),
            intent.instrument,
            intent.side,
            intent.quantity,
            intent.price,
            t,
            reduces_position=reduces,
        )
        # Every signal's forward return is evidence of the strategy's edge, taken or not.
        self._outcomes.append(
            (t + self.config.signal_horizon_ns, intent.instrument, intent.side, intent.price)
        )
        try:
            shed = self.queue.put(signal, priority=0)
        except QueueRejectedError:
            self.summary.shed += 1
            return
        self.summary.shed += len(shed)

    def _route(self, signal: Signal, t: int) -> None:
        if self._halted:
            self.summary.halted_dropped += 1
            return
        token = None
        claims = self.override_claims
        if (
            claims is not None
            and claims.order_id == signal.order_id
            and self.override_decision is None
        ):
            token = self.override_token
        decision = self.gate.decide(signal, token)
        if token is not None:
            self.override_decision = decision
        self.summary.gate[_REASON_VALUE[decision.reason]] += 1
        if not decision.allowed:
            return
        inst = self._instruments[signal.instrument]
        lots = round(signal.quantity / float(inst.lot_size))
        if lots <= 0:
            self.summary.risk_rejected["below_lot_size"] += 1
            return
        if self._risk_dirty:
            self._risk = self._fresh_risk()
        reason = self._risk.check(
            RiskOrder(
                t,
                self.config.account_id,
                self.config.instrument_ids[signal.instrument],
                signal.side,
                lots,
                signal.price,
            )
        )
        if reason is not RiskReason.ACCEPTED:
            self.summary.risk_rejected[reason.name.lower()] += 1
            return
        if not self.bucket.try_acquire_at(t):
            self.summary.client_rate_limited += 1
            return
        guard = self.breaker.guard()
        try:
            guard.__enter__()
        except CircuitOpenError:
            self.summary.breaker_refused += 1
            return
        oid = int(signal.order_id)
        price = (Decimal(repr(signal.price)) / inst.tick_size).quantize(
            Decimal(1), ROUND_HALF_EVEN
        ) * inst.tick_size
        order = Order(
            oid,
            signal.instrument,
            Side.BUY if signal.side > 0 else Side.SELL,
            Decimal(lots) * inst.lot_size,
            price,
            OrderType.IOC if self.config.order_type == "ioc" else OrderType.LIMIT,
            self.config.account,
        )
        try:
            (self.submit_hook or self._submit)(order, t)
        except Exception as exc:
            # Isolation: the failure is the breaker's to count, not the loop's to die of.
            self.summary.submit_errors += 1
            self.metrics.errors.labels("exchange").inc()
            log.warning("order %d: client stage failed: %s", oid, exc)
            guard.__exit__(type(exc), exc, None)
            return
        self.metrics.requests.inc()
        self.summary.submitted += 1
        self._pending[oid] = _Pending(
            guard, t + self.config.response_timeout_ns, signal.instrument, signal.side
        )

    def _submit(self, order: Order, t: int) -> None:
        self.venue.submit(order, at_ns=t)

    def resume(self, *, by: str, reason: str) -> None:
        """After a fuse trip: reset the fuse (logged, audited) and let orders flow again.

        A drawdown halt is not resumed here: it needs a human review of the strategy.
        """
        if self.gate.halted:
            raise TradingEngineError("drawdown halt: review the strategy; the gate stays halted")
        self.fuse.reset(by=by, reason=reason)
        self._halted = False
        self.summary.resumed += 1
        if self.audit_log is not None:
            self.audit_log.append("resume", {"by": by, "reason": reason, "t": self.venue.now})

    def signal_latency_ns(self, q: float) -> int:
        """The q-quantile of simulated time from a signal to its routing decision."""
        if not self._latencies_ns:
            return 0
        ordered = sorted(self._latencies_ns)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    # --- outcomes -------------------------------------------------------------------------

    def _resolve(self, report: Report) -> None:
        pending = self._pending.pop(report.order_id, None)
        if pending is None:
            return
        if report.time_ns > pending.deadline_ns:  # answered, but later than we wait
            self.summary.timeouts += 1
            self._complete(pending, failed=True, why="timeout")
            return
        failed = report.kind is ReportKind.REJECT and report.reason in _VENUE_FAILURES
        self._complete(pending, failed, report.reason or "")

    def _complete(self, pending: _Pending, failed: bool, why: str) -> None:
        if failed:
            self.metrics.errors.labels("exchange").inc()
            err = VenueUnavailableError(why)
            pending.guard.__exit__(type(err), err, None)
        else:
            pending.guard.__exit__(None, None, None)

    def _expire(self, t: int) -> None:
        late = [oid for oid, p in self._pending.items() if p.deadline_ns <= t]
        for oid in late:
            self.summary.timeouts += 1
            self._complete(self._pending.pop(oid), failed=True, why="timeout")

    def _on_fill(self, report: Report) -> None:
        self.summary.fills += 1
        book = self._books[report.instrument]
        qty = float(report.quantity or 0)
        price = float(report.price or 0)
        sign = 1.0 if report.side is Side.BUY else -1.0
        self._cash -= sign * qty * price + float(report.fee or 0)
        before = book.position
        after = before + sign * qty
        realized = 0.0
        if before and (before > 0) != (sign > 0):  # reducing or flipping
            closed = min(abs(before), qty)
            realized = closed * (price - book.avg_price) * (1.0 if before > 0 else -1.0)
        if after == 0:
            book.avg_price = 0.0
        elif before == 0 or (before > 0) != (after > 0):
            book.avg_price = price
        elif (before > 0) == (sign > 0):
            book.avg_price = (book.avg_price * abs(before) + price * qty) / abs(after)
        book.position = after
        self._risk_dirty = True
        if realized:
            self.summary.realized_pnl += realized
            equity = self.equity()
            if equity > 0:
                self.gate.record_trade(
                    realized / equity,
                    equity,
                    qty,
                    report.instrument,
                    report.time_ns,
                    evidence=False,
                )

    def _measure_outcomes(self, t: int) -> None:
        outcomes = self._outcomes
        if not outcomes or outcomes[0][0] > t:
            return
        books, measured = self._books, []
        while outcomes and outcomes[0][0] <= t:
            _, instrument, side, price = outcomes.popleft()
            book = books[instrument]
            mid = (book.bid + book.ask) / 2.0
            if math.isfinite(mid) and price > 0:
                measured.append(side * (mid - price) / price)
        if measured:  # in order, under one lock: the gate sees them as one step's evidence
            self.gate.record_signal_outcomes(measured)
            self.summary.signal_outcomes += len(measured)

    # --- safety ---------------------------------------------------------------------------

    def _halt(self, t: int, why: str) -> None:
        self._halted = True
        self.summary.halted_at_s = t / _NS_PER_S
        log.warning("trading halted at t=%d: %s", t, why)
        if self.audit_log is not None:
            self.audit_log.append("halt", {"t": t, "reason": why})
        for oid in sorted(self._open):
            if self.venue.status(oid) not in TERMINAL:
                self.venue.cancel(oid, self.config.account, at_ns=t)
                self.summary.cancels_sent += 1
        if self.fuse.tripped:
            self.summary.fuse_tripped = True

    def _on_breaker(self, event: BreakerEvent) -> None:
        if event.kind != "state":
            return
        self.summary.breaker_transitions.append(event.new.value)
        if event.new.value == "closed":
            self.breaker_closed_at_ns = self.venue.now
        if self.audit_log is not None:
            self.audit_log.append(
                "breaker",
                {
                    "component": event.component,
                    "from": event.old.value,
                    "to": event.new.value,
                    "why": event.reason,
                    "error_rate": round(event.error_rate, 6),
                },
            )

    def _fresh_risk(self) -> SingleOrderChecker:
        cfg = self.config
        refs = {cfg.instrument_ids[s]: float(i.initial_mid) for s, i in self._instruments.items()}
        for symbol, book in self._books.items():
            mid = (book.bid + book.ask) / 2.0
            if math.isfinite(mid) and mid > 0:
                refs[cfg.instrument_ids[symbol]] = mid
        positions = {
            (cfg.account_id, cfg.instrument_ids[s]): round(
                b.position / float(self._instruments[s].lot_size)
            )
            for s, b in self._books.items()
            if b.position
        }
        self._risk_dirty = False
        return SingleOrderChecker(cfg.risk, RiskState.initial(cfg.risk, refs, positions))

    def _finish(self, t: int) -> RunSummary:
        s = self.summary
        s.simulated_s = t / _NS_PER_S
        s.equity_end = self.equity()
        s.max_drawdown = self.gate.max_drawdown
        s.fuse_tripped = s.fuse_tripped or self.fuse.tripped
        s.drawdown_halt = s.drawdown_halt or self.gate.halted
        if self.audit_log is not None:
            self.audit_log.append("summary", s.to_json())
            self.audit_log.close()  # signs the tail: the run closed cleanly
            s.audit_head = self.audit_log.head
        return s

    def refuse(self, reason: str, data: Mapping[str, Any]) -> RunSummary:
        """Do not run: audit why (forced to disk), then close the log as an empty run."""
        if self.audit_log is not None:
            self.audit_log.append("run_refused", {"reason": reason, **data}, durable=True)
        self.summary.equity_start = self.equity()
        return self._finish(0)

    def close(self) -> None:
        """Flush and close the audit log (idempotent; ``run`` does it at the end)."""
        if self.audit_log is not None:
            self.audit_log.close()
