"""What the stateful rules read before a batch: open orders, positions, exposure, history."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from bot4.risk.errors import RiskError
from bot4.risk.limits import MAX_POSITION, RiskLimits
from bot4.risk.orders import OrderBatch

_A = TypeVar("_A", bound=np.ndarray[Any, Any])


def _ro(arr: _A) -> _A:
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class RiskState:
    """State before a batch, as arrays with one row per account/instrument + the sentinel row.

    ``recent`` holds earlier submissions still inside the duplicate/rate windows.
    Exposures are worst case, in minor units: ``gross`` counts every open order,
    ``net_long`` assumes all open buys fill, ``net_short`` all open sells.
    Positions change only through fills, which the engine reports by building a new
    state; the checks add accepted orders as open orders (see ``apply_vector``).
    """

    reference_price: NDArray[np.float64]
    position: NDArray[np.int64]
    open_buy: NDArray[np.int64]
    open_sell: NDArray[np.int64]
    open_orders: NDArray[np.int64]
    gross: NDArray[np.int64]
    net_long: NDArray[np.int64]
    net_short: NDArray[np.int64]
    killed: NDArray[np.bool_]
    kill_all: bool = False
    recent: OrderBatch = field(default_factory=OrderBatch.empty)

    @classmethod
    def initial(
        cls,
        limits: RiskLimits,
        reference_prices: Mapping[int, float],
        positions: Mapping[tuple[int, int], int] | None = None,
        *,
        kill_all: bool = False,
        killed_accounts: Iterable[int] = (),
    ) -> RiskState:
        """A state with no open orders; exposure derived from positions at reference prices.

        ``reference_prices`` maps instrument id → price (an instrument without one
        rejects every order on the price-band rule); ``positions`` maps
        (account id, instrument id) → signed lots.
        """
        tab = limits.tables
        n_acct, n_inst = len(limits.accounts) + 1, len(limits.instruments) + 1
        ref = np.full(n_inst, np.nan)
        for inst_id, price in reference_prices.items():
            if inst_id not in tab.instrument_index:
                raise RiskError(f"reference price for unknown instrument id {inst_id}")
            if not (math.isfinite(price) and price > 0):
                raise RiskError(
                    f"reference price of instrument {inst_id} must be finite and > 0, got {price}"
                )
            ref[tab.instrument_index[inst_id]] = price
        pos = np.zeros((n_acct, n_inst), dtype=np.int64)
        gross = np.zeros(n_acct, dtype=np.int64)
        net = np.zeros(n_acct, dtype=np.int64)
        for (acct_id, inst_id), lots in (positions or {}).items():
            a = tab.account_index.get(acct_id)
            i = tab.instrument_index.get(inst_id)
            if a is None or i is None:
                raise RiskError(f"position for unknown account/instrument ({acct_id}, {inst_id})")
            if not abs(lots) <= MAX_POSITION:
                raise RiskError(
                    f"position ({acct_id}, {inst_id}) must be within ±2**60, got {lots}"
                )
            if lots and not math.isfinite(ref[i]):
                raise RiskError(f"position ({acct_id}, {inst_id}) needs a reference price")
            pos[a, i] = lots
            value = limits.notional_minor(abs(lots), float(ref[i])) if lots else 0
            gross[a] += value
            net[a] += value if lots > 0 else -value
        zeros = np.zeros((n_acct, n_inst), dtype=np.int64)
        state = cls(
            reference_price=_ro(ref),
            position=_ro(pos),
            open_buy=_ro(zeros.copy()),
            open_sell=_ro(zeros.copy()),
            open_orders=_ro(np.zeros(n_acct, dtype=np.int64)),
            gross=_ro(gross),
            net_long=_ro(net),
            net_short=_ro(net.copy()),
            killed=_ro(np.zeros(n_acct, dtype=np.bool_)),
        )
        return state.with_kill_switch(limits, kill_all=kill_all, accounts=killed_accounts)

    def with_kill_switch(
        self, limits: RiskLimits, *, kill_all: bool | None = None, accounts: Iterable[int] = ()
    ) -> RiskState:
        """Engage the global kill switch and/or kill the listed accounts (ids)."""
        killed = self.killed.copy()
        for acct_id in accounts:
            if acct_id not in limits.tables.account_index:
                raise RiskError(f"kill switch for unknown account id {acct_id}")
            killed[limits.tables.account_index[acct_id]] = True
        return replace(
            self,
            killed=_ro(killed),
            kill_all=self.kill_all if kill_all is None else kill_all,
        )

    def require_compatible(self, limits: RiskLimits) -> None:
        """Fail clearly when this state was built for other limits."""
        shape = (len(limits.accounts) + 1, len(limits.instruments) + 1)
        if self.position.shape != shape or self.gross.shape != (shape[0],):
            raise RiskError(
                f"risk state has tables of shape {self.position.shape}, the limits need {shape}: "
                "build the state with RiskState.initial(limits, ...)"
            )
