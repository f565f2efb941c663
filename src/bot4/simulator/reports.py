"""What the venue sends back: one immutable ``Report`` per message, and its JSON-lines form.

``Report`` is a ``NamedTuple`` rather than a frozen dataclass because the venue builds
several per order: a tuple is built in one C call, a frozen dataclass pays one
``object.__setattr__`` per field (three times the cost of the rest of a report's trip).

The event log is these reports in delivery order, one canonical JSON object per line
(sorted keys, no spaces, decimals as strings, times as integer nanoseconds) so that two
runs with the same seed can be compared byte for byte.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import NamedTuple

from bot4.simulator.orders import ReportKind, Side


def decimal_text(value: Decimal) -> str:
    """Plain decimal notation (never ``1E+1``), trailing zeros kept as computed."""
    return format(value, "f")


class Report(NamedTuple):
    """A message delivered to the participant at ``time_ns``; ``sent_ns`` is when the venue sent it.

    Fields that do not apply to a kind are ``None`` (or 0 for ids) and are left out of the
    JSON form. For QUOTE, ``price``/``quantity`` are the best bid and ``ask``/``ask_quantity``
    the best ask.
    """

    time_ns: int
    sent_ns: int
    kind: ReportKind
    instrument: str = ""
    order_id: int = 0
    account: str | None = None
    side: Side | None = None
    price: Decimal | None = None
    quantity: Decimal | None = None
    leaves: Decimal | None = None
    fee: Decimal | None = None
    liquidity: str | None = None
    reason: str | None = None
    trade_id: int = 0
    ask: Decimal | None = None
    ask_quantity: Decimal | None = None
    status: str | None = None

    def to_json(self) -> str:
        """One canonical JSON line (without the newline)."""
        out: dict[str, object] = {"t": self.time_ns, "sent": self.sent_ns, "kind": self.kind.value}
        if self.instrument:
            out["instrument"] = self.instrument
        if self.order_id:
            out["order_id"] = self.order_id
        if self.trade_id:
            out["trade_id"] = self.trade_id
        for name in ("account", "liquidity", "reason", "status"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.side is not None:
            out["side"] = self.side.value
        for name in ("price", "quantity", "leaves", "fee", "ask", "ask_quantity"):
            value = getattr(self, name)
            if value is not None:
                out[name] = decimal_text(value)
        return json.dumps(out, sort_keys=True, separators=(",", ":"))
