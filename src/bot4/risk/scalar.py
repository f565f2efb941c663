"""The pure-Python twin of the batch checks: the fallback path and the tests' oracle.

It walks the orders one at a time with dicts of running sums, the way the rules
are worded; the vector path must produce exactly the same masks.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import replace

import numpy as np

from bot4.risk.errors import RiskError
from bot4.risk.limits import NOTIONAL_CAP, RiskLimits
from bot4.risk.orders import BUY, OrderBatch, require_after
from bot4.risk.reasons import PREFILTER, RULES
from bot4.risk.result import CheckResult
from bot4.risk.state import RiskState


def _rows(ids: list[int], index: dict[int, int], sentinel: int) -> list[int]:
    return [index.get(x, sentinel) for x in ids]


def check_batch_scalar(orders: OrderBatch, limits: RiskLimits, state: RiskState) -> CheckResult:
    """Same contract as :func:`bot4.risk.checks.check_batch_vector`, one order at a time."""
    state.require_compatible(limits)
    tab = limits.tables
    n_acct, n_inst = len(limits.accounts), len(limits.instruments)
    hist = state.recent
    require_after(hist, orders)
    m = len(hist)
    joined = OrderBatch(
        ts=np.concatenate([hist.ts, orders.ts]),
        account=np.concatenate([hist.account, orders.account]),
        instrument=np.concatenate([hist.instrument, orders.instrument]),
        side=np.concatenate([hist.side, orders.side]),
        qty=np.concatenate([hist.qty, orders.qty]),
        price=np.concatenate([hist.price, orders.price]),
    )
    acct = _rows(joined.account.tolist(), tab.account_index, n_acct)
    inst = _rows(joined.instrument.tolist(), tab.instrument_index, n_inst)
    side, qty, price = joined.side.tolist(), joined.qty.tolist(), joined.price.tolist()
    dup, throttled = _window_rules(joined.ts.tolist(), acct, inst, side, qty, price, m, limits)
    killed, ref = state.killed.tolist(), state.reference_price.tolist()
    max_qty, max_notional = tab.max_qty.tolist(), tab.max_notional.tolist()
    band, max_position = tab.price_band.tolist(), tab.max_position.tolist()
    max_open, max_gross, max_net = (
        tab.max_open_orders.tolist(),
        tab.max_gross_minor.tolist(),
        tab.max_net_minor.tolist(),
    )
    open_orders, gross = state.open_orders.tolist(), state.gross.tolist()
    net_long, net_short = state.net_long.tolist(), state.net_short.tolist()
    position, open_buy, open_sell = (
        state.position.tolist(),
        state.open_buy.tolist(),
        state.open_sell.tolist(),
    )

    count_before: dict[int, int] = defaultdict(int)
    buy_minor: dict[int, int] = defaultdict(int)
    sell_minor: dict[int, int] = defaultdict(int)
    buy_lots: dict[tuple[int, int], int] = defaultdict(int)
    sell_lots: dict[tuple[int, int], int] = defaultdict(int)
    columns: list[list[bool]] = []
    for j in range(len(orders)):
        k = m + j
        a, i, q, p = acct[k], inst[k], qty[k], price[k]
        is_buy = side[k] == BUY
        notional = float(q) * p
        r = ref[i]
        rules = [
            state.kill_all or killed[a],
            a == n_acct,
            i == n_inst,
            q > max_qty[i],
            notional > max_notional[i],
            not abs(p - r) <= band[i] * r,
            dup[j],
            throttled[j],
        ]
        minor = math.ceil(min(notional * limits.scale, float(NOTIONAL_CAP)))
        pos = position[a][i]
        if is_buy:
            position_bad = pos + open_buy[a][i] + buy_lots[a, i] + q > max_position[i]
            net_bad = net_long[a] + buy_minor[a] + minor > max_net[a]
        else:
            position_bad = pos - open_sell[a][i] - sell_lots[a, i] - q < -max_position[i]
            net_bad = net_short[a] - sell_minor[a] - minor < -max_net[a]
        rules += [
            open_orders[a] + count_before[a] + 1 > max_open[a],
            position_bad,
            gross[a] + buy_minor[a] + sell_minor[a] + minor > max_gross[a],
            net_bad,
        ]
        if not any(rules[: len(PREFILTER)]):
            count_before[a] += 1
            if is_buy:
                buy_minor[a] += minor
                buy_lots[a, i] += q
            else:
                sell_minor[a] += minor
                sell_lots[a, i] += q
        columns.append(rules)
    failed = np.array(columns, dtype=np.bool_).reshape(len(orders), len(RULES)).T.copy()
    return CheckResult.from_failed(failed)


def _window_rules(
    ts: list[int],
    acct: list[int],
    inst: list[int],
    side: list[int],
    qty: list[int],
    price: list[float],
    m: int,
    limits: RiskLimits,
) -> tuple[list[bool], list[bool]]:
    """Duplicate and rate-throttle outcomes for entries m.. of history + batch."""
    max_rate = limits.tables.max_rate.tolist()
    last_seen: dict[tuple[int, int, int, int, float], int] = {}
    windows: dict[int, deque[int]] = defaultdict(deque)
    dup: list[bool] = []
    throttled: list[bool] = []
    for k in range(len(ts)):
        key = (acct[k], inst[k], side[k], qty[k], price[k])
        previous = last_seen.get(key)
        last_seen[key] = ts[k]
        window = windows[acct[k]]
        while window and window[0] <= ts[k] - limits.rate_window_ns:
            window.popleft()
        count = len(window)
        window.append(ts[k])
        if k >= m:
            dup.append(previous is not None and ts[k] - previous <= limits.duplicate_window_ns)
            throttled.append(count >= max_rate[acct[k]])

    return dup, throttled


def apply_scalar(
    orders: OrderBatch, result: CheckResult, limits: RiskLimits, state: RiskState
) -> RiskState:
    """Twin of :func:`bot4.risk.checks.apply_vector`."""
    if len(result) != len(orders):
        raise RiskError(f"result has {len(result)} orders, batch has {len(orders)}")
    tab = limits.tables
    n_acct, n_inst = len(limits.accounts), len(limits.instruments)
    open_buy, open_sell = state.open_buy.tolist(), state.open_sell.tolist()
    open_orders, gross = state.open_orders.tolist(), state.gross.tolist()
    net_long, net_short = state.net_long.tolist(), state.net_short.tolist()
    for k, ok in enumerate(result.accepted.tolist()):
        if not ok:
            continue
        order = orders.order(k)
        a = tab.account_index.get(order.account, n_acct)
        i = tab.instrument_index.get(order.instrument, n_inst)
        minor = limits.notional_minor(order.qty, order.price)
        open_orders[a] += 1
        gross[a] += minor
        if order.side == BUY:
            open_buy[a][i] += order.qty
            net_long[a] += minor
        else:
            open_sell[a][i] += order.qty
            net_short[a] -= minor
    recent = state.recent.concat(orders)
    if len(recent):
        horizon = int(recent.ts[-1]) - limits.history_window_ns
        keep = next((k for k, t in enumerate(recent.ts.tolist()) if t >= horizon), len(recent))
        recent = recent.select(slice(keep, None))

    def frozen(
        values: list[int] | list[list[int]],
    ) -> np.ndarray[tuple[int, ...], np.dtype[np.int64]]:
        arr = np.array(values, dtype=np.int64)
        arr.setflags(write=False)
        return arr

    return replace(
        state,
        open_buy=frozen(open_buy),
        open_sell=frozen(open_sell),
        open_orders=frozen(open_orders),
        gross=frozen(gross),
        net_long=frozen(net_long),
        net_short=frozen(net_short),
        recent=recent,
    )
