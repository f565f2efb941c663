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
one sort: numpy's stable radix sort of the group as uint16 when there are at most
2**16 groups (O(n), about 5x faster here than a comparison sort), otherwise a sort of
``(group << bits) | index`` keys — unique, so an unstable SIMD sort keeps arrival
order inside each group (int32 keys when they fit: twice as fast).

Duplicate detection and the rate throttle count every submission (rejected ones
too), including ``state.recent`` from earlier batches. Duplicates are found
without sorting when the window holds only a few submissions (the usual case).

Most table rows are decided without grouping: the batch totals of an account (or
account × instrument × side) bound every running sum, so when even the largest
projection passes, or the smallest fails, one gather decides all its orders. Only
the orders of undecided rows are grouped, counted and summed exactly — or every
order when most are undecided (exact sums decide the others as their bounds do),
which lets the rate and the account rules share one account sort. Grouped work
happens in sorted order: each column is gathered once, each rule's result
scattered once; the rate window is one gather (no search). The large temporaries
of that work live in per-thread ``Scratch`` arrays reused from batch to batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, TypeVar

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
# Gathers into ``out=`` pass mode="wrap": their indices are table rows in range by
# construction, and the default mode="raise" copies ``out`` first (about 1.6x slower).
_ROW = {reason: row for row, reason in enumerate(RULES)}

I64 = NDArray[np.int64]
U64 = NDArray[np.uint64]
Bools = NDArray[np.bool_]
KeyHash = Callable[[I64, I64, NDArray[np.int8], I64, NDArray[np.float64]], U64]
_G = TypeVar("_G", bound=np.generic)

SCRATCH_MAX = 1 << 16  # entries: batches up to this size reuse per-thread scratch arrays


class Scratch:
    """Named arrays kept between batches of one thread, so a batch reuses resident pages.

    Why: the temporaries of a large batch come from heap pages the allocator hands
    back after each call; faulting them in again took about half the time of a
    65536-order batch on the benchmark machine. Only batches up to ``SCRATCH_MAX``
    entries use it (about 18 MiB per thread after binding and loose 65536-order
    batches); larger ones allocate as before. An array from here is valid until the
    same name is asked for again: never return one.
    """

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, type[np.generic]], np.ndarray[Any, Any]] = {}
        self._ramp = np.arange(1024, dtype=np.int32)
        self._ramp.setflags(write=False)

    def array(self, name: str, n: int, dtype: type[_G]) -> NDArray[_G]:
        """An uninitialised length-``n`` array of ``dtype`` (fresh when ``n`` is large)."""
        if n > SCRATCH_MAX:
            return np.empty(n, dtype=dtype)
        key = (name, dtype)
        buf = self._arrays.get(key)
        if buf is None or buf.shape[0] < n:
            buf = np.empty(max(n, 1024), dtype=dtype)
            self._arrays[key] = buf
        view: NDArray[_G] = buf[:n]
        return view

    def ramp(self, n: int) -> NDArray[np.int32]:
        """0, 1, … n-1 as int32 (read-only: shared by every caller)."""
        if n > SCRATCH_MAX:
            return np.arange(n, dtype=np.int32)
        if self._ramp.shape[0] < n:
            self._ramp = np.arange(n, dtype=np.int32)
            self._ramp.setflags(write=False)
        return self._ramp[:n]


_LOCAL = threading.local()


def scratch() -> Scratch:
    """This thread's scratch arrays (threads never share one)."""
    found: Scratch | None = getattr(_LOCAL, "scratch", None)
    if found is None:
        found = _LOCAL.scratch = Scratch()
    return found


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
    tab, ws = limits.tables, scratch()
    notional = ws.array("notional", n, np.float64)
    np.multiply(orders.qty, orders.price, out=notional)  # qty converts exactly (< 2**53)
    account = _dense(orders.account, tab.account_rows, ws, "account")
    buy = np.equal(orders.side, BUY, out=ws.array("buy", n, np.bool_))
    buy_count = ws.array("buy.count", n, np.int64)
    np.copyto(buy_count, buy)
    batch = _Batch(
        orders=orders,
        account=account,
        instrument=_dense(orders.instrument, tab.instrument_rows, ws, "instrument"),
        buy=buy,
        buy_count=buy_count,
        notional=notional,
        per_account=np.bincount(account, minlength=tab.max_rate.shape[0]),
        scratch=ws,
    )
    failed = np.empty((len(RULES), n), dtype=np.bool_)
    _stateless_rules(batch, limits, state, failed)
    _window_rules(batch, limits, state, failed)
    if n:
        _stateful_rules(batch, limits, state, failed)
    return CheckResult.from_failed(failed)


