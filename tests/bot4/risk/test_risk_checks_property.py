"""Hypothesis: the vector path, the scalar twin and the single-order path agree exactly."""

from __future__ import annotations

from dataclasses import dataclass
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.risk import (
    AccountLimits,
    InstrumentLimits,
    OrderBatch,
    RiskLimits,
    RiskState,
    SingleOrderChecker,
    apply_scalar,
    apply_vector,
    check_batch_scalar,
    check_batch_vector,
)
from bot4.risk.checks import Grouping, duplicate_mask

STATE_FIELDS = ("open_buy", "open_sell", "open_orders", "gross", "net_long", "net_short")


@dataclass(frozen=True)
class Case:
    limits: RiskLimits
    state: RiskState
    batches: tuple[OrderBatch, ...]


@st.composite
def cases(draw: st.DrawFn, max_orders: int = 60, wide: int = 1) -> Case:
    """Small limits that bind; ``wide`` scales counts and positions for longer batches."""
    n_acct = draw(st.integers(1, 3))
    n_inst = draw(st.integers(1, 3))
    small = st.integers(0, 8 * wide)
    accounts = tuple(
        AccountLimits(
            id=k * 2,
            name=f"a{k}",
            max_gross_exposure=draw(st.sampled_from([50.0, 500.0, 5_000.0, 1e6])),
            max_net_exposure=draw(st.sampled_from([20.0, 300.0, 3_000.0, 1e6])),
            max_open_orders=draw(small),
            max_orders_per_window=draw(small),
        )
        for k in range(n_acct)
    )
    instruments = tuple(
        InstrumentLimits(
            id=k + 1,
            name=f"i{k}",
            max_order_qty=draw(st.integers(0, 10)),
            max_notional=draw(st.sampled_from([0.0, 10.0, 100.0, 1e4])),
            price_band=draw(st.sampled_from([0.0, 0.01, 0.1, 1.0])),
            max_position=draw(st.integers(0, 25 * wide)),
        )
        for k in range(n_inst)
    )
    limits = RiskLimits(
        accounts=accounts,
        instruments=instruments,
        notional_decimals=draw(st.integers(0, 3)),
        duplicate_window_ns=draw(st.integers(1, 20)),
        rate_window_ns=draw(st.integers(1, 30)),
    )
    refs = {
        inst.id: draw(st.sampled_from([1.0, 3.3, 10.0]))
        for inst in instruments
        if draw(st.booleans()) or inst.id == 1
    }
    positions = {
        (a.id, inst_id): draw(st.integers(-20, 20))
        for a in accounts
        for inst_id in refs
        if draw(st.booleans())
    }
    state = RiskState.initial(
        limits,
        refs,
        positions,
        kill_all=draw(st.booleans()) and draw(st.booleans()),
        killed_accounts=[a.id for a in accounts if draw(st.integers(0, 5)) == 0],
    )
    n = draw(st.integers(0, max_orders))
    gaps = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    ts = np.cumsum(np.array(gaps, dtype=np.int64)) if n else np.empty(0, dtype=np.int64)
    columns = {
        "account": st.integers(-1, 2 * n_acct),
        "instrument": st.integers(0, n_inst + 1),
        "side": st.sampled_from([1, -1]),
        "qty": st.integers(1, 12),
        "price": st.sampled_from([0.99, 1.0, 1.01, 3.3, 3.4, 9.5, 10.0, 11.5]),
    }
    drawn = {name: draw(st.lists(s, min_size=n, max_size=n)) for name, s in columns.items()}
    full = OrderBatch.from_columns(ts=ts, **drawn)
    cut = draw(st.integers(0, n))
    return Case(limits, state, (full.select(slice(0, cut)), full.select(slice(cut, None))))


def assert_paths_agree(case: Case) -> None:
    state_v = state_s = case.state
    for orders in case.batches:
        vector = check_batch_vector(orders, case.limits, state_v)
        scalar = check_batch_scalar(orders, case.limits, state_s)
        assert np.array_equal(vector.failed, scalar.failed)
        assert np.array_equal(vector.reasons, scalar.reasons)
        state_v = apply_vector(orders, vector, case.limits, state_v)
        state_s = apply_scalar(orders, scalar, case.limits, state_s)
        for name in STATE_FIELDS:
            assert np.array_equal(getattr(state_v, name), getattr(state_s, name)), name
        assert np.array_equal(state_v.recent.ts, state_s.recent.ts)


@pytest.mark.e2e
@settings(max_examples=250)
@given(cases())
def test_vector_and_scalar_agree_across_batches(case: Case) -> None:
    assert_paths_agree(case)


@pytest.mark.e2e
@settings(max_examples=40, deadline=None)
@given(cases(max_orders=700, wide=30))
def test_vector_and_scalar_agree_on_long_batches(case: Case) -> None:
    """Long batches with limits that still bind: grouped running sums, not only bounds."""
    assert_paths_agree(case)


