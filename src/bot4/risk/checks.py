"""Pre-trade checks over a batch: one numpy pass per rule, no Python loop per order.

Batch semantics (fail closed). Orders are evaluated in arrival order. The
*prefilter* rules (kill switch … rate throttle) do not depend on other orders being
accepted. An order that passes them is *included*: it counts toward the projected
open orders, position and exposure seen by every later order of the batch, even if
a stateful rule then rejects it. Every projection only grows when an order is
included (positions are worst case: open buys and sells never net), so counting
an order that ends up rejected can only make later checks stricter: an accepted
order is within limits whatever happens to the others. Running sums per account
or account×instrument are exclusive cumulative sums within groups, computed after
one sort of ``(group << 22) | index`` keys — unique, so an unstable SIMD sort keeps
arrival order inside each group.

Duplicate detection and the rate throttle count every submission (rejected ones
too), including ``state.recent`` from earlier batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from bot4.infrastructure.platform import Path_, selected_path
from bot4.risk.errors import RiskError
from bot4.risk.limits import NOTIONAL_CAP, RiskLimits
from bot4.risk.orders import BUY, OrderBatch, require_after
from bot4.risk.reasons import PREFILTER, RULES, Reason
from bot4.risk.result import CheckResult
from bot4.risk.state import RiskState

_SHIFT = 23  # index bits in sort keys: batch + history ≤ 2 * MAX_BATCH = 2**23
_MASK = (1 << _SHIFT) - 1
_ROW = {reason: row for row, reason in enumerate(RULES)}

I64 = NDArray[np.int64]
U64 = NDArray[np.uint64]
Bools = NDArray[np.bool_]
KeyHash = Callable[[I64, I64, NDArray[np.int8], I64, NDArray[np.float64]], U64]


def check_batch(
    orders: OrderBatch, limits: RiskLimits, state: RiskState, *, path: Path_ | None = None
) -> CheckResult:
    """Check a batch on the process-wide path (vector unless the platform says scalar)."""
    chosen = selected_path() if path is None else path
    if chosen == "vector":
        return check_batch_vector(orders, limits, state)
    from bot4.risk.scalar import check_batch_scalar  # noqa: PLC0415 - only on the fallback path

    return check_batch_scalar(orders, limits, state)


def check_batch_vector(orders: OrderBatch, limits: RiskLimits, state: RiskState) -> CheckResult:
    """All rules over the whole batch with numpy; the result equals the scalar path's."""
    state.require_compatible(limits)
    hist = state.recent
    require_after(hist, orders)
    m, n = len(hist), len(orders)
    if m + n > 1 << _SHIFT:
        raise RiskError(f"history ({m}) + batch ({n}) exceed {1 << _SHIFT} orders: split the batch")
    tab = limits.tables
    batch = _Batch(
        orders=orders,
        account=_dense(orders.account, tab.account_lut, len(limits.accounts)),
        instrument=_dense(orders.instrument, tab.instrument_lut, len(limits.instruments)),
        buy=orders.side == BUY,
        notional=orders.qty.astype(np.float64) * orders.price,
    )
    failed = np.empty((len(RULES), n), dtype=np.bool_)
    _stateless_rules(batch, limits, state, failed)
    by_account = _window_rules(batch, limits, state, failed)
    _stateful_rules(batch, limits, state, failed, by_account)
    return CheckResult.from_failed(failed)


@dataclass(frozen=True)
class _Batch:
    """Per-order columns every rule shares (table rows instead of ids)."""

    orders: OrderBatch
    account: I64
    instrument: I64
    buy: Bools
    notional: NDArray[np.float64]


