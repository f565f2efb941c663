"""Each pre-trade rule on hand-made batches, on both paths, plus batch semantics."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from bot4.risk import (
    RULES,
    AccountLimits,
    CheckResult,
    InstrumentLimits,
    Order,
    OrderBatch,
    Reason,
    RiskError,
    RiskLimits,
    RiskState,
    apply_scalar,
    apply_vector,
    check_batch,
    check_batch_scalar,
    check_batch_vector,
    checks,
)
from bot4.risk.checks import Grouping, Scratch, duplicate_mask, key_hash, scratch
from bot4.risk.orders import MAX_BATCH


def batch(rows: Sequence[tuple[int, int, int, int, int, float]]) -> OrderBatch:
    """rows of (ts, account, instrument, side, qty, price)."""
    return OrderBatch.from_orders([Order(*row) for row in rows])


def both(orders: OrderBatch, limits: RiskLimits, state: RiskState) -> CheckResult:
    vector = check_batch_vector(orders, limits, state)
    scalar = check_batch_scalar(orders, limits, state)
    assert np.array_equal(vector.failed, scalar.failed)
    assert np.array_equal(vector.reasons, scalar.reasons)
    return vector


def reasons(result: CheckResult) -> list[Reason]:
    return [Reason(int(r)) for r in result.reasons]


def test_clean_order_is_accepted(limits: RiskLimits, state: RiskState) -> None:
    result = both(batch([(0, 7, 1, 1, 10, 100.0)]), limits, state)
    assert reasons(result) == [Reason.ACCEPTED]
    assert result.accepted.tolist() == [True]
    assert not result.failed.any()
    assert result.counts()[Reason.ACCEPTED] == 1


def test_stateless_rules(limits: RiskLimits, state: RiskState) -> None:
    result = both(
        batch(
            [
                (0, 8, 1, 1, 1, 100.0),  # unknown account id (inside the table range)
                (0, 99, 1, 1, 1, 100.0),  # unknown account id (beyond the table)
                (0, -3, 1, 1, 1, 100.0),  # negative id
                (0, 7, 2, 1, 1, 100.0),  # unknown instrument
                (0, 7, 1, 1, 101, 100.0),  # quantity
                (0, 9, 1, 1, 100, 250.0),  # notional 25k > 20k (and price band)
                (0, 9, 1, -1, 10, 106.0),  # 6 % away from 100
                (0, 9, 1, -1, 10, 95.0),  # exactly 5 %: inside
            ]
        ),
        limits,
        state,
    )
    assert reasons(result) == [
        Reason.UNKNOWN_ACCOUNT,
        Reason.UNKNOWN_ACCOUNT,
        Reason.UNKNOWN_ACCOUNT,
        Reason.UNKNOWN_INSTRUMENT,
        Reason.MAX_ORDER_QTY,
        Reason.MAX_NOTIONAL,
        Reason.PRICE_BAND,
        Reason.ACCEPTED,
    ]
    # the matrix is complete: the notional order also breaks the band
    assert result.rejected_by(Reason.PRICE_BAND).tolist()[5]
    # unknown ids fail closed on every limit that needs them
    assert result.failed[:, 0][RULES.index(Reason.MAX_OPEN_ORDERS)]
    assert result.rejected_by(Reason.MAX_ORDER_QTY)[3]


def test_missing_reference_price_rejects_on_band(limits: RiskLimits) -> None:
    state = RiskState.initial(limits, {1: 100.0})
    assert reasons(both(batch([(0, 7, 4, 1, 1, 20.0)]), limits, state)) == [Reason.PRICE_BAND]


def test_kill_switch_global_and_per_account(limits: RiskLimits, state: RiskState) -> None:
    orders = batch([(0, 7, 1, 1, 1, 100.0), (1, 9, 1, 1, 1, 100.0), (2, 5, 1, 1, 1, 100.0)])
    one = state.with_kill_switch(limits, accounts=[7])
    assert reasons(both(orders, limits, one)) == [
        Reason.KILL_SWITCH,
        Reason.ACCEPTED,
        Reason.UNKNOWN_ACCOUNT,
    ]
    everything = state.with_kill_switch(limits, kill_all=True)
    assert set(reasons(both(orders, limits, everything))) == {Reason.KILL_SWITCH}
    with pytest.raises(RiskError, match="unknown account id 3"):
        state.with_kill_switch(limits, accounts=[3])


def test_duplicates_within_window_only(limits: RiskLimits, state: RiskState) -> None:
    orders = batch(
        [
            (0, 9, 1, 1, 5, 100.0),
            (500, 9, 1, 1, 5, 100.0),  # duplicate of the first
            (600, 9, 1, 1, 6, 100.0),  # different qty
            (700, 9, 1, -1, 5, 100.0),  # different side
            (1_500, 9, 1, 1, 5, 100.0),  # 1000 ns after the second: still a duplicate
            (2_501, 9, 1, 1, 5, 100.0),  # 1001 ns after the last: fresh
        ]
    )
    assert reasons(both(orders, limits, state)) == [
        Reason.ACCEPTED,
        Reason.DUPLICATE,
        Reason.ACCEPTED,
        Reason.ACCEPTED,
        Reason.DUPLICATE,
        Reason.ACCEPTED,
    ]


def test_duplicate_hash_collision_falls_back_to_exact_sort() -> None:
    accounts = np.array([0, 1, 0, 1], dtype=np.int64)
    zeros = np.zeros(4, dtype=np.int64)
    side = np.ones(4, dtype=np.int8)
    qty = np.ones(4, dtype=np.int64)
    price = np.ones(4)
    ts = np.array([0, 1, 2, 3], dtype=np.int64)

    def constant(*_: object) -> np.ndarray[tuple[int], np.dtype[np.uint64]]:
        return np.zeros(4, dtype=np.uint64)  # every key collides

    exact = duplicate_mask(accounts, zeros, side, qty, price, ts, 10, constant, max_scan=0)
    sorted_ = duplicate_mask(accounts, zeros, side, qty, price, ts, 10, max_scan=0)
    scanned = duplicate_mask(accounts, zeros, side, qty, price, ts, 10)
    assert exact.tolist() == sorted_.tolist() == scanned.tolist() == [False, False, True, True]
    assert key_hash(accounts, zeros, side, qty, price).dtype == np.uint64
    assert duplicate_mask(
        accounts[:1], zeros[:1], side[:1], qty[:1], price[:1], ts[:1], 10
    ).tolist() == [False]


def test_rate_throttle_counts_every_submission(limits: RiskLimits, state: RiskState) -> None:
    # alpha: 4 submissions per 10 µs window; rejected ones count too
    rows = [(k * 1_000, 7, 1, 1, 1 + k, 100.0 if k != 1 else 500.0) for k in range(6)]
    rows.append((11_000, 7, 1, 1, 50, 100.0))  # 0 and 1 have left the window (ts ≤ 1000)
    result = both(batch(rows), limits, state)
    assert reasons(result) == [
        Reason.ACCEPTED,
        Reason.PRICE_BAND,
        Reason.ACCEPTED,
        Reason.ACCEPTED,
        Reason.RATE_THROTTLE,
        Reason.RATE_THROTTLE,
        Reason.RATE_THROTTLE,
    ]


def test_max_open_orders_counts_state_and_batch(limits: RiskLimits) -> None:
    state = RiskState.initial(limits, {1: 100.0, 4: 20.0})
    first = batch([(k * 3_000, 7, 4, 1, 1, 20.0) for k in range(3)])
    result = both(first, limits, state)
    assert result.accepted.all()
    after = apply_vector(first, result, limits, state)
    assert int(after.open_orders[0]) == 3
    second = batch([(20_000 + k * 3_000, 7, 4, 1, 2, 20.0) for k in range(3)])
    assert reasons(both(second, limits, after)) == [
        Reason.ACCEPTED,
        Reason.ACCEPTED,
        Reason.MAX_OPEN_ORDERS,
    ]


def test_position_limit_is_worst_case_per_side(limits: RiskLimits) -> None:
    state = RiskState.initial(limits, {1: 100.0, 4: 20.0}, {(9, 1): 100})
    orders = batch(
        [
            (0, 9, 1, 1, 40, 100.0),  # long worst case 140
            (1, 9, 1, 1, 20, 100.0),  # 160 > 150
            (2, 9, 1, -1, 100, 100.0),  # short worst case 100 - 100 = 0
            (3_000, 9, 1, -1, 100, 100.0),  # -100 (not a duplicate: 3 µs later)
            (4_000, 9, 1, -1, 60, 100.0),  # -160 < -150
            (5_000, 9, 1, 1, 5, 100.0),  # 100 + 40 + 20 (rejected, still counted) + 5 = 165
        ]
    )
    assert reasons(both(orders, limits, state)) == [
        Reason.ACCEPTED,
        Reason.POSITION_LIMIT,
        Reason.ACCEPTED,
        Reason.ACCEPTED,
        Reason.POSITION_LIMIT,
        Reason.POSITION_LIMIT,
    ]


def test_gross_and_net_exposure(limits: RiskLimits, state: RiskState) -> None:
    # alpha: gross 100k, net 50k; ETH at 20, 1000 lots = 20k notional
    orders = batch(
        [
            (0, 7, 4, 1, 1000, 20.0),
            (2_000, 7, 4, 1, 1000, 20.0),  # net long 40k
            (4_000, 7, 4, 1, 600, 20.0),  # net long 52k > 50k
            (16_000, 7, 4, -1, 1000, 20.0),  # gross 72k, net short -20k
            (18_000, 7, 4, -1, 999, 20.0),  # gross 91.98k... fine
            (20_000, 7, 4, -1, 500, 20.0),  # gross 103.98k > 100k
        ]
    )
    result = both(orders, limits, state)
    assert reasons(result) == [
        Reason.ACCEPTED,
        Reason.ACCEPTED,
        Reason.NET_EXPOSURE,
        Reason.ACCEPTED,
        Reason.ACCEPTED,
        # 5 open-order slots: the net-rejected order still counts (fail closed)
        Reason.MAX_OPEN_ORDERS,
    ]
    gross = result.rejected_by(Reason.GROSS_EXPOSURE).tolist()
    assert gross == [False, False, False, False, False, True]


def test_positions_seed_exposure(limits: RiskLimits) -> None:
    state = RiskState.initial(limits, {1: 100.0, 4: 20.0}, {(7, 4): -2400})
    assert int(state.gross[0]) == 48_000 * 100
    assert int(state.net_short[0]) == -48_000 * 100
    orders = batch([(0, 7, 4, -1, 200, 20.0), (1, 7, 4, 1, 200, 20.0)])
    assert reasons(both(orders, limits, state)) == [Reason.NET_EXPOSURE, Reason.ACCEPTED]


def test_apply_keeps_recent_submissions_for_windows(limits: RiskLimits, state: RiskState) -> None:
    first = batch([(0, 9, 1, 1, 5, 100.0), (100, 9, 1, 1, 5, 100.0)])
    result = both(first, limits, state)
    for apply in (apply_vector, apply_scalar):
        after = apply(first, result, limits, state)
        assert len(after.recent) == 2
        assert int(after.open_buy[1, 0]) == 5
        second = batch([(900, 9, 1, 1, 5, 100.0), (50_000, 9, 4, -1, 1, 20.0)])
        assert reasons(both(second, limits, after)) == [Reason.DUPLICATE, Reason.ACCEPTED]
        later = apply(second, both(second, limits, after), limits, after)
        assert later.recent.ts.tolist() == [50_000]  # older ones left the 10 µs window
        assert int(later.net_short[1]) == -2_000
        with pytest.raises(RiskError, match="starts before"):
            check_batch_vector(first, limits, later)
        with pytest.raises(RiskError, match="starts before"):
            check_batch_scalar(first, limits, later)
        with pytest.raises(RiskError, match="result has 2 orders"):
            apply(batch([(60_000, 9, 1, 1, 1, 100.0)]), result, limits, later)


def test_empty_batch(limits: RiskLimits, state: RiskState) -> None:
    result = both(OrderBatch.empty(), limits, state)
    assert len(result) == 0
    assert result.failed.shape == (len(RULES), 0)
    assert len(apply_vector(OrderBatch.empty(), result, limits, state).recent) == 0


def test_dispatch_follows_the_platform(limits: RiskLimits, state: RiskState) -> None:
    orders = batch([(0, 7, 1, 1, 1, 100.0), (1, 7, 1, 1, 1000, 100.0)])
    default = check_batch(orders, limits, state)
    for path in ("vector", "scalar"):
        result = check_batch(orders, limits, state, path=path)
        assert np.array_equal(result.reasons, default.reasons)


def test_state_must_match_limits(limits: RiskLimits) -> None:
    other = RiskLimits(accounts=limits.accounts[:1], instruments=limits.instruments)
    state = RiskState.initial(other, {1: 100.0})
    with pytest.raises(RiskError, match="tables of shape"):
        check_batch_vector(batch([(0, 7, 1, 1, 1, 100.0)]), limits, state)


def test_state_initial_validation(limits: RiskLimits) -> None:
    with pytest.raises(RiskError, match="unknown instrument id 2"):
        RiskState.initial(limits, {2: 1.0})
    with pytest.raises(RiskError, match="finite and > 0"):
        RiskState.initial(limits, {1: float("nan")})
    with pytest.raises(RiskError, match="unknown account/instrument"):
        RiskState.initial(limits, {1: 1.0}, {(8, 1): 1})
    with pytest.raises(RiskError, match="within"):
        RiskState.initial(limits, {1: 1.0}, {(7, 1): 2**61})
    with pytest.raises(RiskError, match="needs a reference price"):
        RiskState.initial(limits, {1: 1.0}, {(7, 4): 1})
    zero = RiskState.initial(limits, {1: 1.0}, {(7, 1): 0}, killed_accounts=[9], kill_all=True)
    assert zero.kill_all
    assert zero.killed.tolist() == [False, True, False]


def test_rejected_by_accepted_is_an_error(limits: RiskLimits, state: RiskState) -> None:
    result = both(batch([(0, 7, 1, 1, 1, 100.0)]), limits, state)
    with pytest.raises(RiskError, match="not a rule"):
        result.rejected_by(Reason.ACCEPTED)


def test_grouping_exclusive_cumsum_and_windows() -> None:
    keys = np.array([2, 0, 2, 2, 0], dtype=np.int64)
    grouping = Grouping.of(keys)
    values = np.array([1, 10, 100, 1000, 10000], dtype=np.int64)
    assert grouping.exclusive_cumsum(values).tolist() == [0, 0, 1, 101, 10]
    # in sorted order: group 0 = entries 1, 4; group 2 = entries 0, 2, 3
    assert grouping.order.tolist() == [1, 4, 0, 2, 3]
    assert grouping.keys.tolist() == [0, 0, 2, 2, 2]
    ts = np.array([0, 5, 10, 20, 30], dtype=np.int64)
    ordered_ts = ts[grouping.order]  # [5, 30, 0, 10, 20]
    # entries of the group with ts > ts[p] - 15 before p: [0, 0, 0, 1, 1]
    one, two = np.ones(5, dtype=np.int64), np.full(5, 2, dtype=np.int64)
    assert grouping.reaches(ordered_ts, 15, one).tolist() == [False, False, False, True, True]
    assert grouping.reaches(ordered_ts, 15, two).tolist() == [False] * 5
    # window 25: position 4 (ts 20) sees ts 0 and 10 → reaches 2; position 1 (ts 30) sees 5? no
    assert grouping.reaches(ordered_ts, 25, two).tolist() == [False, False, False, False, True]
    assert grouping.reaches(ordered_ts, 26, one).tolist() == [False, True, False, True, True]
    empty = Grouping.of(np.empty(0, dtype=np.int64))
    assert empty.exclusive_cumsum(np.empty(0, dtype=np.int64)).shape == (0,)


def test_oversized_history_plus_batch_is_refused(limits: RiskLimits, state: RiskState) -> None:
    from dataclasses import replace

    n = 2**23  # a history this long cannot come from apply(); built from views, no memory
    ints = np.broadcast_to(np.int64(0), (n,))
    big = OrderBatch(
        ts=ints,
        account=ints,
        instrument=ints,
        side=np.broadcast_to(np.int8(1), (n,)),
        qty=ints,
        price=np.broadcast_to(np.float64(1.0), (n,)),
    )
    with pytest.raises(RiskError, match="split the batch"):
        check_batch_vector(batch([(0, 9, 1, 1, 1, 100.0)]), limits, replace(state, recent=big))


def test_limits_without_accounts_reject_everything(limits: RiskLimits) -> None:
    empty = RiskLimits(accounts=(), instruments=limits.instruments)
    state = RiskState.initial(empty, {1: 100.0})
    result = both(batch([(0, 7, 1, 1, 1, 100.0)]), empty, state)
    assert reasons(result) == [Reason.UNKNOWN_ACCOUNT]


def test_totals_beyond_float_precision_take_the_exact_path() -> None:
    """Batch totals ≥ 2**53 cannot bound the running sums (float bincount): all exact."""
    limits = RiskLimits(
        accounts=(
            AccountLimits(
                id=1,
                name="whale",
                max_gross_exposure=2.0**52,
                max_net_exposure=2.0**51,
                max_open_orders=MAX_BATCH,
                max_orders_per_window=MAX_BATCH,
            ),
        ),
        instruments=(
            InstrumentLimits(
                id=1,
                name="big",
                max_order_qty=2**40,
                max_notional=2.0**40,
                price_band=1.0,
                max_position=2**52,
            ),
        ),
        notional_decimals=0,
    )
    state = RiskState.initial(limits, {1: 1.0})
    n = 9_000  # 9000 * 2**40 > 2**53
    ts = np.arange(n, dtype=np.int64) * 10**9  # beyond the duplicate window
    side = np.where(np.arange(n) % 3 == 0, -1, 1).astype(np.int8)
    qty = np.full(n, 2**40, dtype=np.int64)
    orders = OrderBatch.from_columns(
        ts=ts,
        account=np.ones(n, dtype=np.int64),
        instrument=np.ones(n, dtype=np.int64),
        side=side,
        qty=qty,
        price=np.ones(n),
    )
    result = both(orders, limits, state)
    assert result.accepted.any()
    assert result.rejected_by(Reason.POSITION_LIMIT).any()
    assert result.rejected_by(Reason.GROSS_EXPOSURE).any()
    assert result.rejected_by(Reason.NET_EXPOSURE).any()


@pytest.mark.parametrize("tight", [False, True])
def test_loose_and_tight_accounts_mixed(tight: bool) -> None:
    """Rows a batch cannot push past their limits are decided by table; the rest exactly."""
    loose = AccountLimits(
        id=1,
        name="loose",
        max_gross_exposure=1e9,
        max_net_exposure=1e9,
        max_open_orders=10_000,
        max_orders_per_window=10_000,
    )
    near = AccountLimits(
        id=2,
        name="near",
        max_gross_exposure=300.0 if tight else 1e9,
        max_net_exposure=150.0 if tight else 1e9,
        max_open_orders=20 if tight else 10_000,
        max_orders_per_window=6 if tight else 10_000,
    )
    inst = InstrumentLimits(
        id=1, name="x", max_order_qty=10, max_notional=1e6, price_band=0.5, max_position=25
    )
    limits = RiskLimits(accounts=(loose, near), instruments=(inst,), rate_window_ns=50)
    state = RiskState.initial(limits, {1: 10.0}, {(1, 1): 3})
    rng = np.random.default_rng(7)
    n = 400
    orders = OrderBatch.from_columns(
        ts=np.cumsum(rng.integers(0, 5, n)),
        account=rng.integers(0, 4, n),
        instrument=rng.integers(0, 3, n),
        side=rng.choice(np.array([-1, 1], dtype=np.int8), n),
        qty=rng.integers(1, 4, n),
        price=rng.choice(np.array([9.0, 10.0, 11.0]), n),
    )
    first = both(orders.select(slice(0, 150)), limits, state)
    state = apply_vector(orders.select(slice(0, 150)), first, limits, state)
    later = orders.select(slice(150, None))
    result = both(later, limits, state)
    assert result.accepted.any()
    assert result.rejected_by(Reason.POSITION_LIMIT).any()
    near_orders = later.account == near.id
    assert result.rejected_by(Reason.RATE_THROTTLE)[near_orders].any() == tight


def random_batch(n: int, seed: int) -> OrderBatch:
    """Binding for the fixture limits: alpha's open-order and rate limits, positions."""
    rng = np.random.default_rng(seed)
    return OrderBatch.from_columns(
        ts=np.cumsum(rng.integers(0, 3_000, n)),
        account=rng.choice([7, 9, 8], n),
        instrument=rng.choice([1, 4], n),
        side=rng.choice(np.array([-1, 1], dtype=np.int8), n),
        qty=rng.integers(1, 120, n),
        price=rng.choice([19.5, 20.0, 99.0, 100.0, 101.0], n),
    )


