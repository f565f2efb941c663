"""Prometheus counters for the checks: orders checked and rejects by reason.

Labelled children are created once here, so the hot path does a dict-free
``inc`` on a prebuilt child and every reason shows up (at 0) from the start.
"""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from bot4.risk.reasons import RULES, Reason
from bot4.risk.result import CheckResult


class RiskMetrics:
    """Counters registered in the given registry (tests pass a fresh one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.checks = Counter(
            "bot4_risk_checks", "Orders run through the pre-trade checks.", registry=registry
        )
        self.accepted = Counter(
            "bot4_risk_accepted", "Orders accepted by the pre-trade checks.", registry=registry
        )
        rejects = Counter(
            "bot4_risk_rejects",
            "Orders rejected, by the first rule that failed.",
            ["reason"],
            registry=registry,
        )
        self._rejects = {reason: rejects.labels(reason=reason.name.lower()) for reason in RULES}

    def observe(self, result: CheckResult) -> None:
        """Count a batch result."""
        n = len(result)
        if n == 0:
            return
        binned = np.bincount(result.reasons, minlength=len(Reason)).tolist()
        self.checks.inc(n)
        if binned[0]:
            self.accepted.inc(binned[0])
        for reason, child in self._rejects.items():
            count = binned[reason]
            if count:
                child.inc(count)

    def observe_one(self, reason: Reason) -> None:
        """Count one single-order decision."""
        self.checks.inc()
        if reason is Reason.ACCEPTED:
            self.accepted.inc()
        else:
            self._rejects[reason].inc()