def _stateless_rules(batch: _Batch, limits: RiskLimits, state: RiskState, failed: Bools) -> None:
    tab = limits.tables
    a, i, price = batch.account, batch.instrument, batch.orders.price
    failed[_ROW[Reason.KILL_SWITCH]] = state.killed[a] | state.kill_all
    np.equal(a, len(limits.accounts), out=failed[_ROW[Reason.UNKNOWN_ACCOUNT]])
    np.equal(i, len(limits.instruments), out=failed[_ROW[Reason.UNKNOWN_INSTRUMENT]])
    np.greater(batch.orders.qty, tab.max_qty[i], out=failed[_ROW[Reason.MAX_ORDER_QTY]])
    np.greater(batch.notional, tab.max_notional[i], out=failed[_ROW[Reason.MAX_NOTIONAL]])
    ref = state.reference_price[i]
    within = np.abs(price - ref) <= tab.price_band[i] * ref  # NaN reference → False
    np.logical_not(within, out=failed[_ROW[Reason.PRICE_BAND]])


def _window_rules(batch: _Batch, limits: RiskLimits, state: RiskState, failed: Bools) -> Grouping:
    """Duplicate and rate rules over history + batch; returns the account grouping."""
    tab, hist, orders = limits.tables, state.recent, batch.orders
    m = len(hist)
    a_all = np.concatenate(
        [_dense(hist.account, tab.account_lut, len(limits.accounts)), batch.account]
    )
    i_h = _dense(hist.instrument, tab.instrument_lut, len(limits.instruments))
    ts_all = np.concatenate([hist.ts, orders.ts])
    dup = duplicate_mask(
        a_all,
        np.concatenate([i_h, batch.instrument]),
        np.concatenate([hist.side, orders.side]),
        np.concatenate([hist.qty, orders.qty]),
        np.concatenate([hist.price, orders.price]),
        ts_all,
        limits.duplicate_window_ns,
    )
    failed[_ROW[Reason.DUPLICATE]] = dup[m:]
    by_account = Grouping.of(a_all)
    recent = by_account.window_counts(ts_all, limits.rate_window_ns)[m:]
    np.greater_equal(recent, tab.max_rate[batch.account], out=failed[_ROW[Reason.RATE_THROTTLE]])
    return by_account


def _stateful_rules(
    batch: _Batch, limits: RiskLimits, state: RiskState, failed: Bools, by_account: Grouping
) -> None:
    """Open orders, position and exposure against the projection of earlier included orders."""
    tab, m = limits.tables, len(state.recent)
    a, i, buy, qty = batch.account, batch.instrument, batch.buy, batch.orders.qty
    included = np.logical_not(failed[: len(PREFILTER)].any(axis=0))
    minor = np.ceil(np.minimum(batch.notional * limits.scale, float(NOTIONAL_CAP))).astype(np.int64)
    inc_buy, inc_sell = included & buy, included & ~buy
    pad = np.zeros(m, dtype=np.int64)

    def account_before(values: I64) -> I64:
        return by_account.exclusive_cumsum(np.concatenate([pad, values]))[m:]

    open_before = account_before(included.astype(np.int64))
    buy_minor_before = account_before(np.where(inc_buy, minor, 0))
    sell_minor_before = account_before(np.where(inc_sell, minor, 0))
    failed[_ROW[Reason.MAX_OPEN_ORDERS]] = (
        state.open_orders[a] + open_before + 1 > tab.max_open_orders[a]
    )
    pair = a * (len(limits.instruments) + 1) + i
    by_pair = Grouping.of(pair)
    position = state.position.ravel()[pair]
    max_position = tab.max_position[i]
    worst_long = (
        position
        + state.open_buy.ravel()[pair]
        + by_pair.exclusive_cumsum(np.where(inc_buy, qty, 0))
        + qty
    )
    worst_short = (
        position
        - state.open_sell.ravel()[pair]
        - by_pair.exclusive_cumsum(np.where(inc_sell, qty, 0))
        - qty
    )
    failed[_ROW[Reason.POSITION_LIMIT]] = np.where(
        buy, worst_long > max_position, worst_short < -max_position
    )
    failed[_ROW[Reason.GROSS_EXPOSURE]] = (
        state.gross[a] + buy_minor_before + sell_minor_before + minor > tab.max_gross_minor[a]
    )
    max_net = tab.max_net_minor[a]
    failed[_ROW[Reason.NET_EXPOSURE]] = np.where(
        buy,
        state.net_long[a] + buy_minor_before + minor > max_net,
        state.net_short[a] - sell_minor_before - minor < -max_net,
    )


