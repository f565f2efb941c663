"""What the engine needs from a venue: submit, cancel, advance time → reports, order status.

Why a protocol: the engine loop should not care whether it talks to the in-process
``ExchangeSimulator`` or to an adapter for a real venue; it receives a ``Venue`` and uses
nothing else. The simulator satisfies this structurally (mypy checks it at every call site).
"""

from __future__ import annotations

from typing import Protocol

from bot4.simulator.orders import Order, OrderStatus
from bot4.simulator.reports import Report


class Venue(Protocol):
    """A venue session on simulated (or adapter-kept) time in integer nanoseconds."""

    @property
    def now(self) -> int:
        """The venue's current time (ns); the audit log and client limiter read it."""

    def submit(self, order: Order, at_ns: int | None = None) -> None:
        """Send a new order at ``at_ns``; its answers come back as reports from ``advance``."""

    def cancel(self, order_id: int, account: str = "default", at_ns: int | None = None) -> None:
        """Ask the venue to cancel a resting order."""

    def advance(self, until_ns: int) -> list[Report]:
        """Move time to ``until_ns`` and return every report delivered by then, in order."""

    def status(self, order_id: int) -> OrderStatus | None:
        """Lifecycle state of one of our orders as the venue sees it (None if unknown)."""