@dataclass(frozen=True)
class _Batch:
    """Per-order columns every rule shares (table rows instead of ids)."""

    orders: OrderBatch
    account: I64
    instrument: I64
    buy: Bools
    buy_count: I64  # ``buy`` as 0/1: integer arithmetic with bools takes a slow casting loop
    notional: NDArray[np.float64]
    per_account: I64  # orders per account row
    scratch: Scratch

    @cached_property
    def by_account(self) -> Grouping:
        """The batch grouped by account: shared by the rate and the account rules."""
        return Grouping.of(self.account, self.per_account.shape[0], self.scratch, "account")

    def grouped(
        self, keys: I64, bound: int, undecided: Bools | None, tag: str
    ) -> tuple[Grouping, NDArray[np.intp]]:
        """The undecided orders grouped by ``keys`` (all below ``bound``), and the batch
        index per sorted position.

        When most orders are undecided, all are grouped: exact sums decide the others
        the same way as their bounds did, and no subset has to be gathered.
        """
        if undecided is None or 2 * int(np.count_nonzero(undecided)) > undecided.shape[0]:
            if keys is self.account:
                grouping = self.by_account
            else:
                grouping = Grouping.of(keys, bound, self.scratch, tag)
            return grouping, grouping.order
        sub = np.flatnonzero(undecided)
        grouping = Grouping.of(keys.take(sub), bound, self.scratch, tag)
        return grouping, sub.take(grouping.order)


def _stateless_rules(batch: _Batch, limits: RiskLimits, state: RiskState, failed: Bools) -> None:
    """Per-instrument limits are gathered once per order from small per-batch tables."""
    tab, ws = limits.tables, batch.scratch
    a, i, orders = batch.account, batch.instrument, batch.orders
    n = a.shape[0]
    np.take(state.killed | state.kill_all, a, out=failed[_ROW[Reason.KILL_SWITCH]], mode="wrap")
    np.equal(a, len(limits.accounts), out=failed[_ROW[Reason.UNKNOWN_ACCOUNT]])
    np.equal(i, len(limits.instruments), out=failed[_ROW[Reason.UNKNOWN_INSTRUMENT]])
    max_qty = tab.max_qty.take(i, out=ws.array("max_qty", n, np.int64), mode="wrap")
    np.greater(orders.qty, max_qty, out=failed[_ROW[Reason.MAX_ORDER_QTY]])
    limit = tab.max_notional.take(i, out=ws.array("limit", n, np.float64), mode="wrap")
    np.greater(batch.notional, limit, out=failed[_ROW[Reason.MAX_NOTIONAL]])
    ref = state.reference_price
    band = (tab.price_band * ref).take(i, out=limit, mode="wrap")  # = band[i] * ref[i]
    distance = ref.take(i, out=ws.array("distance", n, np.float64), mode="wrap")
    np.subtract(orders.price, distance, out=distance)
    np.abs(distance, out=distance)
    row = failed[_ROW[Reason.PRICE_BAND]]
    np.less_equal(distance, band, out=row)  # NaN reference → False
    np.logical_not(row, out=row)


