"""Limits per account and instrument, and the state the stateful rules read.

Both are values. ``RiskLimits`` also carries dense lookup tables, built once, so a
batch maps ids to table rows with one fancy-indexing op. Every table has one extra
*sentinel* row (index ``len(ids)``) used for unknown ids: its limits are zero and its
reference price NaN, so every rule fails closed for an unknown account or instrument.

Exposure is kept in integer *minor units* (``10**notional_decimals`` per currency
unit, rounded up per order): integer sums are exact, so the batch and the scalar
paths compare the same numbers against the limits regardless of summation order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from bot4.risk.errors import RiskError
from bot4.risk.orders import MAX_BATCH

_A = TypeVar("_A", bound=np.ndarray[Any, Any])

MAX_ID = 2**20  # account and instrument ids are in 0..MAX_ID-1 (table lookups, not hashing)
NOTIONAL_CAP = 2**40  # minor units per order; keeps batch sums < 2**62
MAX_MINOR = 2**60  # exposure limits and state, in minor units
MAX_POSITION = 2**60


@dataclass(frozen=True)
class InstrumentLimits:
    """Per-instrument limits (they apply to every account trading it)."""

    id: int
    name: str
    max_order_qty: int
    max_notional: float
    price_band: float  # allowed |price - reference| / reference
    max_position: int  # worst-case |position| including open orders, in lots


@dataclass(frozen=True)
class AccountLimits:
    """Per-account limits."""

    id: int
    name: str
    max_gross_exposure: float
    max_net_exposure: float
    max_open_orders: int
    max_orders_per_window: int  # submissions per ``rate_window_ns``


@dataclass(frozen=True)
class Tables:
    """Dense arrays derived from the limits; row ``len(ids)`` is the fail-closed sentinel."""

    account_lut: NDArray[np.int64]
    instrument_lut: NDArray[np.int64]
    account_rows: NDArray[np.int64]  # the lut + one sentinel entry: ids clipped to its end
    instrument_rows: NDArray[np.int64]
    account_index: dict[int, int]
    instrument_index: dict[int, int]
    max_gross_minor: NDArray[np.int64]
    max_net_minor: NDArray[np.int64]
    max_open_orders: NDArray[np.int64]
    max_rate: NDArray[np.int64]
    common_rate: int  # the max_rate shared by every row with max_rate > 0; 0 if they differ
    max_qty: NDArray[np.int64]
    max_notional: NDArray[np.float64]
    price_band: NDArray[np.float64]
    max_position: NDArray[np.int64]


@dataclass(frozen=True)
class RiskLimits:
    """All limits: build with :func:`bot4.risk.config.parse_limits` or directly (validated)."""

    accounts: tuple[AccountLimits, ...]
    instruments: tuple[InstrumentLimits, ...]
    notional_decimals: int = 2
    duplicate_window_ns: int = 500_000_000
    rate_window_ns: int = 1_000_000_000
    tables: Tables = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        accounts = tuple(sorted(self.accounts, key=lambda a: a.id))
        instruments = tuple(sorted(self.instruments, key=lambda i: i.id))
        object.__setattr__(self, "accounts", accounts)
        object.__setattr__(self, "instruments", instruments)
        _validate(self)
        object.__setattr__(self, "tables", _build_tables(self))

    @property
    def scale(self) -> float:
        """Minor units per currency unit."""
        return float(10**self.notional_decimals)

    @property
    def history_window_ns(self) -> int:
        """How far back submissions matter (duplicate and rate windows)."""
        return max(self.duplicate_window_ns, self.rate_window_ns)

    def notional_minor(self, qty: int, price: float) -> int:
        """An order's notional in minor units, rounded up (the scalar formula)."""
        return math.ceil(min(float(qty) * price * self.scale, float(NOTIONAL_CAP)))


def _validate(limits: RiskLimits) -> None:
    if not 0 <= limits.notional_decimals <= 6:
        raise RiskError(f"notional_decimals must be in 0..6, got {limits.notional_decimals}")
    for name in ("duplicate_window_ns", "rate_window_ns"):
        value = getattr(limits, name)
        if not 0 < value <= 2**62:
            raise RiskError(f"{name} must be > 0, got {value}")
    scale = limits.scale
    for kind, items in (("account", limits.accounts), ("instrument", limits.instruments)):
        seen: set[int] = set()
        for item in items:
            if not 0 <= item.id < MAX_ID:
                raise RiskError(
                    f"{kind} {item.name!r}: id must be in 0..{MAX_ID - 1}, got {item.id}"
                )
            if item.id in seen:
                raise RiskError(f"{kind} {item.name!r}: id {item.id} is used twice")
            seen.add(item.id)
    for inst in limits.instruments:
        _validate_instrument(inst, scale, limits.notional_decimals)
    for acct in limits.accounts:
        _validate_account(acct, scale)


