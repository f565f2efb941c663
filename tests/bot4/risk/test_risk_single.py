"""The single-order checker's own behaviour (its equivalence is a property test)."""

from __future__ import annotations

import pytest

from bot4.risk import (
    Order,
    OrderBatch,
    Reason,
    RiskError,
    RiskLimits,
    RiskState,
    SingleOrderChecker,
)
from bot4.risk.single import _PRUNE_EVERY


def test_accepts_then_limits_and_kill_switch(limits: RiskLimits, state: RiskState) -> None:
    checker = SingleOrderChecker(limits, state)
    assert checker.check(Order(0, 7, 1, 1, 10, 100.0)) is Reason.ACCEPTED
    assert checker.check(Order(5_000, 7, 1, 1, 10, 100.0)) is Reason.ACCEPTED
    checker.set_kill_switch(account=7)
    assert checker.check(Order(9_000, 7, 1, -1, 1, 100.0)) is Reason.KILL_SWITCH
    checker.set_kill_switch(account=7, killed=False)
    checker.set_kill_switch(kill_all=True)
    assert checker.check(Order(20_000, 9, 1, -1, 1, 100.0)) is Reason.KILL_SWITCH
    checker.set_kill_switch(kill_all=False)
    # the killed submission still counts for duplicates: same order again is a duplicate
    assert checker.check(Order(21_000, 9, 1, -1, 1, 100.0)) is Reason.DUPLICATE
    assert checker.check(Order(22_000, 9, 1, -1, 2, 100.0)) is Reason.ACCEPTED
    with pytest.raises(RiskError, match="unknown account id 3"):
        checker.set_kill_switch(account=3)


def test_history_seeds_windows_and_order_is_enforced(limits: RiskLimits, state: RiskState) -> None:
    from dataclasses import replace

    recent = OrderBatch.from_orders([Order(100, 9, 1, 1, 5, 100.0)])
    checker = SingleOrderChecker(limits, replace(state, recent=recent))
    assert checker.check(Order(600, 9, 1, 1, 5, 100.0)) is Reason.DUPLICATE
    with pytest.raises(RiskError, match="submit in time order"):
        checker.check(Order(10, 9, 1, 1, 5, 100.0))


def test_duplicate_table_is_pruned_without_changing_answers(
    limits: RiskLimits, state: RiskState
) -> None:
    checker = SingleOrderChecker(limits, state)
    answers = [
        checker.check(Order(k * 2_000, 9, 4, 1, 1 + k % 3, 20.0)) for k in range(_PRUNE_EVERY + 3)
    ]
    assert Reason.DUPLICATE not in answers
    assert len(checker._last_seen) < 10  # keys older than the window were swept
    last = (_PRUNE_EVERY + 2) * 2_000
    assert checker.check(Order(last + 500, 9, 4, 1, 1 + (_PRUNE_EVERY + 2) % 3, 20.0)) is (
        Reason.DUPLICATE
    )


def test_stateful_rules_both_sides(limits: RiskLimits) -> None:
    state = RiskState.initial(limits, {1: 100.0, 4: 20.0}, {(9, 1): 140})
    checker = SingleOrderChecker(limits, state)
    # beta (9): position limit 150 on BTC (id 1)
    assert checker.check(Order(0, 9, 1, 1, 20, 100.0)) is Reason.POSITION_LIMIT
    assert checker.check(Order(1, 9, 1, -1, 100, 100.0)) is Reason.ACCEPTED  # worst short 40
    assert checker.check(Order(2_000, 9, 1, -1, 100, 100.0)) is Reason.ACCEPTED  # -60
    assert checker.check(Order(4_000, 9, 1, -1, 91, 100.0)) is Reason.POSITION_LIMIT  # -151
    # alpha (7): gross 100k, net 50k; ETH at 20
    assert checker.check(Order(5_000, 7, 4, 1, 1000, 20.0)) is Reason.ACCEPTED  # net +20k
    assert checker.check(Order(7_000, 7, 4, 1, 1000, 20.0)) is Reason.ACCEPTED  # net +40k
    assert checker.check(Order(9_000, 7, 4, 1, 600, 20.0)) is Reason.NET_EXPOSURE  # +52k
    assert checker.check(Order(19_100, 7, 4, -1, 1000, 20.0)) is Reason.ACCEPTED  # gross 60k
    assert checker.check(Order(21_200, 7, 4, -1, 1000, 20.0)) is Reason.ACCEPTED  # gross 80k
    assert checker.check(Order(23_300, 7, 4, -1, 1000, 20.2)) is Reason.GROSS_EXPOSURE  # 100.2k
    assert checker.check(Order(33_400, 7, 4, 1, 1000, 20.2)) is Reason.GROSS_EXPOSURE


def test_net_short_limit(limits: RiskLimits) -> None:
    state = RiskState.initial(limits, {1: 100.0, 4: 20.0}, {(7, 4): -2400})
    checker = SingleOrderChecker(limits, state)
    assert checker.check(Order(0, 7, 4, -1, 200, 20.0)) is Reason.NET_EXPOSURE
