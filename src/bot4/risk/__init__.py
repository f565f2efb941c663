"""bot4.risk: pre-trade checks over order batches, portfolio risk, correlation.

Every vector (numpy) path has a pure-Python twin that gives the same answer; the
platform's one-time decision (``bot4.infrastructure.platform.selected_path``)
picks which one runs. See docs/risk.md.
"""

from __future__ import annotations

from bot4.risk.checks import apply_vector, check_batch, check_batch_vector
from bot4.risk.config import load_limits, parse_limits
from bot4.risk.correlation import (
    correlation_matrix,
    correlation_scalar,
    correlation_vector,
    covariance_matrix,
)
from bot4.risk.errors import RiskError
from bot4.risk.limits import AccountLimits, InstrumentLimits, RiskLimits
from bot4.risk.metrics import RiskMetrics
from bot4.risk.orders import BUY, SELL, Order, OrderBatch
from bot4.risk.portfolio import (
    DrawdownStatus,
    DrawdownTracker,
    RiskEstimate,
    historical_var,
    kelly_fraction,
    parametric_var,
    portfolio_returns,
)
from bot4.risk.reasons import RULES, Reason
from bot4.risk.result import CheckResult
from bot4.risk.scalar import apply_scalar, check_batch_scalar
from bot4.risk.single import SingleOrderChecker
from bot4.risk.state import RiskState

__all__ = [
    "BUY",
    "RULES",
    "SELL",
    "AccountLimits",
    "CheckResult",
    "DrawdownStatus",
    "DrawdownTracker",
    "InstrumentLimits",
    "Order",
    "OrderBatch",
    "Reason",
    "RiskError",
    "RiskEstimate",
    "RiskLimits",
    "RiskMetrics",
    "RiskState",
    "SingleOrderChecker",
    "apply_scalar",
    "apply_vector",
    "check_batch",
    "check_batch_scalar",
    "check_batch_vector",
    "correlation_matrix",
    "correlation_scalar",
    "correlation_vector",
    "covariance_matrix",
    "historical_var",
    "kelly_fraction",
    "load_limits",
    "parametric_var",
    "parse_limits",
    "portfolio_returns",
]