def _validate_instrument(inst: InstrumentLimits, scale: float, decimals: int) -> None:
    where = f"instrument {inst.name!r}"
    if not 0 <= inst.max_order_qty <= 2**40:
        raise RiskError(f"{where}: max_order_qty must be in 0..2**40, got {inst.max_order_qty}")
    if not (math.isfinite(inst.max_notional) and 0 <= inst.max_notional * scale <= NOTIONAL_CAP):
        raise RiskError(
            f"{where}: max_notional must be >= 0 and at most {NOTIONAL_CAP / scale:.0f} "
            f"(with notional_decimals={decimals}), got {inst.max_notional}"
        )
    if not (math.isfinite(inst.price_band) and 0 <= inst.price_band <= 1):
        raise RiskError(f"{where}: price_band must be a fraction in 0..1, got {inst.price_band}")
    if not 0 <= inst.max_position <= MAX_POSITION:
        raise RiskError(f"{where}: max_position must be in 0..2**60, got {inst.max_position}")


def _validate_account(acct: AccountLimits, scale: float) -> None:
    where = f"account {acct.name!r}"
    for name in ("max_gross_exposure", "max_net_exposure"):
        value = getattr(acct, name)
        if not (math.isfinite(value) and 0 <= value * scale <= MAX_MINOR):
            raise RiskError(f"{where}: {name} must be finite and >= 0, got {value}")
    for name in ("max_open_orders", "max_orders_per_window"):
        value = getattr(acct, name)
        if not 0 <= value <= MAX_BATCH:
            raise RiskError(f"{where}: {name} must be in 0..{MAX_BATCH}, got {value}")


def _ro(arr: _A) -> _A:
    arr.setflags(write=False)
    return arr


def _lut(ids: list[int]) -> NDArray[np.int64]:
    table = np.full(max(ids, default=-1) + 1, len(ids), dtype=np.int64)
    table[ids] = np.arange(len(ids), dtype=np.int64)
    return _ro(table)


def _rows(lut: NDArray[np.int64], sentinel: int) -> NDArray[np.int64]:
    return _ro(np.append(lut, np.int64(sentinel)))


def _ints(values: list[int]) -> NDArray[np.int64]:
    out = np.zeros(len(values) + 1, dtype=np.int64)
    out[:-1] = values
    return _ro(out)


def _floats(values: list[float]) -> NDArray[np.float64]:
    out = np.zeros(len(values) + 1, dtype=np.float64)
    out[:-1] = values
    return _ro(out)


def _common_positive(values: list[int]) -> int:
    """The one positive value of ``values`` (0 when none, or when they differ)."""
    positive = {v for v in values if v > 0}
    return positive.pop() if len(positive) == 1 else 0


def _build_tables(limits: RiskLimits) -> Tables:
    accts, insts, scale = limits.accounts, limits.instruments, limits.scale
    account_lut, instrument_lut = _lut([a.id for a in accts]), _lut([i.id for i in insts])
    return Tables(
        account_lut=account_lut,
        instrument_lut=instrument_lut,
        account_rows=_rows(account_lut, len(accts)),
        instrument_rows=_rows(instrument_lut, len(insts)),
        account_index={a.id: k for k, a in enumerate(accts)},
        instrument_index={i.id: k for k, i in enumerate(insts)},
        max_gross_minor=_ints([math.floor(a.max_gross_exposure * scale) for a in accts]),
        max_net_minor=_ints([math.floor(a.max_net_exposure * scale) for a in accts]),
        max_open_orders=_ints([a.max_open_orders for a in accts]),
        max_rate=_ints([a.max_orders_per_window for a in accts]),
        common_rate=_common_positive([a.max_orders_per_window for a in accts]),
        max_qty=_ints([i.max_order_qty for i in insts]),
        max_notional=_floats([i.max_notional for i in insts]),
        price_band=_floats([i.price_band for i in insts]),
        max_position=_ints([i.max_position for i in insts]),
    )
