"""Orders as values: one ``Order`` for the single-order path, ``OrderBatch`` as numpy columns.

Validation happens once, at construction, so the checks themselves never re-check
shapes or dtypes. Quantities are integer lots and timestamps integer nanoseconds:
sums of them are exact, which is what lets the vector and scalar paths agree bit
for bit. The bounds below keep every running sum inside int64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot4.risk.errors import RiskError

MAX_BATCH = 2**22  # orders per batch (and per history); cumulative sums stay < 2**62
MAX_QTY = 2**40  # lots per order
BUY = 1
SELL = -1

I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Order:
    """One order: ``side`` is +1 (buy) or -1 (sell); ``ts`` in nanoseconds."""

    ts: int
    account: int
    instrument: int
    side: int
    qty: int
    price: float

    def __post_init__(self) -> None:
        _check_scalar_order(self)


def _check_scalar_order(order: Order) -> None:
    for name in ("ts", "account", "instrument", "side", "qty"):
        value = getattr(order, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise RiskError(f"order.{name} must be an int, got {value!r}")
    if not isinstance(order.price, int | float) or isinstance(order.price, bool):
        raise RiskError(f"order.price must be a number, got {order.price!r}")
    if order.ts < 0:
        raise RiskError(f"order.ts must be >= 0 nanoseconds, got {order.ts}")
    if order.side not in (BUY, SELL):
        raise RiskError(f"order.side must be +1 (buy) or -1 (sell), got {order.side}")
    if not 1 <= order.qty <= MAX_QTY:
        raise RiskError(f"order.qty must be in 1..{MAX_QTY}, got {order.qty}")
    if not (math.isfinite(order.price) and order.price > 0):
        raise RiskError(f"order.price must be finite and > 0, got {order.price!r}")


def _column(name: str, values: Any, dtype: type[np.generic], n: int | None) -> Any:  # noqa: ANN401 - numpy column of the requested dtype
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise RiskError(f"orders.{name} must be a 1-D array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise RiskError(f"orders.{name} has {arr.shape[0]} entries, expected {n} like orders.ts")
    integral = np.issubdtype(dtype, np.integer)
    if arr.size and arr.dtype.kind not in ("iu" if integral else "iuf"):
        kind = "integer" if integral else "numeric"
        raise RiskError(f"orders.{name} must be {kind}, got dtype {arr.dtype}")
    if integral and arr.size:
        info = np.iinfo(np.dtype(dtype))
        if int(arr.max()) > info.max or int(arr.min()) < info.min:
            raise RiskError(f"orders.{name} has values outside the {np.dtype(dtype).name} range")
    out = np.array(arr, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class OrderBatch:
    """A batch of orders in arrival order, as read-only numpy columns of equal length.

    Build it with :meth:`from_columns` (validates and converts) or :meth:`from_orders`.
    """

    ts: I64
    account: I64
    instrument: I64
    side: I8
    qty: I64
    price: F64

    @classmethod
    def from_columns(
        cls,
        *,
        ts: Any,  # noqa: ANN401 - any array-like
        account: Any,  # noqa: ANN401
        instrument: Any,  # noqa: ANN401
        side: Any,  # noqa: ANN401
        qty: Any,  # noqa: ANN401
        price: Any,  # noqa: ANN401
    ) -> OrderBatch:
        """Validate and convert array-likes; any problem is a ``RiskError`` naming the column."""
        ts_ = _column("ts", ts, np.int64, None)
        n = int(ts_.shape[0])
        if n > MAX_BATCH:
            raise RiskError(f"a batch holds at most {MAX_BATCH} orders, got {n}: split it")
        batch = cls(
            ts=ts_,
            account=_column("account", account, np.int64, n),
            instrument=_column("instrument", instrument, np.int64, n),
            side=_column("side", side, np.int8, n),
            qty=_column("qty", qty, np.int64, n),
            price=_column("price", price, np.float64, n),
        )
        batch.validate()
        return batch

    @classmethod
    def from_orders(cls, orders: Sequence[Order]) -> OrderBatch:
        """Columns from single orders (already validated one by one)."""
        return cls.from_columns(
            ts=[o.ts for o in orders],
            account=[o.account for o in orders],
            instrument=[o.instrument for o in orders],
            side=np.array([o.side for o in orders], dtype=np.int8),
            qty=[o.qty for o in orders],
            price=np.array([o.price for o in orders], dtype=np.float64),
        )

    @classmethod
    def empty(cls) -> OrderBatch:
        """No orders (e.g. an empty history)."""
        return cls.from_columns(ts=[], account=[], instrument=[], side=[], qty=[], price=[])

    def validate(self) -> None:
        """Check the value ranges the checks rely on."""
        if self.ts.size == 0:
            return
        if int(self.ts[0]) < 0:
            raise RiskError("orders.ts must be >= 0 nanoseconds")
        if np.any(self.ts[1:] < self.ts[:-1]):
            raise RiskError("orders.ts must be non-decreasing: a batch is in arrival order")
        if not np.all((self.side == BUY) | (self.side == SELL)):
            raise RiskError("orders.side must be +1 (buy) or -1 (sell) everywhere")
        if np.any((self.qty < 1) | (self.qty > MAX_QTY)):
            raise RiskError(f"orders.qty must be in 1..{MAX_QTY} lots")
        if not np.all(np.isfinite(self.price) & (self.price > 0)):
            raise RiskError("orders.price must be finite and > 0 (no NaN/inf)")

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def order(self, k: int) -> Order:
        """The k-th order as an :class:`Order`."""
        return Order(
            ts=int(self.ts[k]),
            account=int(self.account[k]),
            instrument=int(self.instrument[k]),
            side=int(self.side[k]),
            qty=int(self.qty[k]),
            price=float(self.price[k]),
        )

    def select(self, keep: NDArray[np.bool_] | slice) -> OrderBatch:
        """The orders where ``keep`` is true (or a slice), still in arrival order."""
        return OrderBatch(
            ts=_frozen(self.ts[keep]),
            account=_frozen(self.account[keep]),
            instrument=_frozen(self.instrument[keep]),
            side=_frozen(self.side[keep]),
            qty=_frozen(self.qty[keep]),
            price=_frozen(self.price[keep]),
        )

    def concat(self, other: OrderBatch) -> OrderBatch:
        """This batch followed by ``other``; validated (arrival order must hold)."""
        joined = OrderBatch(
            ts=_frozen(np.concatenate([self.ts, other.ts])),
            account=_frozen(np.concatenate([self.account, other.account])),
            instrument=_frozen(np.concatenate([self.instrument, other.instrument])),
            side=_frozen(np.concatenate([self.side, other.side])),
            qty=_frozen(np.concatenate([self.qty, other.qty])),
            price=_frozen(np.concatenate([self.price, other.price])),
        )
        joined.validate()
        return joined


def _frozen(arr: Any) -> Any:  # noqa: ANN401 - any numpy array
    out = np.array(arr, copy=True)
    out.setflags(write=False)
    return out


def require_after(history: OrderBatch, batch: OrderBatch) -> None:
    """A batch must not start before the last submission already recorded."""
    if len(history) and len(batch) and int(history.ts[-1]) > int(batch.ts[0]):
        raise RiskError(
            "the batch starts before the last submission recorded in the risk state "
            f"({int(batch.ts[0])} < {int(history.ts[-1])} ns): submit batches in time order"
        )