@pytest.mark.e2e
@settings(max_examples=120)
@given(cases(max_orders=30))
def test_single_order_path_equals_batches_of_one(case: Case) -> None:
    checker = SingleOrderChecker(case.limits, case.state)
    state = case.state
    for orders in case.batches:
        for k in range(len(orders)):
            one = orders.select(slice(k, k + 1))
            result = check_batch_scalar(one, case.limits, state)
            state = apply_scalar(one, result, case.limits, state)
            assert checker.check(orders.order(k)) == int(result.reasons[0])


@settings(max_examples=60)
@given(cases(max_orders=40))
def test_accepted_orders_respect_limits_sequentially(case: Case) -> None:
    """Fail closed: re-checking only the accepted orders of a batch accepts them all."""
    orders = case.batches[0].concat(case.batches[1])
    result = check_batch_vector(orders, case.limits, case.state)
    kept = orders.select(result.accepted)
    recheck = check_batch_vector(kept, case.limits, case.state)
    stateful = recheck.failed[8:]  # open orders, position, gross, net
    assert not stateful.any()


@dataclass(frozen=True)
class Entries:
    accounts: np.ndarray[tuple[int], np.dtype[np.int64]]
    instruments: np.ndarray[tuple[int], np.dtype[np.int64]]
    side: np.ndarray[tuple[int], np.dtype[np.int8]]
    qty: np.ndarray[tuple[int], np.dtype[np.int64]]
    price: np.ndarray[tuple[int], np.dtype[np.float64]]
    ts: np.ndarray[tuple[int], np.dtype[np.int64]]

    def mask(self, window: int, max_scan: int) -> list[bool]:
        found = duplicate_mask(
            self.accounts,
            self.instruments,
            self.side,
            self.qty,
            self.price,
            self.ts,
            window,
            max_scan=max_scan,
        )
        return [bool(x) for x in found.tolist()]


@st.composite
def keyed_entries(draw: st.DrawFn) -> Entries:
    n = draw(st.integers(0, 200))
    small = st.lists(st.integers(0, 2), min_size=n, max_size=n)
    gaps = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    return Entries(
        accounts=np.array(draw(small), dtype=np.int64),
        instruments=np.array(draw(small), dtype=np.int64),
        side=np.array([1 if x else -1 for x in draw(small)], dtype=np.int8),
        qty=np.array(draw(small), dtype=np.int64) + 1,
        price=np.array(draw(small), dtype=np.float64) + 0.5,
        ts=np.cumsum(np.array(gaps, dtype=np.int64)),
    )


@pytest.mark.e2e
@settings(max_examples=200)
@given(keyed_entries(), st.integers(0, 40), st.integers(0, 10))
def test_duplicate_scan_equals_sort_and_definition(
    entries: Entries, window: int, max_scan: int
) -> None:
    """The neighbour scan, the hash sort and the definition give the same mask."""
    e = entries
    columns = (e.accounts, e.instruments, e.side, e.qty, e.price)
    keys = list(zip(*(c.tolist() for c in columns), strict=True))
    times = e.ts.tolist()
    expected = [
        any(keys[j] == keys[k] and times[k] - times[j] <= window for j in range(k))
        for k in range(len(keys))
    ]
    assert e.mask(window, max_scan) == expected
    assert e.mask(window, 0) == expected  # always the hash sort


@settings(max_examples=200)
@given(
    st.lists(st.integers(0, 50), max_size=300),
    # the 16-bit radix sort (twice: small keys, keys up to 65 535), the int32 sort, the int64 one
    st.sampled_from([51, 1 << 16, 1 << 20, 1 << 40]),
)
def test_grouping_running_sums_equal_the_definition(drawn: list[int], bound: int) -> None:
    keys = [k * ((bound - 1) // 50) for k in drawn]  # spread over 0 … bound - 1
    arr = np.array(keys, dtype=np.int64)
    values = np.arange(1, len(keys) + 1, dtype=np.int64) ** 2
    grouping = Grouping.of(arr, bound)
    expected = [
        sum(int(values[j]) for j in range(k) if keys[j] == keys[k]) for k in range(len(keys))
    ]
    assert grouping.exclusive_cumsum(values).tolist() == expected
    assert grouping.keys.tolist() == sorted(keys)
    assert grouping.order.tolist() == sorted(range(len(keys)), key=lambda k: (keys[k], k))
    assert grouping.first.tolist() == [grouping.keys.tolist().index(k) for k in sorted(keys)]


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), max_size=120),
    st.integers(1, 6),
    st.integers(1, 8),
)
def test_reaches_back_equals_reaches_with_one_need(
    entries: list[tuple[int, int]], need: int, window: int
) -> None:
    """The shifted-slice rate window equals the gathered one, and the definition."""
    keys = np.array([k for k, _ in entries], dtype=np.int64)
    ts = np.cumsum(np.array([g for _, g in entries], dtype=np.int64))
    grouping = Grouping.of(keys)
    ordered_ts = ts.take(grouping.order)
    gathered = grouping.reaches(ordered_ts, window, np.full(len(entries), need, dtype=np.int64))
    shifted = grouping.reaches_back(ordered_ts, window, need)
    expected = [
        sum(
            1
            for j in range(p)
            if grouping.keys[j] == grouping.keys[p] and ordered_ts[j] > ordered_ts[p] - window
        )
        >= need
        for p in range(len(entries))
    ]
    assert shifted.tolist() == gathered.tolist() == expected