def _dense(ids: I64, lut: I64, sentinel: int) -> I64:
    """Table row per id; unknown ids (negative, too large, or unused) → ``sentinel``."""
    if lut.shape[0] == 0:
        return np.full(ids.shape[0], sentinel, dtype=np.int64)
    known = (ids >= 0) & (ids < lut.shape[0])
    rows = lut[np.where(known, ids, 0)]
    return np.where(known, rows, sentinel)


@dataclass(frozen=True)
class Grouping:
    """Entries sorted by (key, index): groups are contiguous and keep arrival order.

    The index rides in the low bits of the sort keys, so keys are unique and any
    (SIMD, unstable) sort gives the stable order. ``keys`` must be in 0..2**40.
    """

    order: NDArray[np.intp]
    composite: I64
    first: NDArray[np.intp]  # per sorted position: where its group starts

    @classmethod
    def of(cls, keys: I64) -> Grouping:
        """Group ``keys`` (one sort)."""
        n = keys.shape[0]
        composite = np.sort((keys << _SHIFT) | np.arange(n, dtype=np.int64))
        order = (composite & _MASK).astype(np.intp)
        sorted_keys = composite >> _SHIFT
        starts = np.empty(n, dtype=np.bool_)
        starts[:1] = True
        np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=starts[1:])
        first = np.maximum.accumulate(np.where(starts, np.arange(n, dtype=np.intp), 0))
        return cls(order=order, composite=composite, first=first)

    def exclusive_cumsum(self, values: I64) -> I64:
        """Per entry k: the sum of ``values[j]`` over earlier entries j < k of its group.

        Integer sums are exact, so this equals the scalar running sum bit for bit.
        """
        ordered = values[self.order]
        before = np.cumsum(ordered) - ordered
        if before.shape[0]:
            before -= before[self.first]
        out = np.empty_like(values)
        out[self.order] = before
        return out

    def window_counts(self, ts: I64, window: int) -> I64:
        """Per entry k: earlier entries j < k of its group with ts[j] > ts[k] - window.

        ``ts`` is non-decreasing, so those are the group's entries with index in
        [r, k), r = searchsorted(ts, ts[k] - window, 'right'); in sorted order the
        needles are sorted too, which keeps the second search cheap.
        """
        n = ts.shape[0]
        first_in_window = np.searchsorted(ts, ts - window, side="right")
        needles = (self.composite & ~_MASK) | first_in_window[self.order]
        lo = np.searchsorted(self.composite, needles)
        out = np.empty(n, dtype=np.int64)
        out[self.order] = np.arange(n, dtype=np.int64) - lo
        return out


_K = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xC2B2AE3D27D4EB4F),
    np.uint64(0x165667B19E3779F9),
    np.uint64(0xD6E8FEB86659FD93),
    np.uint64(0xFF51AFD7ED558CCD),
)


def key_hash(
    accounts: I64, instruments: I64, side: NDArray[np.int8], qty: I64, price: NDArray[np.float64]
) -> U64:
    """A 64-bit mix of the duplicate key; collisions are detected and handled exactly."""
    h = accounts.astype(np.uint64) * _K[0]
    h += instruments.astype(np.uint64) * _K[1]
    h += side.astype(np.uint64) * _K[2]
    h += qty.astype(np.uint64) * _K[3]
    h ^= np.ascontiguousarray(price).view(np.uint64)
    h *= _K[4]
    h ^= h >> np.uint64(29)
    h *= _K[0]
    h ^= h >> np.uint64(32)
    return h