def _window_rules(batch: _Batch, limits: RiskLimits, state: RiskState, failed: Bools) -> None:
    """Duplicate and rate rules over history + batch."""
    tab, hist, orders = limits.tables, state.recent, batch.orders
    m = len(hist)
    submissions = batch.per_account
    if m:
        a_hist = _dense(hist.account, tab.account_rows)
        submissions = submissions + np.bincount(a_hist, minlength=submissions.shape[0])
        a_all = np.concatenate([a_hist, batch.account])
        i_all = np.concatenate([_dense(hist.instrument, tab.instrument_rows), batch.instrument])
        side = np.concatenate([hist.side, orders.side])
        qty = np.concatenate([hist.qty, orders.qty])
        price = np.concatenate([hist.price, orders.price])
        ts_all = np.concatenate([hist.ts, orders.ts])
    else:
        a_all, i_all, ts_all = batch.account, batch.instrument, orders.ts
        side, qty, price = orders.side, orders.qty, orders.price
    dup = duplicate_mask(a_all, i_all, side, qty, price, ts_all, limits.duplicate_window_ns)
    failed[_ROW[Reason.DUPLICATE]] = dup[m:]
    rate = failed[_ROW[Reason.RATE_THROTTLE]]
    _rate_rule(batch, a_all, ts_all, submissions, limits, rate)


def _rate_rule(
    batch: _Batch, a_all: I64, ts_all: I64, submissions: I64, limits: RiskLimits, out: Bools
) -> None:
    """Throttle per account; the window is only counted for accounts it could bind.

    An account with at most ``max_rate`` submissions in history + batch can never
    have ``max_rate`` earlier ones in its window; one with ``max_rate == 0`` always
    has. Only the other accounts' submissions are grouped (all of the batch when
    they are most of it, see ``_Batch.grouped``): a submission is throttled when the
    one ``max_rate`` places earlier in its account's group is still in the window.
    """
    max_rate = limits.tables.max_rate
    always = max_rate <= 0
    a = batch.account
    np.take(always, a, out=out, mode="wrap")
    undecided = ~always & (submissions > max_rate)
    if not undecided.any():
        return
    m = a_all.shape[0] - a.shape[0]
    if m:
        sub = np.flatnonzero(undecided.take(a_all))
        by_account = Grouping.of(a_all.take(sub), max_rate.shape[0], batch.scratch, "rate")
        entry = sub.take(by_account.order)  # history + batch index per sorted position
    else:
        by_account, entry = batch.grouped(a, max_rate.shape[0], undecided.take(a), "rate")
    ordered_ts = batch.scratch.array("rate.ts", entry.shape[0], np.int64)
    ts_all.take(entry, out=ordered_ts, mode="wrap")  # entries are in range: no checked copy
    common = limits.tables.common_rate  # rows with max_rate <= 0 are overwritten below
    if common:
        hit = by_account.reaches_back(ordered_ts, limits.rate_window_ns, common, batch.scratch)
    else:
        need = np.maximum(max_rate, 1).take(by_account.keys)
        hit = by_account.reaches(ordered_ts, limits.rate_window_ns, need, batch.scratch)
    hit |= always.take(by_account.keys)  # decided rows may be grouped too (see grouped)
    if m:
        in_batch = entry >= m
        entry = entry[in_batch]
        entry -= m
        out[entry] = hit[in_batch]
    else:
        _scatter(out, hit, by_account, entry)


_EXACT = 2**53  # float64 sums of integers below this are exact (bincount sums in float64)


