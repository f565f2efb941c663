"""The exchange simulator: what a trading engine talks to as it would to a real venue.

The participant calls :meth:`ExchangeSimulator.submit`, :meth:`~ExchangeSimulator.cancel` and
:meth:`~ExchangeSimulator.cancel_replace` at a simulated time ``t``; requests reach the venue
at ``t`` + request latency (in order, as on one TCP session), are rate limited, validated and
matched there, and reports come back at venue time + report latency. Synthetic or replayed
market flow trades in the same books. :meth:`~ExchangeSimulator.advance` runs the event queue
to a time and returns the reports delivered by then.

Every random draw comes from a stream derived from the scenario seed and the component's
name, so adding flow to one instrument does not change another's draws, and one seed always
gives one event log.

Why the hot path looks the way it does: a participant order costs an event, a match and three
or so reports, so reports are built positionally once their delivery time is known (no
closures), events are pushed onto the queue's heap directly, outage lookups are skipped when
the run has no outages, and tick/lot conversions of repeated prices are cached. The frozen
pre-optimisation copy in ``tests/bot4/simulator/reference`` is the oracle: a property test
compares the two event logs report for report.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from heapq import heappop, heappush
from typing import cast

from bot4.simulator.book import Fill, OrderBook
from bot4.simulator.clock import EventQueue
from bot4.simulator.errors import SimulatorError
from bot4.simulator.market_data import (
    FlowAction,
    FlowArrival,
    FlowGenerator,
    ReplayEvent,
    ReplayKind,
    load_replay_csv,
)
from bot4.simulator.orders import (
    TERMINAL,
    CancelReason,
    Order,
    OrderStatus,
    OrderType,
    RejectReason,
    ReportKind,
    Side,
    TimeInForce,
)
from bot4.simulator.outage import OutageKind, OutageSchedule
from bot4.simulator.rate_limit import RateLimiter
from bot4.simulator.reports import Report
from bot4.simulator.rng import stream
from bot4.simulator.scenario import Instrument, Scenario

log = logging.getLogger(__name__)

_NS_PER_S = 1_000_000_000
_BPS = Decimal(10_000)

# Internal event kinds, in the order they run when due at the same nanosecond and
# scheduled in the same order (the sequence number breaks ties, not the kind).
_EV_REQUEST = 0
_EV_FLOW = 1
_EV_REPLAY = 2
_EV_PULL = 3
_EV_DELIVER = 4

_SUBMIT, _CANCEL, _REPLACE = "submit", "cancel", "replace"
_MD_CHANNEL = "\x00market-data"  # FIFO key for market data (not a valid account name)
_REJECT_KIND = {
    _SUBMIT: ReportKind.REJECT,
    _CANCEL: ReportKind.CANCEL_REJECT,
    _REPLACE: ReportKind.REPLACE_REJECT,
}
_UNIT_CACHE_MAX = 65_536  # distinct prices/sizes remembered per instrument before a reset


class _OrderState:
    """Mutable lifecycle of one participant order, kept for reports and invariant checks."""

    __slots__ = ("filled", "leaves", "order", "price_ticks", "status", "venue")

    def __init__(self, order: Order) -> None:
        self.order = order
        self.status = OrderStatus.PENDING
        self.filled = 0
        self.leaves = 0
        self.price_ticks = 0
        self.venue: _Venue | None = None


class _Venue:
    """One instrument's book, market flow and published top of book."""

    __slots__ = (
        "book",
        "flow",
        "instrument",
        "last_quote",
        "lot",
        "lots_of",
        "replay",
        "replay_ids",
        "synthetic",
        "tick",
        "ticks_of",
    )

    def __init__(self, instrument: Instrument, book: OrderBook, flow: FlowGenerator | None) -> None:
        self.instrument = instrument
        self.book = book
        self.flow = flow
        self.tick = instrument.tick_size
        self.lot = instrument.lot_size
        self.synthetic: deque[int] = deque()
        self.last_quote: tuple[int | None, int, int | None, int] = (None, 0, None, 0)
        self.replay: tuple[ReplayEvent, ...] = ()
        self.replay_ids = {1: 0, -1: 0}
        self.ticks_of: dict[Decimal, int | None] = {}  # price → whole ticks (None: off-grid)
        self.lots_of: dict[Decimal, int | None] = {}


