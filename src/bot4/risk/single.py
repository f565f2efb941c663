"""One order at a time, for the engine loop: plain Python over precomputed dicts.

For a single order numpy's per-call overhead (~1 µs per op) dwarfs the work, so
this path uses the scalar rules directly. Semantics equal checking batches of one
order with :func:`bot4.risk.checks.check_batch` and applying each result: an
accepted order becomes an open order (position/exposure projections grow); every
submission, accepted or not, counts for the duplicate and rate windows.
"""

from __future__ import annotations

import math
from collections import deque

from bot4.risk.errors import RiskError
from bot4.risk.limits import NOTIONAL_CAP, RiskLimits
from bot4.risk.orders import Order
from bot4.risk.reasons import Reason
from bot4.risk.state import RiskState

_PRUNE_EVERY = 4096  # submissions between sweeps of the duplicate table

_KILL = Reason.KILL_SWITCH
_UNKNOWN_ACCOUNT = Reason.UNKNOWN_ACCOUNT
_UNKNOWN_INSTRUMENT = Reason.UNKNOWN_INSTRUMENT


class _Account:
    """Mutable per-account limits and projections (slots: fast attribute access)."""

    __slots__ = (
        "gross",
        "killed",
        "max_gross",
        "max_net",
        "max_open",
        "max_rate",
        "net_long",
        "net_short",
        "open_orders",
        "row",
        "window",
    )

    def __init__(self, row: int, limits: RiskLimits, state: RiskState) -> None:
        tab = limits.tables
        self.row = row
        self.killed = bool(state.killed[row])
        self.max_gross = int(tab.max_gross_minor[row])
        self.max_net = int(tab.max_net_minor[row])
        self.max_open = int(tab.max_open_orders[row])
        self.max_rate = int(tab.max_rate[row])
        self.open_orders = int(state.open_orders[row])
        self.gross = int(state.gross[row])
        self.net_long = int(state.net_long[row])
        self.net_short = int(state.net_short[row])
        self.window: deque[int] = deque()


class SingleOrderChecker:
    """Stateful checker: ``check(order)`` returns the first failing :class:`Reason`."""

    def __init__(self, limits: RiskLimits, state: RiskState) -> None:
        state.require_compatible(limits)
        tab = limits.tables
        n_acct, n_inst = len(limits.accounts), len(limits.instruments)
        self._limits = limits
        self._kill_all = state.kill_all
        self._accounts = {
            acct.id: _Account(tab.account_index[acct.id], limits, state) for acct in limits.accounts
        }
        self._unknown_account = _Account(n_acct, limits, state)
        self._instruments = {
            inst.id: (
                row,
                inst.max_order_qty,
                inst.max_notional,
                inst.price_band,
                inst.max_position,
                float(state.reference_price[row]),
            )
            for row, inst in enumerate(limits.instruments)
        }
        self._unknown_instrument = (n_inst, 0, 0.0, 0.0, 0, math.nan)
        # (account row, instrument row) → [position, open_buy, open_sell]
        self._pairs: dict[tuple[int, int], list[int]] = {}
        self._position = state.position
        self._open_buy = state.open_buy
        self._open_sell = state.open_sell
        self._last_seen: dict[tuple[int, int, int, int, float], int] = {}
        self._scale = limits.scale
        self._cap = float(NOTIONAL_CAP)
        self._dup_window = limits.duplicate_window_ns
        self._rate_window = limits.rate_window_ns
        self._submissions = 0
        self._last_ts = -1
        for k in range(len(state.recent)):
            self._record(state.recent.order(k))

    def set_kill_switch(
        self, *, kill_all: bool | None = None, account: int | None = None, killed: bool = True
    ) -> None:
        """Engage/release the global kill switch, or one account's."""
        if kill_all is not None:
            self._kill_all = kill_all
        if account is not None:
            if account not in self._accounts:
                raise RiskError(f"kill switch for unknown account id {account}")
            self._accounts[account].killed = killed

    def _record(
        self, order: Order
    ) -> tuple[_Account, tuple[int, int, float, float, int, float], bool, int]:
        """Count a submission for the duplicate and rate windows; return what the rules need."""
        ts = order.ts
        if ts < self._last_ts:
            raise RiskError(
                f"order.ts {ts} is before the previous submission ({self._last_ts} ns): "
                "submit in time order"
            )
        self._last_ts = ts
        acct = self._accounts.get(order.account) or self._unknown_account
        inst = self._instruments.get(order.instrument) or self._unknown_instrument
        key = (acct.row, inst[0], order.side, order.qty, order.price)
        last_seen = self._last_seen
        previous = last_seen.get(key)
        last_seen[key] = ts
        duplicate = previous is not None and ts - previous <= self._dup_window
        window = acct.window
        horizon = ts - self._rate_window
        while window and window[0] <= horizon:
            window.popleft()
        recent = len(window)
        window.append(ts)
        self._submissions += 1
        if self._submissions % _PRUNE_EVERY == 0:
            cutoff = ts - self._dup_window
            self._last_seen = {k: t for k, t in last_seen.items() if t >= cutoff}
        return acct, inst, duplicate, recent

    def check(self, order: Order) -> Reason:  # noqa: PLR0912 - one inline branch per rule: this is the hot path
        """Check one order; if accepted it becomes an open order in this checker's state."""
        acct, inst, duplicate, recent = self._record(order)
        if self._kill_all or acct.killed:
            return _KILL
        if acct is self._unknown_account:
            return _UNKNOWN_ACCOUNT
        row, max_qty, max_notional, band, max_position, ref = inst
        if inst is self._unknown_instrument:
            return _UNKNOWN_INSTRUMENT
        qty, price = order.qty, order.price
        if qty > max_qty:
            return Reason.MAX_ORDER_QTY
        notional = float(qty) * price
        if notional > max_notional:
            return Reason.MAX_NOTIONAL
        if not abs(price - ref) <= band * ref:
            return Reason.PRICE_BAND
        if duplicate:
            return Reason.DUPLICATE
        if recent >= acct.max_rate:
            return Reason.RATE_THROTTLE
        if acct.open_orders + 1 > acct.max_open:
            return Reason.MAX_OPEN_ORDERS
        pair = self._pairs.get((acct.row, row))
        if pair is None:
            a = acct.row
            pair = [
                int(self._position[a, row]),
                int(self._open_buy[a, row]),
                int(self._open_sell[a, row]),
            ]
            self._pairs[acct.row, row] = pair
        minor = math.ceil(min(notional * self._scale, self._cap))
        if order.side == 1:
            if pair[0] + pair[1] + qty > max_position:
                return Reason.POSITION_LIMIT
            if acct.gross + minor > acct.max_gross:
                return Reason.GROSS_EXPOSURE
            if acct.net_long + minor > acct.max_net:
                return Reason.NET_EXPOSURE
            pair[1] += qty
            acct.net_long += minor
        else:
            if pair[0] - pair[2] - qty < -max_position:
                return Reason.POSITION_LIMIT
            if acct.gross + minor > acct.max_gross:
                return Reason.GROSS_EXPOSURE
            if acct.net_short - minor < -acct.max_net:
                return Reason.NET_EXPOSURE
            pair[2] += qty
            acct.net_short -= minor
        acct.open_orders += 1
        acct.gross += minor
        return Reason.ACCEPTED