def _stateful_rules(batch: _Batch, limits: RiskLimits, state: RiskState, failed: Bools) -> None:
    """Open orders, position and exposure against the projection of earlier included orders.

    Per account (and account × instrument × side) the batch totals bound every
    running sum, so a table row where even the largest projection passes, or the
    smallest fails, decides all its orders with one gather. Only the orders of the
    remaining rows get the exact grouped running sums.
    """
    tab, orders, ws = limits.tables, batch.orders, batch.scratch
    a, qty, n = batch.account, orders.qty, batch.account.shape[0]
    included = ws.array("proj.included", n, np.int64)
    np.logical_not(failed[: len(PREFILTER)].any(axis=0), out=included, casting="unsafe")
    scaled = np.multiply(batch.notional, limits.scale, out=ws.array("scaled", n, np.float64))
    np.minimum(scaled, float(NOTIONAL_CAP), out=scaled)
    np.ceil(scaled, out=scaled)
    minor = ws.array("proj.minor", n, np.int64)
    np.copyto(minor, scaled, casting="unsafe")
    side_key = np.multiply(a, 2, out=ws.array("proj.side_key", n, np.int64))
    side_key += batch.buy_count
    n_rows = tab.max_open_orders.shape[0]
    exact = int(minor.sum()) < _EXACT and int(qty.sum()) < _EXACT
    if exact:
        minor_total = np.bincount(side_key, weights=minor, minlength=2 * n_rows)
    else:
        minor_total = np.zeros(2 * n_rows)
    sums = _Totals(
        sells_minor=minor_total[0::2].astype(np.int64),
        buys_minor=minor_total[1::2].astype(np.int64),
        orders=batch.per_account,
        min_minor=int(minor.min()),
        min_lots=int(qty.min()),
    )
    proj = _Projection(included=included, minor=minor, side_key=side_key)
    _account_rules(batch, limits, state, failed, sums, proj, decided_all=exact)
    _position_rule(batch, limits, state, failed, sums, proj, decided_all=exact)


@dataclass(frozen=True)
class _Totals:
    """Batch totals per account row (every order, included or not): bounds on running sums."""

    sells_minor: I64
    buys_minor: I64
    orders: I64
    min_minor: int
    min_lots: int


@dataclass(frozen=True)
class _Projection:
    included: I64  # 0/1 per order
    minor: I64
    side_key: I64  # account row * 2 + buy


def _account_rules(
    batch: _Batch,
    limits: RiskLimits,
    state: RiskState,
    failed: Bools,
    sums: _Totals,
    proj: _Projection,
    *,
    decided_all: bool,
) -> None:
    tab = limits.tables
    a = batch.account
    max_open, max_gross, max_net = tab.max_open_orders, tab.max_gross_minor, tab.max_net_minor
    open_fail = state.open_orders + 1 > max_open
    open_pass = state.open_orders + sums.orders <= max_open
    gross_fail = state.gross + sums.min_minor > max_gross
    gross_pass = state.gross + sums.buys_minor + sums.sells_minor <= max_gross
    net_fail = np.empty((max_net.shape[0], 2), dtype=np.bool_)  # [:, 0] sells, [:, 1] buys
    net_pass = np.empty_like(net_fail)
    neg_max_net = -max_net
    np.less(state.net_short - sums.min_minor, neg_max_net, out=net_fail[:, 0])
    np.greater(state.net_long + sums.min_minor, max_net, out=net_fail[:, 1])
    np.greater_equal(state.net_short - sums.sells_minor, neg_max_net, out=net_pass[:, 0])
    np.less_equal(state.net_long + sums.buys_minor, max_net, out=net_pass[:, 1])
    np.take(open_fail, a, out=failed[_ROW[Reason.MAX_OPEN_ORDERS]], mode="wrap")
    np.take(gross_fail, a, out=failed[_ROW[Reason.GROSS_EXPOSURE]], mode="wrap")
    np.take(net_fail.ravel(), proj.side_key, out=failed[_ROW[Reason.NET_EXPOSURE]], mode="wrap")
    undecided = (
        ~(open_fail | open_pass) | ~(gross_fail | gross_pass) | ~(net_fail | net_pass).all(axis=1)
    )
    if decided_all and not undecided.any():
        return
    _account_rules_exact(
        undecided.take(a) if decided_all else None, batch, limits, state, failed, proj
    )


