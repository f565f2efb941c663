"""Portfolio risk: VaR/CVaR (historical and parametric), drawdown limit, fractional Kelly.

Conventions: returns are simple per-period returns; VaR and CVaR are reported as
positive *losses* (a 99 % VaR of 0.02 means a 2 % loss is exceeded 1 % of the time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from bot4.risk.correlation import validate_returns
from bot4.risk.errors import RiskError

F64 = NDArray[np.float64]

DEFAULT_DRAWDOWN_LIMIT = 0.15
DEFAULT_KELLY_FRACTION = 0.25
DEFAULT_KELLY_CAP = 0.10


@dataclass(frozen=True)
class RiskEstimate:
    """VaR and CVaR (expected shortfall) at one confidence level, as positive losses."""

    confidence: float
    var: float
    cvar: float


def _confidence(confidence: float) -> float:
    if not (isinstance(confidence, int | float) and 0.5 <= confidence < 1.0):
        raise RiskError(f"confidence must be in [0.5, 1), e.g. 0.99; got {confidence!r}")
    return float(confidence)


def portfolio_returns(returns: object, weights: object | None = None) -> F64:
    """Returns of a portfolio: ``returns`` (T,) or (T × N) with ``weights`` (N,)."""
    arr = np.asarray(returns, dtype=np.float64) if returns is not None else np.empty(0)
    if arr.ndim == 1 and weights is None:
        return validate_returns(arr[:, None])[:, 0]
    matrix = validate_returns(arr)
    if weights is None:
        if matrix.shape[1] != 1:
            raise RiskError(f"returns have {matrix.shape[1]} assets: pass one weight per asset")
        return matrix[:, 0]
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (matrix.shape[1],) or not np.all(np.isfinite(w)):
        raise RiskError(f"weights must be {matrix.shape[1]} finite numbers, got shape {w.shape}")
    result: F64 = matrix @ w
    return result


def historical_var(
    returns: object, confidence: float = 0.99, weights: object | None = None
) -> RiskEstimate:
    """Empirical VaR/CVaR: the loss at the (1 − c) quantile and the mean loss beyond it.

    The quantile is the order statistic ``sorted[floor((1 − c) · T)]`` (no
    interpolation: it is an observed loss), and CVaR averages every observation at
    or below it, so CVaR ≥ VaR always.
    """
    c = _confidence(confidence)
    r = np.sort(portfolio_returns(returns, weights))
    k = min(math.floor((1.0 - c) * r.shape[0]), r.shape[0] - 1)
    var = -float(r[k])
    cvar = -float(r[: k + 1].mean())
    return RiskEstimate(confidence=c, var=var, cvar=cvar)


def parametric_var(
    returns: object, confidence: float = 0.99, weights: object | None = None
) -> RiskEstimate:
    """Gaussian VaR/CVaR from the sample mean and standard deviation (ddof=1).

    VaR = −(μ + σ·z), CVaR = −μ + σ·φ(z)/(1 − c), with z the (1 − c) normal quantile.
    """
    c = _confidence(confidence)
    r = portfolio_returns(returns, weights)
    mu = float(r.mean())
    sigma = float(r.std(ddof=1))
    normal = NormalDist()
    z = normal.inv_cdf(1.0 - c)
    return RiskEstimate(
        confidence=c,
        var=-(mu + sigma * z),
        cvar=-mu + sigma * normal.pdf(z) / (1.0 - c),
    )


def kelly_fraction(
    win_probability: float,
    win_loss_ratio: float,
    *,
    fraction: float = DEFAULT_KELLY_FRACTION,
    cap: float = DEFAULT_KELLY_CAP,
) -> float:
    """Share of equity to risk: ``fraction`` × Kelly (p − (1 − p)/b), floored at 0, capped.

    Full Kelly maximises log growth but with painful drawdowns and is very sensitive
    to estimation error in p and b; a quarter of it keeps most of the growth.
    """
    values = {
        "win_probability": win_probability,
        "win_loss_ratio": win_loss_ratio,
        "fraction": fraction,
        "cap": cap,
    }
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value)):
            raise RiskError(f"{name} must be a finite number, got {value!r}")
    if not 0.0 <= win_probability <= 1.0:
        raise RiskError(f"win_probability must be in [0, 1], got {win_probability}")
    if win_loss_ratio <= 0:
        raise RiskError(
            f"win_loss_ratio (average win / average loss) must be > 0, got {win_loss_ratio}"
        )
    if not 0.0 < fraction <= 1.0:
        raise RiskError(f"fraction of Kelly must be in (0, 1], got {fraction}")
    if not 0.0 <= cap <= 1.0:
        raise RiskError(f"cap must be in [0, 1], got {cap}")
    full = win_probability - (1.0 - win_probability) / win_loss_ratio
    return min(max(full, 0.0) * fraction, cap)


@dataclass(frozen=True)
class DrawdownStatus:
    """Where the equity curve stands against its peak."""

    equity: float
    peak: float
    drawdown: float  # (peak − equity) / peak, ≥ 0
    max_drawdown: float
    breached: bool


class DrawdownTracker:
    """Tracks drawdown from the running peak; latches ``breached`` at the hard limit.

    Once the limit is hit the tracker stays breached until :meth:`reset` — a human
    decision — so a bounce back above the limit does not silently re-enable trading.
    """

    def __init__(self, limit: float = DEFAULT_DRAWDOWN_LIMIT) -> None:
        if not (isinstance(limit, int | float) and 0.0 < limit < 1.0):
            raise RiskError(f"drawdown limit must be in (0, 1), e.g. 0.15; got {limit!r}")
        self.limit = float(limit)
        self._peak = math.nan
        self._max = 0.0
        self._breached = False

    def update(self, equity: float) -> DrawdownStatus:
        """Record the latest equity (must be finite and > 0)."""
        if not (isinstance(equity, int | float) and math.isfinite(equity) and equity > 0):
            raise RiskError(f"equity must be a finite number > 0, got {equity!r}")
        if not self._peak >= equity:  # also true for the first (NaN) peak
            self._peak = float(equity)
        drawdown = (self._peak - equity) / self._peak
        self._max = max(self._max, drawdown)
        if drawdown >= self.limit:
            self._breached = True
        return DrawdownStatus(
            equity=float(equity),
            peak=self._peak,
            drawdown=drawdown,
            max_drawdown=self._max,
            breached=self._breached,
        )

    def update_many(self, equity: object) -> DrawdownStatus:
        """Feed a whole equity curve (vectorized running peak); returns the final status."""
        curve = np.asarray(equity, dtype=np.float64)
        if curve.ndim != 1 or curve.size == 0 or not np.all(np.isfinite(curve) & (curve > 0)):
            raise RiskError("equity curve must be a non-empty 1-D array of finite values > 0")
        start = curve[0] if math.isnan(self._peak) else max(self._peak, float(curve[0]))
        peaks = np.maximum.accumulate(np.concatenate([[start], curve]))[1:]
        drawdowns = (peaks - curve) / peaks
        self._peak = float(peaks[-1])
        self._max = max(self._max, float(drawdowns.max()))
        if float(drawdowns.max()) >= self.limit:
            self._breached = True
        return DrawdownStatus(
            equity=float(curve[-1]),
            peak=self._peak,
            drawdown=float(drawdowns[-1]),
            max_drawdown=self._max,
            breached=self._breached,
        )

    @property
    def breached(self) -> bool:
        """True once drawdown reached the limit (until :meth:`reset`)."""
        return self._breached

    def reset(self) -> None:
        """Clear the latch and start a new peak (after a human review)."""
        self._peak = math.nan
        self._max = 0.0
        self._breached = False
