"""bot4.simulator: a deterministic, seeded exchange for the engine to trade against.

Everything runs on a discrete-event clock in integer simulated nanoseconds, every random
process draws from a generator seeded by the scenario, and prices and sizes are integer
ticks and lots, so the same scenario and seed always produce the same event log, byte for
byte. Start with :class:`ExchangeSimulator` and :func:`load_scenario`.
"""

from __future__ import annotations

from bot4.simulator.errors import SimulatorError
from bot4.simulator.exchange import ExchangeSimulator
from bot4.simulator.orders import (
    CancelReason,
    Order,
    OrderStatus,
    OrderType,
    RejectReason,
    ReportKind,
    Side,
)
from bot4.simulator.rate_limit import RateLimiter, TokenBucket
from bot4.simulator.reports import Report
from bot4.simulator.scenario import Scenario, load_scenario, parse_scenario

__all__ = [
    "CancelReason",
    "ExchangeSimulator",
    "Order",
    "OrderStatus",
    "OrderType",
    "RateLimiter",
    "RejectReason",
    "Report",
    "ReportKind",
    "Scenario",
    "Side",
    "SimulatorError",
    "TokenBucket",
    "load_scenario",
    "parse_scenario",
]
