"""Order values and the venue's vocabulary: sides, order types, statuses and reason codes.

Reason codes are string enums because they are what a venue sends back and what the
event log records; tests and the CLI summary count them by value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum, StrEnum


class Side(StrEnum):
    """Which side of the book an order rests on or takes from."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for buy, -1 for sell: the book's internal encoding."""
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    """LIMIT rests if not marketable; IOC fills what it can at its limit; MARKET has no limit."""

    LIMIT = "limit"
    MARKET = "market"
    IOC = "ioc"


class TimeInForce(IntEnum):
    """The book's compact encoding of an order type (ints keep the matching loop cheap)."""

    GTC = 0
    IOC = 1
    MARKET = 2


TIF_OF = {OrderType.LIMIT: TimeInForce.GTC, OrderType.IOC: TimeInForce.IOC}


class RejectReason(StrEnum):
    """Why the venue refused a request (never an exception: a report, as a venue answers)."""

    RATE_LIMITED = "rate_limited"
    INVALID_TICK = "invalid_tick"
    INVALID_LOT = "invalid_lot"
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_PRICE = "invalid_price"
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    INVALID_ORDER_ID = "invalid_order_id"
    DUPLICATE_ORDER_ID = "duplicate_order_id"
    UNKNOWN_ORDER = "unknown_order"
    EXCHANGE_UNAVAILABLE = "exchange_unavailable"
    CONNECTION_LOST = "connection_lost"
    NO_LIQUIDITY = "no_liquidity"
    TOO_LATE_TO_CANCEL = "too_late_to_cancel"


class CancelReason(StrEnum):
    """Why a live order left the book without filling completely."""

    USER = "user"
    IOC_REMAINDER = "ioc_remainder"
    SELF_TRADE = "self_trade"
    VENUE_PULLED = "venue_pulled"


class OrderStatus(StrEnum):
    """Lifecycle of a participant order; the last three are terminal."""

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})


class ReportKind(StrEnum):
    """Kinds of message the venue sends to the participant."""

    ACK = "ack"
    REJECT = "reject"
    FILL = "fill"
    CANCELLED = "cancelled"
    CANCEL_REJECT = "cancel_reject"
    REPLACED = "replaced"
    REPLACE_REJECT = "replace_reject"
    TRADE = "trade"
    QUOTE = "quote"
    VENUE_STATUS = "venue_status"


@dataclass(frozen=True, slots=True)
class Order:
    """A participant's new-order request, in the venue's units (decimal price and size).

    ``price`` is required for LIMIT and IOC and must be ``None`` for MARKET; the venue
    validates it against the instrument's tick and lot sizes and rejects what does not fit.
    """

    order_id: int
    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal | None = None
    order_type: OrderType = OrderType.LIMIT
    account: str = "default"
