"""Metrics: counters in a fresh registry, every reason pre-created."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from bot4.risk import (
    Order,
    OrderBatch,
    Reason,
    RiskLimits,
    RiskMetrics,
    RiskState,
    check_batch_vector,
)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels or None)
    assert value is not None, name
    return value


def test_counts_checks_and_rejects(limits: RiskLimits, state: RiskState) -> None:
    registry = CollectorRegistry()
    metrics = RiskMetrics(registry)
    assert sample(registry, "bot4_risk_rejects_total", reason="kill_switch") == 0.0
    orders = OrderBatch.from_orders(
        [Order(0, 7, 1, 1, 1, 100.0), Order(1, 7, 1, 1, 1000, 100.0), Order(2, 3, 1, 1, 1, 100.0)]
    )
    metrics.observe(check_batch_vector(orders, limits, state))
    metrics.observe(check_batch_vector(OrderBatch.empty(), limits, state))
    metrics.observe(check_batch_vector(orders.select(slice(2, None)), limits, state))
    metrics.observe_one(Reason.ACCEPTED)
    metrics.observe_one(Reason.PRICE_BAND)
    assert sample(registry, "bot4_risk_checks_total") == 6.0
    assert sample(registry, "bot4_risk_accepted_total") == 2.0
    assert sample(registry, "bot4_risk_rejects_total", reason="max_order_qty") == 1.0
    assert sample(registry, "bot4_risk_rejects_total", reason="unknown_account") == 2.0
    assert sample(registry, "bot4_risk_rejects_total", reason="price_band") == 1.0