def _account_rules_exact(
    undecided: Bools | None,
    batch: _Batch,
    limits: RiskLimits,
    state: RiskState,
    failed: Bools,
    proj: _Projection,
) -> None:
    """Grouped running sums over the undecided orders (every order if None).

    Computed in sorted order (one gather per column, one scatter per rule); each
    rule compares the running sum with a per-account room (limit minus state).
    """
    tab = limits.tables
    by_account, entry = batch.grouped(batch.account, tab.max_rate.shape[0], undecided, "exact")
    a = by_account.keys
    ws, n = batch.scratch, entry.shape[0]
    buy = batch.buy_count.take(entry, out=ws.array("buy", n, np.int64), mode="wrap")
    minor = proj.minor.take(entry, out=ws.array("minor", n, np.int64), mode="wrap")
    included = proj.included.take(entry, out=ws.array("included", n, np.int64), mode="wrap")
    counted = np.multiply(minor, included, out=ws.array("counted", n, np.int64))
    room = ws.array("room", n, np.int64)  # per sorted position: its account's room
    open_before = by_account.before(included, ws.array("open", n, np.int64))
    open_room = tab.max_open_orders - state.open_orders  # fails when open + before + 1 > max
    open_room.take(a, out=room, mode="wrap")
    hit = ws.array("hit", n, np.bool_)
    _scatter(
        failed[_ROW[Reason.MAX_OPEN_ORDERS]],
        np.greater_equal(open_before, room, out=hit),
        by_account,
        entry,
    )
    gross = by_account.before(counted, ws.array("gross", n, np.int64))  # buys + sells before
    gross += minor
    gross_room = tab.max_gross_minor - state.gross
    gross_room.take(a, out=room, mode="wrap")
    _scatter(
        failed[_ROW[Reason.GROSS_EXPOSURE]], np.greater(gross, room, out=hit), by_account, entry
    )
    counted *= buy
    side = by_account.before(counted, ws.array("side", n, np.int64))  # buys before
    gross -= side  # sells before + this order
    side += minor  # buys before + this order
    side -= gross  # the projected side of each order: sells + buy × (buys − sells), in
    side *= buy  # integer arithmetic (a masked copy is several times slower)
    gross += side
    net_room = np.empty((tab.max_net_minor.shape[0], 2), dtype=np.int64)  # [:, 0] sells
    np.add(tab.max_net_minor, state.net_short, out=net_room[:, 0])
    np.subtract(tab.max_net_minor, state.net_long, out=net_room[:, 1])
    side_key = np.multiply(a, 2, out=ws.array("side_key", n, np.int64))
    side_key += buy
    net_room.ravel().take(side_key, out=room, mode="wrap")
    _scatter(failed[_ROW[Reason.NET_EXPOSURE]], np.greater(gross, room, out=hit), by_account, entry)


def _scatter(row: Bools, ordered: Bools, grouping: Grouping, entry: NDArray[np.intp]) -> None:
    """``row[entry] = ordered``: a gather by rank when every order was grouped (scatters
    are about twice as slow as gathers), else the scatter.
    """
    if entry is grouping.order:
        ordered.take(grouping.rank, out=row, mode="wrap")
    else:
        row[entry] = ordered


def _position_rule(
    batch: _Batch,
    limits: RiskLimits,
    state: RiskState,
    failed: Bools,
    sums: _Totals,
    proj: _Projection,
    *,
    decided_all: bool,
) -> None:
    """Worst-case position per account × instrument × side, decided per table cell first."""
    max_position = limits.tables.max_position
    room = np.empty((2, *state.position.shape), dtype=np.int64)  # [0] sells, [1] buys
    np.subtract(state.position, state.open_sell, out=room[0])  # a sell fails when sells
    room[0] += max_position  # before + qty > position - open sells + max
    np.subtract(max_position, state.position, out=room[1])  # a buy when buys before + qty
    room[1] -= state.open_buy  # > max - position - open buys
    fail = np.less(room, sums.min_lots)
    ws, cells = batch.scratch, room.size
    key = np.multiply(
        batch.buy_count, cells // 2, out=ws.array("cell", batch.buy.shape[0], np.int64)
    )
    key += batch.instrument  # table cell (side, account, instrument)
    pair = np.multiply(batch.account, room.shape[2], out=ws.array("pair", key.shape[0], np.int64))
    key += pair
    row = failed[_ROW[Reason.POSITION_LIMIT]]
    np.take(fail.ravel(), key, out=row, mode="wrap")
    undecided = None
    if decided_all:  # lots per cell, every order counted: a bound on before + qty
        lots_total = np.bincount(key, weights=batch.orders.qty, minlength=cells)
        # Compared as float64, exactly: totals are below 2**53 (decided_all), and rounding
        # a room is monotone, so one of 2**53 or more still compares as at least 2**53.
        undecided = np.less(room.ravel(), lots_total)
        undecided &= ~fail.ravel()
        if not undecided.any():
            return
        undecided = undecided.take(key)
    # Exact: running lots per (pair, side) group against the room of its table cell.
    by_cell, entry = batch.grouped(key, cells, undecided, "cell")
    n = entry.shape[0]
    qty = batch.orders.qty.take(entry, out=ws.array("qty", n, np.int64), mode="wrap")
    counted = proj.included.take(entry, out=ws.array("counted", n, np.int64), mode="wrap")
    counted *= qty
    lots = by_cell.before(counted, ws.array("lots", n, np.int64))
    lots += qty
    cell_room = room.ravel().take(by_cell.keys, out=ws.array("cell.room", n, np.int64), mode="wrap")
    hit = np.greater(lots, cell_room, out=ws.array("cell.hit", n, np.bool_))
    _scatter(row, hit, by_cell, entry)