def duplicate_mask(
    accounts: I64,
    instruments: I64,
    side: NDArray[np.int8],
    qty: I64,
    price: NDArray[np.float64],
    ts: I64,
    window: int,
    hasher: KeyHash = key_hash,
) -> Bools:
    """Entry k is a duplicate when an earlier entry has the same key and ts[k] - ts[j] ≤ window.

    Sorting by (hash, index) puts equal keys next to each other in arrival order, so
    only the nearest earlier twin (the latest one: ts is non-decreasing) is compared.
    If two different keys share a hash, equal keys may not be adjacent: then the
    exact lexicographic sort is used instead.
    """
    n = ts.shape[0]
    dup = np.zeros(n, dtype=np.bool_)
    if n < 2:
        return dup
    index = np.arange(n, dtype=np.uint64)
    high = hasher(accounts, instruments, side, qty, price) >> np.uint64(_SHIFT)
    composite = np.sort((high << np.uint64(_SHIFT)) | index)
    order = (composite & np.uint64(_MASK)).astype(np.intp)
    same_key = _adjacent_equal(order, accounts, instruments, side, qty, price)
    same_hash = (composite[1:] >> np.uint64(_SHIFT)) == (composite[:-1] >> np.uint64(_SHIFT))
    if np.any(same_hash & ~same_key):
        order = np.lexsort((index, price, qty, side, instruments, accounts))
        same_key = _adjacent_equal(order, accounts, instruments, side, qty, price)
    later, earlier = order[1:], order[:-1]
    dup[later] = same_key & (ts[later] - ts[earlier] <= window)
    return dup


def _adjacent_equal(
    order: NDArray[np.intp],
    accounts: I64,
    instruments: I64,
    side: NDArray[np.int8],
    qty: I64,
    price: NDArray[np.float64],
) -> Bools:
    later, earlier = order[1:], order[:-1]
    same: Bools = accounts[later] == accounts[earlier]
    same &= instruments[later] == instruments[earlier]
    same &= side[later] == side[earlier]
    same &= qty[later] == qty[earlier]
    same &= price[later] == price[earlier]
    return same


def apply_vector(
    orders: OrderBatch, result: CheckResult, limits: RiskLimits, state: RiskState
) -> RiskState:
    """The state after a checked batch: accepted orders become open orders; all are recent."""
    if len(result) != len(orders):
        raise RiskError(f"result has {len(result)} orders, batch has {len(orders)}")
    tab = limits.tables
    ok = result.accepted
    a = _dense(orders.account, tab.account_lut, len(limits.accounts))[ok]
    i = _dense(orders.instrument, tab.instrument_lut, len(limits.instruments))[ok]
    qty = orders.qty[ok]
    buy = orders.side[ok] == BUY
    notional = qty.astype(np.float64) * orders.price[ok]
    minor = np.ceil(np.minimum(notional * limits.scale, float(NOTIONAL_CAP))).astype(np.int64)
    open_buy, open_sell = state.open_buy.copy(), state.open_sell.copy()
    np.add.at(open_buy, (a[buy], i[buy]), qty[buy])
    np.add.at(open_sell, (a[~buy], i[~buy]), qty[~buy])
    open_orders, gross = state.open_orders.copy(), state.gross.copy()
    np.add.at(open_orders, a, 1)
    np.add.at(gross, a, minor)
    net_long, net_short = state.net_long.copy(), state.net_short.copy()
    np.add.at(net_long, a[buy], minor[buy])
    np.subtract.at(net_short, a[~buy], minor[~buy])
    recent = state.recent.concat(orders)
    if len(recent):
        horizon = int(recent.ts[-1]) - limits.history_window_ns
        recent = recent.select(slice(int(np.searchsorted(recent.ts, horizon, side="left")), None))
    for arr in (open_buy, open_sell, open_orders, gross, net_long, net_short):
        arr.setflags(write=False)
    return replace(
        state,
        open_buy=open_buy,
        open_sell=open_sell,
        open_orders=open_orders,
        gross=gross,
        net_long=net_long,
        net_short=net_short,
        recent=recent,
    )
