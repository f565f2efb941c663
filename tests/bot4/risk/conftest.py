"""Shared fixtures for the risk tests: a small limits table and its initial state."""

from __future__ import annotations

import pytest

from bot4.risk import AccountLimits, InstrumentLimits, RiskLimits, RiskState


def make_limits(**overrides: int) -> RiskLimits:
    """Two accounts (ids 7, 9), two instruments (ids 1, 4); windows in ns."""
    settings = {"duplicate_window_ns": 1_000, "rate_window_ns": 10_000, **overrides}
    return RiskLimits(
        accounts=(
            AccountLimits(
                id=7,
                name="alpha",
                max_gross_exposure=100_000.0,
                max_net_exposure=50_000.0,
                max_open_orders=5,
                max_orders_per_window=4,
            ),
            AccountLimits(
                id=9,
                name="beta",
                max_gross_exposure=1e9,
                max_net_exposure=1e9,
                max_open_orders=1000,
                max_orders_per_window=1000,
            ),
        ),
        instruments=(
            InstrumentLimits(
                id=1,
                name="BTCUSD",
                max_order_qty=100,
                max_notional=20_000.0,
                price_band=0.05,
                max_position=150,
            ),
            InstrumentLimits(
                id=4,
                name="ETHUSD",
                max_order_qty=1_000,
                max_notional=1e6,
                price_band=0.10,
                max_position=10_000,
            ),
        ),
        **settings,
    )


@pytest.fixture
def limits() -> RiskLimits:
    return make_limits()


@pytest.fixture
def state(limits: RiskLimits) -> RiskState:
    return RiskState.initial(limits, {1: 100.0, 4: 20.0})
