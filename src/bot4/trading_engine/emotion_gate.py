"""EmotionFreeGate: every order passes here before routing; every decision is audited.

The gate encodes the rules a disciplined trader holds to and a tired one breaks: trade
only with statistical evidence of an edge; no revenge trading after a loss streak or a
drawdown step; no chasing a move that already happened (FOMO); no sizing above the
fractional-Kelly size, and no escalating size on a hot streak. Each rule has a reason
code. State is updated by fills (``record_trade``) and prices (``observe_price``) so a
decision itself only reads cached numbers — it sits on the order path.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from bisect import bisect_left as _bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from typing import Literal

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from bot4.risk.portfolio import DrawdownTracker, kelly_fraction
from bot4.trading_engine.audit_log import AuditLog
from bot4.trading_engine.errors import GateConfigError
from bot4.trading_engine.override import OverrideRejectedError, OverrideVerifier
from bot4.trading_engine.stats import sign_test_positive, t_test_positive_mean

log = logging.getLogger(__name__)
_perf_counter = time.perf_counter
_go_float: Callable[[float], str] = floatToGoString  # the ``le`` labels prometheus_client writes


class Reason(StrEnum):
    """Why the gate decided as it did (stable strings: they are metric labels)."""

    PASSED = "passed"
    GATE_DISABLED = "gate_disabled"
    OVERRIDE = "operator_override"
    OVERRIDE_REJECTED = "override_rejected"
    DRAWDOWN_HALT = "drawdown_halt"
    REVENGE_COOLDOWN = "revenge_cooldown"
    FOMO = "fomo_chasing"
    INSUFFICIENT_HISTORY = "insufficient_history"
    NO_EDGE = "no_statistical_edge"
    OVERSIZED = "oversized_vs_kelly"
    SIZE_ESCALATION = "size_escalation_after_wins"


ALLOWING = frozenset({Reason.PASSED, Reason.GATE_DISABLED, Reason.OVERRIDE})


@dataclass(frozen=True)
class GateConfig:
    """Every rule's knobs; ``validate`` runs at construction."""

    alpha: float = 0.05
    test: Literal["t", "sign"] = "t"
    min_trades: int = 20
    window_trades: int = 100
    loss_streak: int = 3
    drawdown_step: float = 0.05
    cooldown_ns: int = 15 * 60 * 1_000_000_000
    fomo_sigma: float = 3.0
    fomo_lookback: int = 5
    vol_window: int = 100
    kelly_fraction: float = 0.25
    kelly_cap: float = 0.2
    win_streak: int = 2
    max_size_growth: float = 1.5
    drawdown_limit: float = 0.15

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (0 < self.alpha < 1, f"alpha must be in (0, 1), got {self.alpha}"),
            (self.test in ("t", "sign"), f"test must be 't' or 'sign', got {self.test!r}"),
            (self.min_trades >= 2, f"min_trades must be ≥ 2, got {self.min_trades}"),
            (
                self.window_trades >= self.min_trades,
                f"window_trades must be ≥ min_trades, got {self.window_trades}",
            ),
            (self.loss_streak >= 1, f"loss_streak must be ≥ 1, got {self.loss_streak}"),
            (
                0 < self.drawdown_step < 1,
                f"drawdown_step must be in (0, 1), got {self.drawdown_step}",
            ),
            (self.cooldown_ns >= 0, f"cooldown_ns must be ≥ 0, got {self.cooldown_ns}"),
            (self.fomo_sigma > 0, f"fomo_sigma must be > 0, got {self.fomo_sigma}"),
            (self.fomo_lookback >= 1, f"fomo_lookback must be ≥ 1, got {self.fomo_lookback}"),
            (
                self.vol_window > self.fomo_lookback,
                f"vol_window must be > fomo_lookback, got {self.vol_window}",
            ),
            (
                0 < self.kelly_fraction <= 1,
                f"kelly_fraction must be in (0, 1], got {self.kelly_fraction}",
            ),
            (0 < self.kelly_cap <= 1, f"kelly_cap must be in (0, 1], got {self.kelly_cap}"),
            (self.win_streak >= 1, f"win_streak must be ≥ 1, got {self.win_streak}"),
            (self.max_size_growth >= 1, f"max_size_growth must be ≥ 1, got {self.max_size_growth}"),
            (
                0 < self.drawdown_limit < 1,
                f"drawdown_limit must be in (0, 1), got {self.drawdown_limit}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise GateConfigError(f"gate config: {message}")


@dataclass(frozen=True, init=False)
class Signal:
    """A strategy's wish to trade, before any check."""

    order_id: str
    instrument: str
    side: int  # +1 buy, -1 sell
    quantity: float
    price: float
    ts_ns: int
    strategy: str = "default"
    reduces_position: bool = False  # closing/reducing orders lower risk: only halts apply

    def __init__(
        self,
        order_id: str,
        instrument: str,
        side: int,
        quantity: float,
        price: float,
        ts_ns: int,
        strategy: str = "default",
        reduces_position: bool = False,
    ) -> None:
        # The generated frozen __init__ sets each field through object.__setattr__; one
        # is built per signal on the order path, so fill the instance dict directly (a
        # test holds this to the fields and defaults the dataclass declares).
        d = self.__dict__
        d["order_id"] = order_id
        d["instrument"] = instrument
        d["side"] = side
        d["quantity"] = quantity
        d["price"] = price
        d["ts_ns"] = ts_ns
        d["strategy"] = strategy
        d["reduces_position"] = reduces_position


@dataclass(frozen=True, init=False)
class Decision:
    """The gate's answer, as logged."""

    order_id: str
    allowed: bool
    reason: Reason
    detail: str = ""
    p_value: float | None = None

    def __init__(
        self,
        order_id: str,
        allowed: bool,
        reason: Reason,
        detail: str = "",
        p_value: float | None = None,
    ) -> None:
        d = self.__dict__  # as Signal: one per decision, on the order path
        d["order_id"] = order_id
        d["allowed"] = allowed
        d["reason"] = reason
        d["detail"] = detail
        d["p_value"] = p_value


def decision_record(signal: Signal, decision: Decision) -> dict[str, object]:
    """The ``data`` of a decision's audit record."""
    # ``reason`` is a StrEnum member: the encoder writes it as its value, byte for byte.
    return {
        "order_id": signal.order_id,
        "instrument": signal.instrument,
        "side": signal.side,
        "quantity": signal.quantity,
        "price": signal.price,
        "allowed": decision.allowed,
        "reason": decision.reason,
        "detail": decision.detail,
    }


# ``canonical(decision_record(...))`` with the keys laid out once, in sorted order.
_DECISION_BODY = (
    '{"allowed":%s,"detail":%s,"instrument":%s,"order_id":%s,'
    '"price":%r,"quantity":%r,"reason":%s,"side":%d}'
)
_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # ensure_ascii=False
_REASON_JSON = {reason: _encode_str(reason.value) for reason in Reason}
_INF = math.inf


def decision_body(signal: Signal, decision: Decision) -> str | None:
    """``canonical(decision_record(signal, decision)).decode()``, built from the layout
    above, or None for a value it does not cover (then the caller encodes the dict).

    Covered: exact ``str`` ids, instrument and detail, an exact ``int`` side, finite exact
    ``float`` quantity and price — what the engine passes — formatted as the C encoder
    does (``float.__repr__``, ``int.__repr__``, ``encode_basestring``). Anything else (an
    int or numpy quantity, NaN, a str subclass) returns None: its bytes are the encoder's
    to decide. A property test compares this with ``canonical`` over arbitrary values.
    """
    oid, instrument, side = signal.order_id, signal.instrument, signal.side
    quantity, price, detail = signal.quantity, signal.price, decision.detail
    if (
        type(oid) is not str
        or type(instrument) is not str
        or type(side) is not int
        or type(quantity) is not float
        or type(price) is not float
        or type(detail) is not str
        or not -_INF < quantity < _INF
        or not -_INF < price < _INF
        or not -(10**18) < side < 10**18
    ):
        return None
    reason = _REASON_JSON.get(decision.reason)
    if reason is None or type(decision.allowed) is not bool:
        return None
    return _DECISION_BODY % (
        "true" if decision.allowed else "false",
        _encode_str(detail),
        _encode_str(instrument),
        _encode_str(oid),
        price,
        quantity,
        reason,
        side,
    )


class GateMetrics(Collector):
    """Decisions by outcome and reason, and decision latency.

    Exported as the series a prometheus_client ``Counter`` (``gate_decisions_total`` and
    ``_created``, by ``outcome`` and ``reason``) and ``Histogram`` (``gate_decision_seconds``
    ``_bucket``/``_count``/``_sum``/``_created``) give, but counted in plain integers under
    one lock: a decision pays one lock and a ``bisect`` instead of two metric objects'
    locks, checks and bucket loop (the gate sits on the order path).
    """

    BUCKETS = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 1e-3, math.inf)
    _DECISIONS = ("gate_decisions", "Emotion-free gate decisions by outcome and reason")
    _LATENCY = ("gate_decision_seconds", "Time to reach a gate decision")

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(Reason, 0)
        self._buckets = [0] * len(self.BUCKETS)
        self._sum = 0.0
        self._created = time.time()
        registry.register(self)
        self.enabled = Gauge(
            "gate_enabled",
            "1 while the gate applies its rules, 0 while disabled",
            registry=registry,
        )

    def record(self, reason: Reason, seconds: float) -> None:
        """Count one decision and its latency."""
        i = _bisect_left(self.BUCKETS, seconds)  # the first bucket with seconds ≤ le
        with self._lock:
            self._counts[reason] += 1
            self._buckets[i] += 1
            self._sum += seconds

    def describe(self) -> list[Metric]:
        """The two families, without samples (for the registry's duplicate-name check)."""
        return [Metric(*self._DECISIONS, "counter"), Metric(*self._LATENCY, "histogram")]

    def collect(self) -> list[Metric]:
        """A consistent snapshot, taken under the lock."""
        with self._lock:
            counts = dict(self._counts)
            buckets = list(self._buckets)
            total = self._sum
        decisions = Metric(*self._DECISIONS, "counter")
        for reason, n in counts.items():
            labels = {"outcome": "allow" if reason in ALLOWING else "block", "reason": reason.value}
            decisions.add_sample("gate_decisions_total", labels, float(n))
        for reason in counts:
            labels = {"outcome": "allow" if reason in ALLOWING else "block", "reason": reason.value}
            decisions.add_sample("gate_decisions_created", labels, self._created)
        latency = Metric(*self._LATENCY, "histogram")
        cumulative = 0
        for bound, n in zip(self.BUCKETS, buckets, strict=True):
            cumulative += n
            le = _go_float(bound)
            latency.add_sample("gate_decision_seconds_bucket", {"le": le}, float(cumulative))
        latency.add_sample("gate_decision_seconds_count", {}, float(cumulative))
        latency.add_sample("gate_decision_seconds_sum", {}, total)
        latency.add_sample("gate_decision_seconds_created", {}, self._created)
        return [decisions, latency]