def _dense(ids: I64, rows: I64, ws: Scratch | None = None, tag: str = "") -> I64:
    """Table row per id; unknown ids (negative, too large, or unused) → the sentinel row.

    ``rows`` ends with the sentinel: as unsigned, negative ids are huge, so clipping
    to its last index sends every out-of-range id there in one pass. With ``ws`` the
    result is its ``tag`` array.
    """
    n = ids.shape[0]
    clipped = np.empty(n, dtype=np.intp) if ws is None else ws.array(tag + ".clip", n, np.intp)
    np.minimum(ids.view(np.uint64), rows.shape[0] - 1, out=clipped.view(np.uint64))
    dense: I64 = rows.take(
        clipped, out=None if ws is None else ws.array(tag, n, np.int64), mode="wrap"
    )
    return dense


@dataclass(frozen=True)
class Grouping:
    """Entries sorted by (key, index): groups are contiguous and keep arrival order.

    Below 2**16 keys a stable (radix) sort keeps arrival order; above, the index rides
    in the low bits of the sort keys, so keys are unique and any (SIMD, unstable) sort
    gives the stable order. ``keys`` must be in 0..2**40.
    Callers work in sorted order: gather each column once with ``order``, compute
    with ``before`` / ``reaches``, scatter each result once.
    """

    order: NDArray[np.intp]  # entry per sorted position
    keys: I64  # key per sorted position (non-decreasing)
    first: NDArray[np.intp]  # per sorted position: where its group starts
    ws: Scratch
    tag: str

    @classmethod
    def of(
        cls, keys: I64, bound: int = 1 << 40, ws: Scratch | None = None, tag: str = ""
    ) -> Grouping:
        """Group ``keys`` (one sort); every key is below ``bound``.

        Keys below 2**16 are sorted as uint16 by numpy's stable (radix) sort, O(n), and
        each group's start comes from a count per key. Otherwise the index rides in the
        low bits (int32 when key and index fit in 31 bits: twice as fast as int64). With
        ``ws`` the grouping lives in its ``tag`` arrays (valid until that tag is grouped
        again).
        """
        ws = ws or Scratch()
        n = keys.shape[0]
        bits = max(1, (n - 1).bit_length())
        composite = ws.array(tag + ".keys", n, np.int64)
        first = ws.array(tag + ".first", n, np.intp)
        if bound <= 1 << 16:  # a stable sort of 16-bit keys is numpy's radix sort
            small = ws.array(tag + ".small", n, np.uint16)
            np.copyto(small, keys, casting="unsafe")
            order: NDArray[np.intp] = np.argsort(small, kind="stable")
            keys.take(order, out=composite, mode="wrap")
            count = np.bincount(small, minlength=bound)
            start = np.cumsum(count)
            start -= count  # sorted position where each key's group starts
            start.take(composite, out=first, mode="wrap")
            return cls(order=order, keys=composite, first=first, ws=ws, tag=tag)
        order = ws.array(tag + ".order", n, np.intp)
        if bound << bits <= 1 << 31:
            narrow = ws.array(tag + ".narrow", n, np.int32)
            narrow[...] = keys
            narrow <<= bits
            narrow |= ws.ramp(n)
            narrow.sort()
            np.bitwise_and(narrow, (1 << bits) - 1, out=order, casting="unsafe")
            narrow >>= bits
            composite[...] = narrow
        else:
            np.left_shift(keys, _SHIFT, out=composite)
            composite |= ws.ramp(n)
            composite.sort()
            np.bitwise_and(composite, _MASK, out=order)
            composite >>= _SHIFT
        starts = np.not_equal(  # ramp where a group starts, then carried
            composite[1:], composite[:-1], out=ws.array(tag + ".starts", n, np.bool_)[1:]
        )
        np.multiply(starts, ws.ramp(n)[1:], out=first[1:])
        first[:1] = 0
        np.maximum.accumulate(first, out=first)
        return cls(order=order, keys=composite, first=first, ws=ws, tag=tag)

    @cached_property
    def rank(self) -> NDArray[np.intp]:
        """Per entry: its sorted position (``order`` inverted, one scatter)."""
        n = self.order.shape[0]
        rank = self.ws.array(self.tag + ".rank", n, np.intp)
        rank[self.order] = self.ws.ramp(n)
        return rank

    def before(self, ordered: I64, out: I64 | None = None) -> I64:
        """Per sorted position: the sum of ``ordered`` (each ≥ 0) over the earlier positions
        of its group (into ``out`` if given; it must not be ``ordered``).

        Integer sums are exact, so this equals the scalar running sum bit for bit.
        """
        out = np.cumsum(ordered, out=out)
        out -= ordered  # exclusive running sum over the whole order
        at_head = out.take(
            self.first, out=self.ws.array("before.head", out.shape[0], np.int64), mode="wrap"
        )
        out -= at_head  # minus its value where the group starts
        return out

    def exclusive_cumsum(self, values: I64) -> I64:
        """``before`` in entry order: per entry, the sum over earlier entries of its group."""
        out = np.empty_like(values)
        out[self.order] = self.before(values.take(self.order))
        return out

    def reaches(self, ordered_ts: I64, window: int, need: I64, ws: Scratch | None = None) -> Bools:
        """Per sorted position p: at least ``need[p]`` (≥ 1) earlier entries of its group
        have ``ts > ordered_ts[p] - window``.

        ``ts`` is non-decreasing within a group, so those entries are the ones just
        before p: it suffices to look at the one ``need[p]`` positions back — a gather,
        no search.
        """
        ws = ws or self.ws
        n = ordered_ts.shape[0]
        back = np.subtract(ws.ramp(n), need, out=ws.array("reach.back", n, np.intp))
        within = np.greater_equal(back, self.first, out=ws.array("reach.within", n, np.bool_))
        np.maximum(back, 0, out=back)
        earlier = ordered_ts.take(back, out=ws.array("reach.ts", n, np.int64), mode="wrap")
        horizon = np.subtract(ordered_ts, window, out=ws.array("reach.horizon", n, np.int64))
        hit = np.greater(earlier, horizon)
        hit &= within
        return hit

    def reaches_back(
        self, ordered_ts: I64, window: int, need: int, ws: Scratch | None = None
    ) -> Bools:
        """``reaches`` with one ``need`` (≥ 1) for every position: the entry ``need`` places
        back is a shifted slice (no gather), in the same group exactly when its key is equal.
        """
        ws = ws or self.ws
        n = ordered_ts.shape[0]
        rest = max(n - need, 0)
        hit = np.zeros(n, dtype=np.bool_)
        later = hit[n - rest :]
        horizon = np.subtract(
            ordered_ts[n - rest :], window, out=ws.array("reach.horizon", rest, np.int64)
        )
        np.greater(ordered_ts[:rest], horizon, out=later)
        later &= np.equal(
            self.keys[n - rest :], self.keys[:rest], out=ws.array("reach.within", rest, np.bool_)
        )
        return hit


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
    """A 64-bit multiplicative hash of the duplicate key (its high bits are used).

    Collisions only cost time: they are detected and handled exactly.
    """
    h = np.multiply(accounts.view(np.uint64), _K[0])
    term = np.multiply(instruments.view(np.uint64), _K[1])
    h += term
    np.copyto(term, side, casting="unsafe")
    term *= _K[2]
    h += term
    np.multiply(qty.view(np.uint64), _K[3], out=term)
    h += term
    h ^= np.ascontiguousarray(price).view(np.uint64)
    h *= _K[4]
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
    max_scan: int = 8,
) -> Bools:
    """Entry k is a duplicate when an earlier entry has the same key and ts[k] - ts[j] ≤ window.

    ``ts`` is non-decreasing, so the entries within the window of k are the few just
    before it: when none is more than ``max_scan`` places back, each distance is
    compared exactly (no sort). Otherwise the keys are hashed and sorted. Only the
    first distance scans the whole batch: an entry within the window at distance d
    is within it at d - 1 too, so each later distance filters the previous survivors.
    """
    n = ts.shape[0]
    dup = np.zeros(n, dtype=np.bool_)
    if n < 2:
        return dup
    columns = (accounts, instruments, side, qty, price)
    ws = scratch()
    gap = np.subtract(ts[1:], ts[:-1], out=ws.array("dup.gap", n - 1, np.int64))
    near = np.less_equal(gap, window, out=ws.array("dup.near", n - 1, np.bool_))
    later = np.flatnonzero(near)
    later += 1  # entries k with ts[k] - ts[k - 1] in the window
    d = 1
    while later.shape[0]:
        if d > max_scan:
            return _duplicate_mask_sorted(*columns, ts, window, hasher)
        earlier = later - d
        dup[later[_equal_keys(later, earlier, *columns)]] = True
        d += 1
        later = later[later >= d]  # k - d must exist
        later = later[ts[later] - ts[later - d] <= window]
    return dup