class _Request:
    """One request on its way to the venue (a plain slotted class: built once per order)."""

    __slots__ = ("account", "duplicate", "kind", "order", "order_id", "price", "quantity")

    def __init__(
        self,
        kind: str,
        account: str,
        order: Order | None = None,
        order_id: int = 0,
        duplicate: bool = False,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> None:
        self.kind = kind
        self.account = account
        self.order = order
        self.order_id = order_id
        self.duplicate = duplicate
        self.price = price
        self.quantity = quantity


class ExchangeSimulator:
    """A seeded, deterministic venue; see the module docstring for the life of a request.

    ``sink`` receives every report at delivery, in order (the CLI writes the event log from
    it). ``horizon_ns`` bounds random outages (default: the scenario's duration).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int | None = None,
        sink: Callable[[Report], None] | None = None,
        horizon_ns: int | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self._sink = sink
        self._queue = EventQueue()
        self._outbox: list[Report] = []
        self._orders: dict[int, _OrderState] = {}
        self._last_arrival: dict[str, int] = {}
        self._last_delivery: dict[str, int] = {}
        self._trade_id = 0
        self._synthetic_id = 0
        seed_ = self.seed
        lat = scenario.latency
        self._lat_submit = lat.submit.sampler(stream(seed_, "latency.submit"))
        self._lat_cancel = lat.cancel.sampler(stream(seed_, "latency.cancel"))
        self._lat_ack = lat.ack.sampler(stream(seed_, "latency.ack"))
        self._lat_md = lat.market_data.sampler(stream(seed_, "latency.market_data"))
        self._fill_rng = stream(seed_, "fill_model")
        self._partial_fills = scenario.fill_model.partial_fills
        self._pull_probability = scenario.cancel.pull_probability
        self._cancel_rng = stream(seed_, "cancel_model")
        self._limiter = RateLimiter(dict(scenario.rate_limits))
        self.horizon_ns = (
            round(scenario.duration_s * _NS_PER_S) if horizon_ns is None else horizon_ns
        )
        windows = scenario.outages.materialize(self.horizon_ns, stream(seed_, "outages"))
        self.outages = OutageSchedule(windows)
        self._any_outage = bool(windows)
        self._slow_factor = scenario.outages.slow_factor
        self._venues: dict[str, _Venue] = {}
        fm = scenario.fill_model
        for inst in scenario.instruments:
            book = OrderBook(
                self_trade_prevention=scenario.self_trade_prevention,
                touch_probability=fm.prob_fill_at_touch,
                rng=stream(seed_, f"book:{inst.symbol}"),
            )
            if inst.replay is None:
                mid = float(inst.initial_mid / inst.tick_size)
                flow = FlowGenerator(inst.flow, mid, stream(seed_, f"flow:{inst.symbol}"))
                venue = _Venue(inst, book, flow)
                self._schedule_flow(venue, flow)
            else:
                venue = _Venue(inst, book, None)
                venue.replay = load_replay_csv(inst.replay, inst.tick_size, inst.lot_size)
                if venue.replay:
                    self._queue.schedule(venue.replay[0].time_ns, _EV_REPLAY, (venue, 0))
            self._venues[inst.symbol] = venue
        for window in windows:
            for t, status in ((window.start_ns, "down"), (window.end_ns, "up")):
                report = Report(
                    t, t, ReportKind.VENUE_STATUS, reason=window.kind.value, status=status
                )
                self._queue.schedule(t, _EV_DELIVER, report)

    # ----------------------------------------------------------------- public API
    @property
    def now(self) -> int:
        """Current simulated time in nanoseconds."""
        return self._queue.now

    def status(self, order_id: int) -> OrderStatus | None:
        """Lifecycle state of a participant order as the venue sees it (None if unknown)."""
        state = self._orders.get(order_id)
        return None if state is None else state.status

    def filled(self, order_id: int) -> Decimal:
        """Quantity filled so far for a participant order (0 if unknown)."""
        state = self._orders.get(order_id)
        if state is None or state.venue is None:
            return Decimal(0)
        return state.filled * state.venue.lot

    def order_ids(self) -> list[int]:
        """Ids of every participant order the venue has tracked."""
        return list(self._orders)

    def best_bid_ask(self, symbol: str) -> tuple[Decimal | None, Decimal | None]:
        """The venue's true top of book now (participants see it via QUOTE reports)."""
        venue = self._venue(symbol)
        bid, ask = venue.book.best_bid(), venue.book.best_ask()
        return (
            None if bid is None else bid * venue.tick,
            None if ask is None else ask * venue.tick,
        )

    def book(self, symbol: str) -> OrderBook:
        """The live book of ``symbol`` (for inspection and invariant checks)."""
        return self._venue(symbol).book

    def outage_ns(self) -> int:
        """Total outage time within the horizon, overlapping windows counted once."""
        return self.outages.total_ns(self.horizon_ns)

    def submit(self, order: Order, at_ns: int | None = None) -> None:
        """Send a new order at ``at_ns`` (default: now); the answer arrives as reports."""
        t = self._send_time(at_ns)
        order_id = order.order_id
        if order_id in self._orders:
            # The venue rejects it on arrival; the original order's state is left alone.
            self._request(t, _Request(_SUBMIT, order.account, order, order_id, True))
            return
        self._orders[order_id] = _OrderState(order)
        if self._any_outage:
            self._request(t, _Request(_SUBMIT, order.account, order, order_id))
            return
        # _request's common case, inlined: this runs once per order.
        account = order.account
        arrival = t + self._lat_submit()
        last_arrival = self._last_arrival
        last = last_arrival.get(account, 0)
        if arrival < last:  # noqa: PLR1730 - a compare is cheaper than max()
            arrival = last
        last_arrival[account] = arrival
        queue = self._queue
        queue.seq += 1
        heappush(
            queue.heap,
            (arrival, queue.seq, _EV_REQUEST, _Request(_SUBMIT, account, order, order_id)),
        )

    def cancel(self, order_id: int, account: str = "default", at_ns: int | None = None) -> None:
        """Ask the venue to cancel a resting order."""
        t = self._send_time(at_ns)
        self._request(t, _Request(_CANCEL, account, order_id=order_id))

    def cancel_replace(
        self,
        order_id: int,
        price: Decimal,
        quantity: Decimal,
        account: str = "default",
        at_ns: int | None = None,
    ) -> None:
        """Replace a resting limit order's price and open quantity (its new leaves).

        Lowering the quantity at the same price keeps the order's queue position; any
        other change re-enters it at the back of the queue and it may trade at once.
        """
        t = self._send_time(at_ns)
        self._request(
            t, _Request(_REPLACE, account, order_id=order_id, price=price, quantity=quantity)
        )

    def advance(self, until_ns: int) -> list[Report]:
        """Run every event due at or before ``until_ns``; return the reports delivered."""
        if until_ns < self._queue.now:
            raise SimulatorError(
                f"cannot advance to {until_ns}ns: the simulation is already at {self._queue.now}ns"
            )
        queue = self._queue
        heap, outbox, sink = queue.heap, self._outbox, self._sink
        while heap and heap[0][0] <= until_ns:
            due, _, kind, payload = heappop(heap)
            queue.now = due
            if kind == _EV_DELIVER:
                outbox.append(payload)
                if sink is not None:
                    sink(payload)
            elif kind == _EV_FLOW:
                self._on_flow(payload)
            elif kind == _EV_REQUEST:
                self._on_request(payload)
            elif kind == _EV_REPLAY:
                self._on_replay(*payload)
            else:
                self._on_pull(payload)
        queue.now = until_ns
        out, self._outbox = self._outbox, []
        return out

    def drain(self) -> list[Report]:
        """Deliver everything still owed to the participant (flow stops being generated).

        Synthetic flow reschedules itself forever, so draining runs only requests, pulls
        and deliveries; use it at the end of a run so no report stays in flight.
        """
        out: list[Report] = []
        while True:
            last = self._queue.last_due(exclude=(_EV_FLOW, _EV_REPLAY))
            if last is None:
                return out
            out.extend(self.advance(last))

    # ------------------------------------------------------------------ plumbing
    def _venue(self, symbol: str) -> _Venue:
        venue = self._venues.get(symbol)
        if venue is None:
            raise SimulatorError(
                f"unknown instrument {symbol!r}; the scenario has {', '.join(self._venues)}"
            )
        return venue

    def _send_time(self, at_ns: int | None) -> int:
        now = self._queue.now
        if at_ns is None:
            return now
        if at_ns < now:
            raise SimulatorError(
                f"cannot send at {at_ns}ns: the simulation is already at {now}ns; "
                "send at the current time or later"
            )
        return at_ns

    def _slow(self, t: int, latency: int) -> int:
        if self.outages.active_until(t, OutageKind.SLOW_RESPONSES):
            return round(latency * self._slow_factor)
        return latency

    def _request(self, t: int, request: _Request) -> None:
        latency = (self._lat_cancel if request.kind == _CANCEL else self._lat_submit)()
        arrival = t + (self._slow(t, latency) if self._any_outage else latency)
        account = request.account
        last = self._last_arrival.get(account, 0)
        if arrival < last:  # noqa: PLR1730 - one session: requests arrive in the order sent
            arrival = last
        self._last_arrival[account] = arrival
        self._push(arrival, _EV_REQUEST, request)

    def _push(self, due: int, kind: int, payload: object) -> None:
        """``EventQueue.schedule`` without its checks: every caller's ``due`` is ≥ now."""
        queue = self._queue
        queue.seq += 1
        heappush(queue.heap, (due, queue.seq, kind, payload))

    def _delivery(self, channel: str, report_at: int) -> int:
        """When a report sent at ``report_at`` reaches ``channel``: latency, FIFO, held in drops."""
        latency = self._lat_md() if channel == _MD_CHANNEL else self._lat_ack()
        if self._any_outage:
            deliver = report_at + self._slow(report_at, latency)
            dropped_until = self.outages.active_until(report_at, OutageKind.CONNECTION_DROP)
            if dropped_until:
                deliver = max(deliver, dropped_until + latency)
        else:
            deliver = report_at + latency
        last = self._last_delivery.get(channel, 0)
        if deliver < last:  # noqa: PLR1730 - a compare is cheaper than max()
            deliver = last
        self._last_delivery[channel] = deliver
        return deliver

    def _report(
        self,
        kind: ReportKind,
        state: _OrderState,
        now: int,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
        leaves: Decimal | None = None,
        fee: Decimal | None = None,
        liquidity: str | None = None,
        reason: str | None = None,
        trade_id: int = 0,
    ) -> None:
        order = state.order
        account = order.account
        if self._any_outage or account == _MD_CHANNEL:
            t = self._delivery(account, now)
        else:  # _delivery's common case, inlined: this runs for every ack and fill
            t = now + self._lat_ack()
            last_delivery = self._last_delivery
            last = last_delivery.get(account, 0)
            if t < last:  # noqa: PLR1730 - a compare is cheaper than max()
                t = last
            last_delivery[account] = t
        report = Report(
            t,
            now,
            kind,
            order.instrument,
            order.order_id,
            account,
            order.side,
            price,
            quantity,
            leaves,
            fee,
            liquidity,
            reason,
            trade_id,
        )
        queue = self._queue
        queue.seq += 1
        heappush(queue.heap, (t, queue.seq, _EV_DELIVER, report))

    def _reject(self, request: _Request, reason: RejectReason, now: int) -> None:
        kind = _REJECT_KIND[request.kind]
        state = self._orders.get(request.order_id)
        if request.kind == _SUBMIT and state is not None and not request.duplicate:
            state.status = OrderStatus.REJECTED
        order_id, account = request.order_id, request.account
        instrument = "" if request.order is None else request.order.instrument
        hold = 0
        if reason is RejectReason.CONNECTION_LOST:
            hold = self.outages.active_until(now, OutageKind.CONNECTION_DROP)
        t = self._delivery(account, max(now, hold))
        report = Report(t, now, kind, instrument, order_id, account, reason=reason.value)
        self._push(t, _EV_DELIVER, report)

    # ---------------------------------------------------------- request handling
    def _on_request(self, request: _Request) -> None:
        now = self._queue.now
        if self._any_outage:
            if self.outages.active_until(now, OutageKind.CONNECTION_DROP):
                self._reject(request, RejectReason.CONNECTION_LOST, now)
                return
            if self.outages.active_until(now, OutageKind.REJECT_ALL):
                self._reject(request, RejectReason.EXCHANGE_UNAVAILABLE, now)
                return
        endpoint = "cancel" if request.kind == _CANCEL else "order"
        if not self._limiter.allow(request.account, endpoint, now):
            self._reject(request, RejectReason.RATE_LIMITED, now)
            return
        if request.kind == _SUBMIT:
            self._on_submit(request, now)
        elif request.kind == _CANCEL:
            self._on_cancel(request, now)
        else:
            self._on_replace(request, now)

    @staticmethod
    def _units(value: Decimal, step: Decimal, cache: dict[Decimal, int | None]) -> int | None:
        """A positive finite ``value`` as a whole number of ``step``s, or None if it is not one.

        The answer depends only on the numeric value, so it is cached per instrument.
        """
        units = cache.get(value, -1)
        if units != -1:
            return units
        quotient = value / step
        units = None if quotient != quotient.to_integral_value() else int(quotient)
        if len(cache) >= _UNIT_CACHE_MAX:
            cache.clear()
        cache[value] = units
        return units

    def _validate(
        self, venue: _Venue, price: Decimal | None, quantity: Decimal, order_type: OrderType
    ) -> tuple[RejectReason | None, int, int]:
        if not isinstance(quantity, Decimal) or not quantity.is_finite() or quantity <= 0:
            return RejectReason.INVALID_QUANTITY, 0, 0
        lots = self._units(quantity, venue.lot, venue.lots_of)
        if lots is None:
            return RejectReason.INVALID_LOT, 0, 0
        if order_type is OrderType.MARKET:
            if price is not None:
                return RejectReason.INVALID_PRICE, 0, 0
            return None, 0, lots
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            return RejectReason.INVALID_PRICE, 0, 0
        ticks = self._units(price, venue.tick, venue.ticks_of)
        if ticks is None:
            return RejectReason.INVALID_TICK, 0, 0
        return None, ticks, lots

    def _on_submit(self, request: _Request, now: int) -> None:
        order = cast("Order", request.order)  # submit requests always carry one
        state = self._orders[order.order_id]
        if request.duplicate:
            self._reject(request, RejectReason.DUPLICATE_ORDER_ID, now)
            return
        if order.order_id <= 0:
            self._reject(request, RejectReason.INVALID_ORDER_ID, now)
            return
        venue = self._venues.get(order.instrument)
        if venue is None:
            self._reject(request, RejectReason.UNKNOWN_INSTRUMENT, now)
            return
        reason, ticks, lots = self._validate(venue, order.price, order.quantity, order.order_type)
        if reason is not None:
            self._reject(request, reason, now)
            return
        sign = 1 if order.side is Side.BUY else -1
        order_type = order.order_type
        if order_type is OrderType.MARKET:
            book = venue.book
            if (book.best_ask() if sign > 0 else book.best_bid()) is None:
                self._reject(request, RejectReason.NO_LIQUIDITY, now)
                return
        state.venue = venue
        state.price_ticks = ticks
        state.leaves = lots
        state.status = OrderStatus.OPEN
        self._report(ReportKind.ACK, state, now, order.price, order.quantity)
        tif = _TIF_INT[order_type]
        if self._partial_fills:
            self._match(venue, state, sign, ticks, lots, tif, now)
        else:
            self._execute(venue, state, sign, ticks, lots, tif, now)

    def _execute(
        self,
        venue: _Venue,
        state: _OrderState,
        sign: int,
        ticks: int,
        lots: int,
        tif: int,
        now: int,
    ) -> None:
        """Match an accepted order, or fill it all at once when partial fills are off."""
        book = venue.book
        opposite = book.best_ask() if sign > 0 else book.best_bid()
        if (
            opposite is not None
            and not self.scenario.fill_model.partial_fills
            and (
                tif == TimeInForce.MARKET or (opposite <= ticks if sign > 0 else opposite >= ticks)
            )
        ):
            self._fill_all_at_once(venue, state, sign, tif, opposite, now)
            return
        self._match(venue, state, sign, ticks, lots, tif, now)

    def _match(
        self,
        venue: _Venue,
        state: _OrderState,
        sign: int,
        ticks: int,
        lots: int,
        tif: int,
        now: int,
    ) -> None:
        order = state.order
        result = venue.book.submit(
            order.order_id, sign, ticks, lots, tif, order.account, participant=True
        )
        if result.pulled:
            for maker_id in result.pulled:
                self._cancelled(self._orders[maker_id], CancelReason.SELF_TRADE, now)
        if result.fills:
            self._apply_fills(venue, sign, result.fills, now, taker_state=state)
        if result.rested:
            if self._pull_probability:
                self._maybe_schedule_pull(state, now)
        elif state.leaves:
            reason = CancelReason.SELF_TRADE if result.stp_cancelled else CancelReason.IOC_REMAINDER
            self._cancelled(state, reason, now)
        self._publish_quote(venue, now)

    def _fill_all_at_once(
        self, venue: _Venue, state: _OrderState, sign: int, tif: int, touch: int, now: int
    ) -> None:
        """partial_fills off: the whole order fills at the touch (plus slippage) in one trade."""
        fm = self.scenario.fill_model
        price = touch
        if fm.prob_slippage and self._fill_rng.random() < fm.prob_slippage:
            price += sign * fm.slippage_ticks
            if tif != TimeInForce.MARKET:
                price = min(price, state.price_ticks) if sign > 0 else max(price, state.price_ticks)
        self._trade(venue, state, state.leaves, price, "taker", sign, now)
        self._publish_quote(venue, now)

    def _apply_fills(
        self,
        venue: _Venue,
        taker_sign: int,
        fills: list[Fill],
        now: int,
        taker_state: _OrderState | None = None,
    ) -> None:
        orders = self._orders
        partial_off = not self.scenario.fill_model.partial_fills
        for maker_id, price, qty, maker_left in fills:
            self._trade_id += 1
            trade_id = self._trade_id
            maker_state = orders.get(maker_id) if maker_id > 0 else None
            if maker_state is not None:
                self._trade(venue, maker_state, qty, price, "maker", taker_sign, now, trade_id)
            if taker_state is not None:
                self._trade(venue, taker_state, qty, price, "taker", taker_sign, now, trade_id)
            self._market_trade(venue, price, qty, taker_sign, now, trade_id)
            if maker_state is not None and partial_off and maker_left:
                # All at once: the rest of the resting order fills at the same instant and
                # price, against liquidity the book does not show (its own trade).
                venue.book.cancel(maker_id)
                self._trade(venue, maker_state, maker_left, price, "maker", taker_sign, now)

    def _trade(
        self,
        venue: _Venue,
        state: _OrderState,
        lots: int,
        price_ticks: int,
        liquidity: str,
        aggressor_sign: int,
        now: int,
        trade_id: int = 0,
    ) -> None:
        """Book a fill for a participant order and report it.

        With ``trade_id`` 0 this is a trade against hidden liquidity: it gets its own id and
        its own market-data print; otherwise the caller prints the shared trade once.
        """
        if not trade_id:
            self._trade_id += 1
        state.filled += lots
        state.leaves -= lots
        state.status = OrderStatus.FILLED if state.leaves == 0 else OrderStatus.PARTIALLY_FILLED
        inst = venue.instrument
        price = price_ticks * venue.tick
        qty = lots * venue.lot
        bps = inst.maker_fee_bps if liquidity == "maker" else inst.taker_fee_bps
        fee = price * qty * bps / _BPS
        self._report(
            ReportKind.FILL,
            state,
            now,
            price,
            qty,
            state.leaves * venue.lot,
            fee,
            liquidity,
            None,
            trade_id or self._trade_id,
        )
        if not trade_id:
            self._market_trade(venue, price_ticks, lots, aggressor_sign, now, self._trade_id)

    def _market_trade(
        self, venue: _Venue, price_ticks: int, lots: int, sign: int, now: int, trade_id: int
    ) -> None:
        if self._any_outage and self.outages.active_until(now, OutageKind.STALE_MARKET_DATA):
            return
        t = self._delivery(_MD_CHANNEL, now)
        report = Report(
            t,
            now,
            ReportKind.TRADE,
            venue.instrument.symbol,
            0,
            None,
            Side.BUY if sign > 0 else Side.SELL,
            price_ticks * venue.tick,
            lots * venue.lot,
            trade_id=trade_id,
        )
        self._push(t, _EV_DELIVER, report)

    def _publish_quote(self, venue: _Venue, now: int) -> None:
        quote = venue.book.top()
        bid, bid_qty, ask, ask_qty = quote
        if quote == venue.last_quote or (
            self._any_outage and self.outages.active_until(now, OutageKind.STALE_MARKET_DATA)
        ):
            return
        venue.last_quote = quote
        tick, lot = venue.tick, venue.lot
        t = self._delivery(_MD_CHANNEL, now)
        report = Report(
            t,
            now,
            ReportKind.QUOTE,
            venue.instrument.symbol,
            price=None if bid is None else bid * tick,
            quantity=bid_qty * lot,
            ask=None if ask is None else ask * tick,
            ask_quantity=ask_qty * lot,
        )
        self._push(t, _EV_DELIVER, report)

    def _cancelled(self, state: _OrderState, reason: CancelReason, now: int) -> None:
        venue = cast("_Venue", state.venue)  # only accepted orders are cancelled
        quantity = state.leaves * venue.lot
        state.leaves = 0
        state.status = OrderStatus.CANCELLED
        self._report(ReportKind.CANCELLED, state, now, quantity=quantity, reason=reason.value)

    def _maybe_schedule_pull(self, state: _OrderState, now: int) -> None:
        cm = self.scenario.cancel
        if cm.pull_probability and self._cancel_rng.random() < cm.pull_probability:
            delay = round(self._cancel_rng.expovariate(1.0 / cm.pull_mean_s) * _NS_PER_S)
            self._push(now + max(1, delay), _EV_PULL, state.order.order_id)

    def _on_pull(self, order_id: int) -> None:
        state = self._orders[order_id]
        venue = state.venue
        now = self._queue.now
        if venue is None or state.status in TERMINAL or not venue.book.cancel(order_id):
            return
        self._cancelled(state, CancelReason.VENUE_PULLED, now)
        self._publish_quote(venue, now)

    def _live_state(self, request: _Request, now: int) -> _OrderState | None:
        """The live order a cancel/replace refers to, or None after rejecting the request."""
        state = self._orders.get(request.order_id)
        if state is None or state.order.account != request.account or state.venue is None:
            self._reject(request, RejectReason.UNKNOWN_ORDER, now)
            return None
        if state.status in TERMINAL:
            self._reject(request, RejectReason.TOO_LATE_TO_CANCEL, now)
            return None
        return state

    def _on_cancel(self, request: _Request, now: int) -> None:
        state = self._live_state(request, now)
        if state is None:
            return
        venue = cast("_Venue", state.venue)  # checked by _live_state
        cm = self.scenario.cancel
        if cm.late_probability and self._cancel_rng.random() < cm.late_probability:
            # The cancel lost the race: the order filled in full before it arrived.
            venue.book.cancel(state.order.order_id)
            taker_sign = -state.order.side.sign
            self._trade(venue, state, state.leaves, state.price_ticks, "maker", taker_sign, now)
            self._reject(request, RejectReason.TOO_LATE_TO_CANCEL, now)
            self._publish_quote(venue, now)
            return
        venue.book.cancel(state.order.order_id)
        self._cancelled(state, CancelReason.USER, now)
        self._publish_quote(venue, now)

    def _on_replace(self, request: _Request, now: int) -> None:
        state = self._live_state(request, now)
        if state is None:
            return
        venue = cast("_Venue", state.venue)  # checked by _live_state
        reason, ticks, lots = self._validate(
            venue, request.price, cast("Decimal", request.quantity), OrderType.LIMIT
        )
        if reason is not None:
            self._reject(request, reason, now)
            return
        order_id = state.order.order_id
        book = venue.book
        same_price = ticks == state.price_ticks
        if same_price and lots <= state.leaves:
            if lots < state.leaves:
                book.reduce(order_id, lots)
            state.leaves = lots
            self._report(ReportKind.REPLACED, state, now, request.price, request.quantity)
            self._publish_quote(venue, now)
            return
        book.cancel(order_id)
        state.leaves = lots
        state.price_ticks = ticks
        self._report(
            ReportKind.REPLACED, state, now, price=request.price, quantity=request.quantity
        )
        self._execute(venue, state, state.order.side.sign, ticks, lots, int(TimeInForce.GTC), now)

    # -------------------------------------------------------------- market flow
    def _schedule_flow(self, venue: _Venue, flow: FlowGenerator) -> None:
        arrival = flow.next_arrival()
        self._queue.schedule(max(arrival.time_ns, self._queue.now), _EV_FLOW, (venue, arrival))

    def _next_synthetic_id(self) -> int:
        self._synthetic_id -= 1
        return self._synthetic_id

    def _on_flow(self, payload: tuple[_Venue, FlowArrival]) -> None:
        venue, arrival = payload
        now = self._queue.now
        book = venue.book
        if arrival.action is FlowAction.CANCEL:
            while venue.synthetic:
                if book.cancel(venue.synthetic.popleft()):
                    break
        else:
            tif = TimeInForce.GTC if arrival.action is FlowAction.LIMIT else TimeInForce.IOC
            self._flow_order(
                venue, arrival.side, arrival.price_ticks, arrival.quantity_lots, int(tif), now
            )
        self._publish_quote(venue, now)
        self._schedule_flow(venue, cast("FlowGenerator", venue.flow))

    def _flow_order(
        self, venue: _Venue, side: int, price: int, lots: int, tif: int, now: int
    ) -> int:
        oid = self._next_synthetic_id()
        result = venue.book.submit(oid, side, price, lots, tif)
        if result.fills:
            self._apply_fills(venue, side, result.fills, now)
        if result.rested:
            venue.synthetic.append(oid)
        return oid

    def _on_replay(self, venue: _Venue, index: int) -> None:
        event = venue.replay[index]
        now = self._queue.now
        if event.kind is ReplayKind.TRADE:
            self._flow_order(
                venue, event.side, event.price_ticks, event.quantity_lots, int(TimeInForce.IOC), now
            )
        else:
            venue.book.cancel(venue.replay_ids[event.side])
            oid = self._flow_order(
                venue, event.side, event.price_ticks, event.quantity_lots, int(TimeInForce.GTC), now
            )
            venue.replay_ids[event.side] = oid
        self._publish_quote(venue, now)
        if index + 1 < len(venue.replay):
            nxt = venue.replay[index + 1]
            self._queue.schedule(max(nxt.time_ns, now), _EV_REPLAY, (venue, index + 1))


_TIF_INT = {
    OrderType.LIMIT: int(TimeInForce.GTC),
    OrderType.IOC: int(TimeInForce.IOC),
    OrderType.MARKET: int(TimeInForce.MARKET),
}