@dataclass
class _Prices:
    """Recent prices of one instrument and the cached chasing direction."""

    window: deque[float]
    chasing: int = 0  # +1 after a large up-move, -1 after a large down-move


@dataclass
class _Trades:
    """Recent trade outcomes and what the rules derived from them."""

    outcomes: deque[float]
    p_value: float = 1.0
    loss_streak: int = 0
    win_streak: int = 0
    cooldown_until_ns: int = -1
    last_step: int = 0
    win_probability: float = 0.0
    win_loss_ratio: float = 0.0
    kelly_share: float = 0.0  # fractional-Kelly share of equity (cached from the evidence)
    last_size: dict[str, float] = field(default_factory=dict)
    stale: bool = False  # outcomes changed since p_value and the win statistics were derived


class EmotionFreeGate:
    """The gate. Thread-safe; ``enabled`` is an atomic flag (``threading.Event``)."""

    def __init__(
        self,
        config: GateConfig | None = None,
        *,
        audit_log: AuditLog | None = None,
        metrics: GateMetrics | None = None,
        override: OverrideVerifier | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.config = config or GateConfig()
        self.audit_log = audit_log
        self.metrics = metrics
        self.override = override
        if override is not None and audit_log is not None:
            override.mark_used(audit_log.override_nonces)  # spent in earlier runs of this log
        self._clock = clock
        self._enabled = threading.Event()
        self._enabled.set()
        if metrics is not None:
            metrics.enabled.set_function(lambda: float(self._enabled.is_set()))
        self._lock = threading.Lock()
        self._trades = _Trades(
            outcomes=deque(maxlen=self.config.window_trades),
            kelly_share=self.config.kelly_cap * self.config.kelly_fraction,  # before any loss
        )
        self._prices: dict[str, _Prices] = {}
        self._drawdown = DrawdownTracker(self.config.drawdown_limit)
        self._equity = math.nan
        self._max_drawdown = 0.0

    # --- switches ------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether rules are applied (a disabled gate passes everything, still logged)."""
        return self._enabled.is_set()

    def set_enabled(self, value: bool, operator: str, reason: str) -> None:
        """Switch the gate on or off; the switch itself is audited."""
        (self._enabled.set if value else self._enabled.clear)()
        log.warning("gate %s by %s: %s", "enabled" if value else "DISABLED", operator, reason)
        self._audit("gate_switch", {"enabled": value, "operator": operator, "reason": reason})

    # --- state updates (off the decision path) --------------------------------------------

    def record_trade(
        self,
        pnl_fraction: float,
        equity: float,
        quantity: float,
        instrument: str,
        ts_ns: int,
        *,
        evidence: bool = True,
    ) -> None:
        """A closed live trade: P&L as a fraction of equity, equity after it, its size.

        ``evidence=False`` when the engine already counts this signal's outcome through
        :meth:`record_signal_outcome` (so no outcome is counted twice).
        """
        if not (math.isfinite(pnl_fraction) and math.isfinite(equity) and equity > 0):
            raise GateConfigError("record_trade needs finite pnl and equity > 0")
        with self._lock:
            t = self._trades
            t.last_size[instrument] = quantity
            if pnl_fraction < 0:
                t.loss_streak += 1
                t.win_streak = 0
            elif pnl_fraction > 0:
                t.win_streak += 1
                t.loss_streak = 0
            if t.loss_streak >= self.config.loss_streak:
                t.cooldown_until_ns = ts_ns + self.config.cooldown_ns
            self._update_equity(equity, ts_ns)
            if evidence:
                self._add_evidence(pnl_fraction)

    def record_signal_outcome(self, pnl_fraction: float) -> None:
        """The measured outcome of a signal (live or paper): the evidence of the edge."""
        self.record_signal_outcomes([pnl_fraction])

    def record_signal_outcomes(self, pnl_fractions: list[float]) -> None:
        """Several outcomes at once, in order, under one lock (the engine measures a step's
        worth together); none is recorded unless all are finite."""
        if not all(math.isfinite(x) for x in pnl_fractions):
            raise GateConfigError("a signal outcome must be finite")
        with self._lock:
            for x in pnl_fractions:
                self._add_evidence(x)

    def observe_equity(self, equity: float, ts_ns: int) -> None:
        """Mark-to-market equity: drives the drawdown halt and drawdown-step cooldowns."""
        if not (math.isfinite(equity) and equity > 0):
            raise GateConfigError(f"equity must be finite and > 0, got {equity}")
        with self._lock:
            self._update_equity(equity, ts_ns)

    @property
    def max_drawdown(self) -> float:
        """Largest drawdown from peak seen so far (fraction)."""
        return self._max_drawdown

    @property
    def halted(self) -> bool:
        """True once the drawdown limit was reached (until a human resets it)."""
        return self._drawdown.breached

    def _update_equity(self, equity: float, ts_ns: int) -> None:
        t = self._trades
        status = self._drawdown.update(equity)
        self._max_drawdown = status.max_drawdown
        step = int(status.drawdown / self.config.drawdown_step)
        if step > t.last_step:
            t.cooldown_until_ns = max(t.cooldown_until_ns, ts_ns + self.config.cooldown_ns)
        t.last_step = step
        self._equity = equity

    def _add_evidence(self, pnl_fraction: float) -> None:
        """Record an outcome; its statistics are derived when a decision next reads them."""
        t = self._trades
        t.outcomes.append(pnl_fraction)
        t.stale = True

    def _derive_evidence(self) -> None:
        """p-value and win statistics of the current outcomes: once per change, not once per
        outcome (the engine records several outcomes between decisions)."""
        t = self._trades
        if not t.stale:  # the common case, read without the lock: a decision racing an
            return  # outcome being recorded sees the evidence just before it, as if earlier
        with self._lock:
            if t.stale:
                self._derive(t)
                t.stale = False

    def _derive(self, t: _Trades) -> None:
        outcomes = list(t.outcomes)
        test = t_test_positive_mean if self.config.test == "t" else sign_test_positive
        t.p_value = test(outcomes)
        wins = [x for x in outcomes if x > 0]
        losses = [-x for x in outcomes if x < 0]
        t.win_probability = len(wins) / len(outcomes)
        t.win_loss_ratio = (
            (sum(wins) / len(wins)) / (sum(losses) / len(losses)) if wins and losses else 0.0
        )
        cfg = self.config
        # Cached here, off the decision path: it changes only with the evidence.
        t.kelly_share = (
            kelly_fraction(
                t.win_probability, t.win_loss_ratio, fraction=cfg.kelly_fraction, cap=cfg.kelly_cap
            )
            if t.win_loss_ratio > 0
            else cfg.kelly_cap * cfg.kelly_fraction  # no losses yet: size at the cap's fraction
        )

    def observe_price(self, instrument: str, price: float) -> None:
        """A market price; updates the instrument's chasing direction (FOMO rule)."""
        if not (math.isfinite(price) and price > 0):
            raise GateConfigError(f"price must be finite and > 0, got {price}")
        cfg = self.config
        with self._lock:
            p = self._prices.get(instrument)
            if p is None:
                p = self._prices[instrument] = _Prices(deque(maxlen=cfg.vol_window + 1))
            p.window.append(math.log(price))
            logs = p.window
            if len(logs) <= cfg.fomo_lookback + 1:
                p.chasing = 0
                return
            steps = [b - a for a, b in pairwise(logs)]  # the same differences, no copies
            mean = sum(steps) / len(steps)
            sigma = math.sqrt(sum([(s - mean) ** 2 for s in steps]) / (len(steps) - 1))
            move = logs[-1] - logs[-1 - cfg.fomo_lookback]
            threshold = cfg.fomo_sigma * sigma * math.sqrt(cfg.fomo_lookback)
            p.chasing = 0 if sigma == 0 or abs(move) <= threshold else (1 if move > 0 else -1)

    # --- the decision ---------------------------------------------------------------------

    def decide(self, signal: Signal, override_token: str | None = None) -> Decision:
        """Decide on one signal; audit and count it."""
        start = _perf_counter()
        decision = self._decide(signal, override_token)
        audit = self.audit_log
        if audit is not None:
            body = decision_body(signal, decision)
            if body is not None:
                audit.append_canonical("decision", body)
            else:  # a type the layout does not cover: the generic encoder decides
                audit.append("decision", decision_record(signal, decision))
        metrics = self.metrics
        if metrics is not None:
            metrics.record(decision.reason, _perf_counter() - start)
        return decision

    def _decide(self, signal: Signal, override_token: str | None) -> Decision:
        oid = signal.order_id
        if not self._enabled.is_set():
            return Decision(oid, True, Reason.GATE_DISABLED, "gate disabled: rules not applied")
        if override_token is not None:
            return self._override(signal, override_token)
        cfg = self.config
        t = self._trades
        if self._drawdown.breached:
            return Decision(
                oid, False, Reason.DRAWDOWN_HALT, f"drawdown limit {cfg.drawdown_limit:.0%} reached"
            )
        if signal.reduces_position:
            return Decision(oid, True, Reason.PASSED, "reduces position")
        if signal.ts_ns < t.cooldown_until_ns:
            return Decision(
                oid,
                False,
                Reason.REVENGE_COOLDOWN,
                f"cooling down after losses until t={t.cooldown_until_ns}",
            )
        prices = self._prices.get(signal.instrument)
        if prices is not None and prices.chasing == signal.side:
            return Decision(
                oid, False, Reason.FOMO, f"move > {cfg.fomo_sigma}σ in the signal's direction"
            )
        if len(t.outcomes) < cfg.min_trades:
            return Decision(
                oid,
                False,
                Reason.INSUFFICIENT_HISTORY,
                f"{len(t.outcomes)} trades < {cfg.min_trades} needed for evidence",
            )
        if t.stale:
            self._derive_evidence()
        if t.p_value >= cfg.alpha:
            return Decision(
                oid, False, Reason.NO_EDGE, f"p={t.p_value:.4f} ≥ {cfg.alpha}", t.p_value
            )
        return self._sizing(signal, t)

    def _sizing(self, signal: Signal, t: _Trades) -> Decision:
        cfg = self.config
        oid = signal.order_id
        share = t.kelly_share
        notional = abs(signal.quantity) * signal.price
        if not math.isnan(self._equity) and notional > share * self._equity:
            return Decision(
                oid,
                False,
                Reason.OVERSIZED,
                f"notional {notional:.2f} > Kelly {share:.4f} × equity {self._equity:.2f}",
                t.p_value,
            )
        last = t.last_size.get(signal.instrument)
        if (
            t.win_streak >= cfg.win_streak
            and last
            and abs(signal.quantity) > cfg.max_size_growth * abs(last)
        ):
            return Decision(
                oid,
                False,
                Reason.SIZE_ESCALATION,
                f"size {abs(signal.quantity)} > {cfg.max_size_growth}× last {abs(last)} after "
                f"{t.win_streak} wins",
                t.p_value,
            )
        return Decision(oid, True, Reason.PASSED, "", t.p_value)

    def _override(self, signal: Signal, token: str) -> Decision:
        if self.override is None:
            return Decision(
                signal.order_id, False, Reason.OVERRIDE_REJECTED, "no override key configured"
            )
        try:
            claims = self.override.verify(token, signal.order_id, self._clock())
        except OverrideRejectedError as exc:
            log.warning("override rejected for %s: %s", signal.order_id, exc)
            return Decision(signal.order_id, False, Reason.OVERRIDE_REJECTED, str(exc))
        # The use is recorded (and forced to disk) before the order may pass: a restarted
        # gate rebuilds its used nonces from these records, so the token stays spent.
        if self.audit_log is not None:
            self.audit_log.append(
                "override_use",
                {
                    "nonce": claims.nonce,
                    "order_id": claims.order_id,
                    "operator": claims.operator,
                    "not_after_ns": claims.not_after_ns,
                },
                durable=True,
            )
        detail = f"override by {claims.operator}: {claims.reason}"
        log.warning("gate override for %s — %s", signal.order_id, detail)
        return Decision(signal.order_id, True, Reason.OVERRIDE, detail)

    def _audit(self, kind: str, data: dict[str, object]) -> None:
        if self.audit_log is not None:
            self.audit_log.append(kind, data)
