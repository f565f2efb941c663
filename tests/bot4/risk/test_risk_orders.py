"""Order and OrderBatch validation: every bad input is a one-line RiskError."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bot4.risk import Order, OrderBatch, RiskError
from bot4.risk.orders import MAX_QTY

GOOD: dict[str, Any] = {
    "ts": [0, 1],
    "account": [7, 7],
    "instrument": [1, 1],
    "side": [1, -1],
    "qty": [1, 2],
    "price": [10.0, 11.0],
}


def test_columns_are_converted_and_read_only() -> None:
    batch = OrderBatch.from_columns(**GOOD)
    assert len(batch) == 2
    assert batch.side.dtype == np.int8
    assert batch.price.dtype == np.float64
    assert not batch.qty.flags.writeable
    assert batch.order(1) == Order(1, 7, 1, -1, 2, 11.0)
    assert len(batch.select(np.array([True, False]))) == 1
    again = OrderBatch.from_orders([batch.order(0), batch.order(1)])
    assert again.price.tolist() == batch.price.tolist()
    assert again.side.tolist() == [1, -1]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("ts", [[0, 1]], "1-D"),
        ("account", [7], "1 entries, expected 2"),
        ("qty", [1.0, 2.0], "must be integer"),
        ("price", ["a", "b"], "must be numeric"),
        ("account", np.array([2**64 - 1, 0], dtype=np.uint64), "outside the int64 range"),
        ("side", [1, 0], r"\+1 \(buy\) or -1"),
        ("side", [300, 1], "outside the int8 range"),
        ("ts", [1, 0], "non-decreasing"),
        ("ts", [-1, 0], ">= 0"),
        ("qty", [0, 1], "qty must be in"),
        ("qty", [1, MAX_QTY + 1], "qty must be in"),
        ("price", [1.0, float("nan")], "finite and > 0"),
        ("price", [1.0, -1.0], "finite and > 0"),
    ],
)
def test_bad_columns(column: str, value: Any, message: str) -> None:
    with pytest.raises(RiskError, match=message):
        OrderBatch.from_columns(**{**GOOD, column: value})


def test_batch_size_limit() -> None:
    n = 2**22 + 1
    with pytest.raises(RiskError, match="at most"):
        OrderBatch.from_columns(
            ts=np.zeros(n, dtype=np.int64), account=[], instrument=[], side=[], qty=[], price=[]
        )


def test_concat_requires_time_order() -> None:
    batch = OrderBatch.from_columns(**GOOD)
    assert len(batch.concat(batch.select(slice(1, None)))) == 3
    with pytest.raises(RiskError, match="non-decreasing"):
        batch.concat(batch)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ts": 1.5}, "order.ts must be an int"),
        ({"qty": True}, "order.qty must be an int"),
        ({"price": "1"}, "order.price must be a number"),
        ({"ts": -1}, ">= 0 nanoseconds"),
        ({"side": 2}, r"\+1 \(buy\)"),
        ({"qty": 0}, "qty must be in"),
        ({"price": float("inf")}, "finite and > 0"),
    ],
)
def test_bad_single_order(fields: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "ts": 0,
        "account": 1,
        "instrument": 1,
        "side": 1,
        "qty": 1,
        "price": 1.0,
    }
    with pytest.raises(RiskError, match=message):
        Order(**{**base, **fields})
