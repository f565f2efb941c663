"""VaR/CVaR, Kelly sizing and the drawdown limit against known values."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from bot4.risk import (
    DrawdownTracker,
    RiskError,
    historical_var,
    kelly_fraction,
    parametric_var,
    portfolio_returns,
)


def test_historical_var_on_a_known_sample() -> None:
    returns = np.arange(-50, 50) / 1000.0  # -0.050 … 0.049
    est = historical_var(returns, 0.95)
    # floor(0.05 * 100) = 5 → the 6th smallest return, -0.045
    assert est.var == pytest.approx(0.045)
    assert est.cvar == pytest.approx(np.mean(np.arange(-50, -44) / 1000.0) * -1)
    assert est.cvar >= est.var
    assert historical_var(returns, 0.999).var == pytest.approx(0.05)  # clamps to the worst


def test_parametric_var_matches_the_normal_formula_and_a_large_sample() -> None:
    rng = np.random.default_rng(42)
    returns = rng.normal(0.001, 0.02, size=200_000)
    est = parametric_var(returns, 0.99)
    mu, sigma = returns.mean(), returns.std(ddof=1)
    z = NormalDist().inv_cdf(0.01)
    assert est.var == pytest.approx(-(mu + sigma * z), rel=1e-12)
    # analytic value for N(0.001, 0.02): VaR = 2.326348 * 0.02 - 0.001
    assert est.var == pytest.approx(0.02 * 2.3263478740 - 0.001, rel=5e-3)
    assert est.cvar == pytest.approx(0.02 * NormalDist().pdf(z) / 0.01 - 0.001, rel=5e-3)
    hist = historical_var(returns, 0.99)
    assert hist.var == pytest.approx(est.var, rel=3e-2)


def test_portfolio_weights() -> None:
    returns = np.array([[0.01, 0.03], [-0.02, 0.01], [0.0, -0.04]])
    combined = portfolio_returns(returns, [0.5, 0.5])
    assert combined.tolist() == pytest.approx([0.02, -0.005, -0.02])
    assert parametric_var(returns, 0.95, weights=[0.5, 0.5]).var == pytest.approx(
        parametric_var(combined, 0.95).var
    )
    assert portfolio_returns(returns[:, :1]).tolist() == [0.01, -0.02, 0.0]
    with pytest.raises(RiskError, match="pass one weight per asset"):
        portfolio_returns(returns)
    with pytest.raises(RiskError, match="2 finite numbers"):
        portfolio_returns(returns, [1.0])
    with pytest.raises(RiskError, match="NaN or inf"):
        historical_var([0.1, float("nan")])
    with pytest.raises(RiskError, match="at least 2 observations"):
        historical_var([])
    with pytest.raises(RiskError, match="confidence must be"):
        parametric_var([0.1, 0.2], 1.0)


def test_kelly() -> None:
    # p = 0.6, b = 1: full Kelly 0.2, a quarter is 0.05
    assert kelly_fraction(0.6, 1.0) == pytest.approx(0.05)
    assert kelly_fraction(0.6, 1.0, fraction=1.0, cap=1.0) == pytest.approx(0.2)
    assert kelly_fraction(0.9, 5.0) == pytest.approx(0.10)  # capped (0.25 * 0.88 = 0.22)
    assert kelly_fraction(0.3, 1.0) == 0.0  # negative edge: no bet
    for kwargs, message in [
        ({"win_probability": 1.5}, "win_probability must be in"),
        ({"win_loss_ratio": 0.0}, "win_loss_ratio"),
        ({"fraction": 0.0}, "fraction of Kelly"),
        ({"cap": 2.0}, "cap must be in"),
        ({"win_probability": math.nan}, "finite number"),
    ]:
        args = {"win_probability": 0.6, "win_loss_ratio": 1.0, **kwargs}
        with pytest.raises(RiskError, match=message):
            kelly_fraction(args.pop("win_probability"), args.pop("win_loss_ratio"), **args)


def test_drawdown_latches_at_the_hard_limit() -> None:
    tracker = DrawdownTracker()
    assert tracker.limit == 0.15
    assert tracker.update(100.0).drawdown == 0.0
    status = tracker.update(90.0)
    assert status.drawdown == pytest.approx(0.10)
    assert not status.breached
    assert tracker.update(120.0).peak == 120.0
    status = tracker.update(102.0)
    assert status.drawdown == pytest.approx(0.15)
    assert status.breached
    assert tracker.update(130.0).breached  # latched until reset
    assert tracker.breached
    tracker.reset()
    assert not tracker.update(50.0).breached


def test_drawdown_curve_matches_stepwise() -> None:
    rng = np.random.default_rng(3)
    curve = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, size=300)))
    stepwise, batched = DrawdownTracker(0.2), DrawdownTracker(0.2)
    for value in curve[:150]:
        stepwise.update(float(value))
    batched.update_many(curve[:150])
    last = None
    for value in curve[150:]:
        last = stepwise.update(float(value))
    final = batched.update_many(curve[150:])
    assert last is not None
    assert final.max_drawdown == pytest.approx(last.max_drawdown)
    assert final.drawdown == pytest.approx(last.drawdown)
    assert final.breached == last.breached
    assert final.peak == last.peak


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_drawdown_input_validation(bad: float) -> None:
    tracker = DrawdownTracker()
    with pytest.raises(RiskError, match="equity must be"):
        tracker.update(bad)
    with pytest.raises(RiskError, match="equity curve"):
        tracker.update_many([1.0, bad])
    with pytest.raises(RiskError, match="drawdown limit"):
        DrawdownTracker(1.5)