def test_scratch_reuse_keeps_results_apart(limits: RiskLimits, state: RiskState) -> None:
    """Results never live in scratch arrays: a later batch leaves an earlier result intact,
    on both sides of SCRATCH_MAX, with batches growing and shrinking."""
    sizes = (300, 40, 2_000, 7, 300)
    kept = []
    for seed, n in enumerate(sizes):
        orders = random_batch(n, seed)
        result = both(orders, limits, state)
        kept.append((result, result.failed.copy(), result.reasons.copy()))
    for result, failed, reasons_ in kept:
        assert np.array_equal(result.failed, failed)
        assert np.array_equal(result.reasons, reasons_)


def test_batches_above_scratch_max_allocate_fresh(
    limits: RiskLimits, state: RiskState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checks, "SCRATCH_MAX", 64)
    for seed, n in enumerate((63, 64, 65, 500, 64, 1)):
        both(random_batch(n, seed), limits, state)
    ws = Scratch()
    small, large = ws.array("x", 64, np.int64), ws.array("x", 65, np.int64)
    assert np.shares_memory(small, ws.array("x", 10, np.int64))
    assert not np.shares_memory(large, ws.array("x", 65, np.int64))
    assert ws.ramp(65).tolist() == list(range(65))


def test_scratch_is_per_thread() -> None:
    mine = scratch()
    assert scratch() is mine
    theirs: list[Scratch] = []
    worker = threading.Thread(target=lambda: theirs.append(scratch()))
    worker.start()
    worker.join()
    assert theirs[0] is not mine
    ramp = mine.ramp(5)
    with pytest.raises(ValueError, match="read-only"):
        ramp[0] = 1
