"""The other side of the book: seeded synthetic order flow, or historical data replayed from CSV.

Synthetic flow: order arrivals are a Poisson process; the mid price follows geometric
Brownian motion; each arrival is a passive limit order near the mid, a marketable IOC, or
a cancel of the oldest resting synthetic order (which keeps the book bounded).

Replay: a CSV with a header ``timestamp_ns,type,side,price,quantity`` where ``type`` is
``trade`` (an aggressor of ``side`` that trades up to ``price``), ``bid`` or ``ask`` (the
venue's quote on that side moves to ``price`` with ``quantity``; ``side`` may be empty).
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from pathlib import Path

from bot4.simulator.errors import SimulatorError

_NS_PER_S = 1_000_000_000


class FlowAction(IntEnum):
    """What one synthetic arrival does."""

    LIMIT = 0
    MARKET = 1
    CANCEL = 2


@dataclass(frozen=True, slots=True)
class SyntheticFlow:
    """Parameters of the generator; prices in ticks, sizes in lots, rates per second.

    ``volatility`` and ``drift`` are per second (not annualized): simulated runs are short.
    """

    arrival_rate: float = 200.0
    drift: float = 0.0
    volatility: float = 0.0005
    market_probability: float = 0.2
    cancel_probability: float = 0.3
    max_offset_ticks: int = 10
    mean_offset_ticks: float = 3.0
    mean_size_lots: float = 5.0


@dataclass(frozen=True, slots=True)
class FlowArrival:
    """One synthetic arrival at ``time_ns``; price and quantity unused for cancels."""

    time_ns: int
    action: FlowAction
    side: int
    price_ticks: int
    quantity_lots: int


class FlowGenerator:
    """Produces synthetic arrivals one at a time from a seeded ``random.Random``."""

    __slots__ = ("_mid", "_rng", "_t", "flow")

    def __init__(self, flow: SyntheticFlow, initial_mid_ticks: float, rng: random.Random) -> None:
        if initial_mid_ticks <= 0:
            raise SimulatorError(f"initial mid must be > 0 ticks, got {initial_mid_ticks}")
        self.flow = flow
        self._rng = rng
        self._mid = float(initial_mid_ticks)
        self._t = 0

    @property
    def mid_ticks(self) -> float:
        """Current mid price in (fractional) ticks."""
        return self._mid

    def next_arrival(self) -> FlowArrival:
        """Advance to the next Poisson arrival and describe it."""
        flow, rng = self.flow, self._rng
        dt_ns = max(1, round(rng.expovariate(flow.arrival_rate) * _NS_PER_S))
        self._t += dt_ns
        dt = dt_ns / _NS_PER_S
        shock = rng.gauss(0.0, 1.0)
        var = flow.volatility * flow.volatility
        self._mid *= math.exp(
            (flow.drift - 0.5 * var) * dt + flow.volatility * math.sqrt(dt) * shock
        )
        self._mid = max(self._mid, 1.0)
        draw = rng.random()
        side = 1 if rng.random() < 0.5 else -1
        qty = 1 + int(rng.expovariate(1.0 / flow.mean_size_lots))
        mid = round(self._mid)
        if draw < flow.cancel_probability:
            return FlowArrival(self._t, FlowAction.CANCEL, side, 0, 0)
        if draw < flow.cancel_probability + flow.market_probability:
            price = mid + side * flow.max_offset_ticks
            return FlowArrival(self._t, FlowAction.MARKET, side, max(1, price), qty)
        offset = 1 + min(
            flow.max_offset_ticks - 1, int(rng.expovariate(1.0 / flow.mean_offset_ticks))
        )
        return FlowArrival(self._t, FlowAction.LIMIT, side, max(1, mid - side * offset), qty)


class ReplayKind(IntEnum):
    """Row types of a replay CSV."""

    TRADE = 0
    BID = 1
    ASK = 2


@dataclass(frozen=True, slots=True)
class ReplayEvent:
    """One historical row in the venue's integer units."""

    time_ns: int
    kind: ReplayKind
    side: int
    price_ticks: int
    quantity_lots: int


_COLUMNS = ("timestamp_ns", "type", "side", "price", "quantity")


def _units(text: str, step: Decimal, what: str, where: str) -> int:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise SimulatorError(f"{where}: {what} must be a decimal number, got {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise SimulatorError(f"{where}: {what} must be > 0, got {text!r}")
    units = value / step
    if units != units.to_integral_value():
        raise SimulatorError(f"{where}: {what} {text} is not a multiple of {step}")
    return int(units)


def load_replay_csv(path: Path, tick_size: Decimal, lot_size: Decimal) -> tuple[ReplayEvent, ...]:
    """Read and validate a replay CSV; errors name the file and line."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise SimulatorError(
            f"{path}: cannot read market data CSV ({exc.strerror}); check the path"
        ) from None
    if not rows or tuple(c.strip() for c in rows[0]) != _COLUMNS:
        raise SimulatorError(f"{path}:1: header must be {','.join(_COLUMNS)}")
    events: list[ReplayEvent] = []
    last_t = -1
    for lineno, row in enumerate(rows[1:], start=2):
        where = f"{path}:{lineno}"
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(_COLUMNS):
            raise SimulatorError(f"{where}: expected {len(_COLUMNS)} columns, got {len(row)}")
        ts_text, type_text, side_text, price_text, qty_text = (c.strip() for c in row)
        if not ts_text.isdigit():
            raise SimulatorError(
                f"{where}: timestamp_ns must be a non-negative integer, got {ts_text!r}"
            )
        ts = int(ts_text)
        if ts < last_t:
            raise SimulatorError(f"{where}: timestamps must not decrease ({ts} after {last_t})")
        last_t = ts
        try:
            kind = ReplayKind[type_text.upper()]
        except KeyError:
            raise SimulatorError(
                f"{where}: type must be trade, bid or ask, got {type_text!r}"
            ) from None
        if kind is ReplayKind.TRADE:
            if side_text not in ("buy", "sell"):
                raise SimulatorError(
                    f"{where}: side of a trade must be buy or sell, got {side_text!r}"
                )
            side = 1 if side_text == "buy" else -1
        else:
            side = 1 if kind is ReplayKind.BID else -1
        price = _units(price_text, tick_size, "price", where)
        qty = _units(qty_text, lot_size, "quantity", where)
        events.append(ReplayEvent(ts, kind, side, price, qty))
    return tuple(events)