def _duplicate_mask_sorted(
    accounts: I64,
    instruments: I64,
    side: NDArray[np.int8],
    qty: I64,
    price: NDArray[np.float64],
    ts: I64,
    window: int,
    hasher: KeyHash,
) -> Bools:
    """``duplicate_mask`` by sorting (hash, index): equal keys become neighbours.

    Sorting by (hash, index) puts equal keys next to each other in arrival order, so
    only the nearest earlier twin (the latest one: ts is non-decreasing) is compared;
    only neighbours with equal hashes are compared exactly. If two different keys
    share a hash, equal keys may not be adjacent: then the exact lexicographic sort
    is used instead.
    """
    n = ts.shape[0]
    dup = np.zeros(n, dtype=np.bool_)
    composite = hasher(accounts, instruments, side, qty, price)
    composite &= np.uint64(~_MASK & 0xFFFF_FFFF_FFFF_FFFF)
    composite |= np.arange(n, dtype=np.uint64)
    composite.sort()
    high = composite >> np.uint64(_SHIFT)
    pairs = np.flatnonzero(high[1:] == high[:-1])
    later = (composite[pairs + 1] & np.uint64(_MASK)).astype(np.intp)
    earlier = (composite[pairs] & np.uint64(_MASK)).astype(np.intp)
    same_key = _equal_keys(later, earlier, accounts, instruments, side, qty, price)
    if not same_key.all():
        order = np.lexsort((np.arange(n), price, qty, side, instruments, accounts))
        later, earlier = order[1:], order[:-1]
        same_key = _equal_keys(later, earlier, accounts, instruments, side, qty, price)
    same_key &= ts[later] - ts[earlier] <= window
    dup[later[same_key]] = True
    return dup


def _equal_keys(
    later: NDArray[np.intp],
    earlier: NDArray[np.intp],
    accounts: I64,
    instruments: I64,
    side: NDArray[np.int8],
    qty: I64,
    price: NDArray[np.float64],
) -> Bools:
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
    a = _dense(orders.account, tab.account_rows)[ok]
    i = _dense(orders.instrument, tab.instrument_rows)[ok]
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