@st.composite
def boundary_cases(draw: st.DrawFn, slack: st.SearchStrategy[int] | None = None) -> Case:
    """Limits drawn from the batch's own totals: exactly at them, one below or one above.

    Prices are whole numbers and ``notional_decimals`` is 0, so every notional, total
    and limit is an exact integer: the table bounds meet the running sums with equality
    (or miss by one), where an off-by-one in the fast path shows. ``slack`` replaces
    the -1/0/+1 offsets (e.g. a large one for limits no batch can reach).
    """
    offset = slack if slack is not None else st.integers(-1, 1)
    n_acct, n_inst = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(1, 80))
    gaps = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    account_ids = st.integers(0, n_acct) if draw(st.booleans()) else st.integers(0, n_acct - 1)
    columns = {
        "account": draw(st.lists(account_ids, min_size=n, max_size=n)),  # n_acct: unknown
        "instrument": draw(st.lists(st.integers(0, n_inst - 1), min_size=n, max_size=n)),
        "side": draw(st.lists(st.sampled_from([1, -1]), min_size=n, max_size=n)),
        "qty": draw(st.lists(st.integers(1, 12), min_size=n, max_size=n)),
        "price": draw(st.lists(st.sampled_from([2.0, 3.0, 4.0]), min_size=n, max_size=n)),
    }
    orders = OrderBatch.from_columns(ts=np.cumsum(np.array(gaps, dtype=np.int64)), **columns)
    count = [0] * n_acct
    buys, sells = [0] * n_acct, [0] * n_acct
    lots: dict[tuple[int, int, int], int] = {}
    for a, i, side, q, p in zip(*columns.values(), strict=True):
        if a == n_acct:
            continue
        count[a] += 1
        minor = q * int(p)
        if side == 1:
            buys[a] += minor
        else:
            sells[a] += minor
        lots[a, i, side] = lots.get((a, i, side), 0) + q
    accounts = tuple(
        AccountLimits(
            id=a,
            name=f"a{a}",
            max_gross_exposure=float(max(0, buys[a] + sells[a] + draw(offset))),
            max_net_exposure=float(max(0, max(buys[a], sells[a]) + draw(offset))),
            max_open_orders=max(0, count[a] + draw(offset)),
            max_orders_per_window=max(0, count[a] + draw(offset)),
        )
        for a in range(n_acct)
    )
    instruments = tuple(
        InstrumentLimits(
            id=i,
            name=f"i{i}",
            max_order_qty=12,
            max_notional=1e6,
            price_band=1.0,
            max_position=max(
                0,
                draw(st.sampled_from([v for (_, j, _), v in lots.items() if j == i] or [0]))
                + draw(offset),
            ),
        )
        for i in range(n_inst)
    )
    limits = RiskLimits(
        accounts=accounts,
        instruments=instruments,
        notional_decimals=0,
        duplicate_window_ns=draw(st.integers(1, 3)),
        rate_window_ns=draw(st.integers(1, 40)),
    )
    state = RiskState.initial(limits, dict.fromkeys(range(n_inst), 3.0))
    cut = draw(st.sampled_from([n, draw(st.integers(0, n))]))
    return Case(limits, state, (orders.select(slice(0, cut)), orders.select(slice(cut, None))))


@pytest.mark.e2e
@settings(max_examples=300, deadline=None)
@given(boundary_cases())
def test_vector_equals_scalar_with_limits_at_the_batch_totals(case: Case) -> None:
    """Binding limits at the boundary: bounds that meet the sums exactly, or miss by one."""
    assert_paths_agree(case)


@settings(max_examples=80, deadline=None)
@given(boundary_cases(slack=st.integers(0, 1)))
def test_vector_equals_scalar_when_limits_just_hold(case: Case) -> None:
    """Limits at or one above every total: the table bounds decide (the equality edge)."""
    assert_paths_agree(case)


@settings(max_examples=80, deadline=None)
@given(boundary_cases(slack=st.integers(10_000, 20_000)))
def test_loose_limits_take_the_early_exit_and_equal_scalar(case: Case) -> None:
    """Limits no batch can reach: every stateful and rate row is decided by its bounds
    (nothing is grouped or sorted), and the masks still equal the scalar twin's.
    """
    with mock.patch.object(Grouping, "of", side_effect=AssertionError("grouped")):
        for orders in case.batches:
            vector = check_batch_vector(orders, case.limits, case.state)
            scalar = check_batch_scalar(orders, case.limits, case.state)
            assert np.array_equal(vector.failed, scalar.failed)
            assert np.array_equal(vector.reasons, scalar.reasons)
