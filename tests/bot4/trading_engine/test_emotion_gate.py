from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot4.trading_engine.audit_log import AuditLog, FsyncPolicy, canonical, verify
from bot4.trading_engine.emotion_gate import (
    ALLOWING,
    Decision,
    EmotionFreeGate,
    GateConfig,
    GateMetrics,
    Reason,
    Signal,
    decision_body,
    decision_record,
)
from bot4.trading_engine.errors import AuditError, GateConfigError
from bot4.trading_engine.override import OverrideKey, OverrideVerifier, issue
from bot4.trading_engine.strategy import Intent

MIN = 60 * 1_000_000_000
KEY = OverrideKey(hmac_secret=b"s" * 32)


def sig(
    oid: str = "o1", qty: float = 1.0, side: int = 1, ts: int = 10**15, inst: str = "BTC"
) -> Signal:
    return Signal(oid, inst, side, qty, 100.0, ts)


def winning_history(gate: EmotionFreeGate, n: int = 30, ts: int = 0) -> None:
    """Two wins for each loss, wins twice the size: a clear edge."""
    equity = 100_000.0
    for i in range(n):
        pnl = -0.001 if i % 3 == 2 else 0.002
        equity *= 1 + pnl
        gate.record_trade(pnl, equity, 1.0, "BTC", ts + i)


def make_gate(
    tmp_path: Path | None = None, **cfg: object
) -> tuple[EmotionFreeGate, CollectorRegistry]:
    registry = CollectorRegistry()
    audit = AuditLog(tmp_path / "audit.jsonl", fsync=FsyncPolicy.NEVER) if tmp_path else None
    gate = EmotionFreeGate(
        GateConfig(**cfg),  # type: ignore[arg-type]
        audit_log=audit,
        metrics=GateMetrics(registry),
        override=OverrideVerifier(KEY),
        clock=lambda: 1_000,
    )
    return gate, registry


def count(registry: CollectorRegistry, reason: Reason) -> float:
    outcome = (
        "allow" if reason in (Reason.PASSED, Reason.GATE_DISABLED, Reason.OVERRIDE) else "block"
    )
    value = registry.get_sample_value(
        "gate_decisions_total", {"outcome": outcome, "reason": reason.value}
    )
    return value or 0.0


def test_no_history_no_trade() -> None:
    gate, registry = make_gate()
    d = gate.decide(sig())
    assert (d.allowed, d.reason) == (False, Reason.INSUFFICIENT_HISTORY)
    assert count(registry, Reason.INSUFFICIENT_HISTORY) == 1


def test_edge_passes_and_noise_does_not() -> None:
    gate, registry = make_gate()
    winning_history(gate)
    d = gate.decide(sig())
    assert d.allowed and d.reason is Reason.PASSED
    assert d.p_value is not None and d.p_value < 0.05
    assert registry.get_sample_value("gate_decision_seconds_count") == 1
    noisy, _ = make_gate()
    for i in range(30):
        noisy.record_trade(0.001 if i % 2 else -0.001, 100_000.0, 1.0, "BTC", i)
    d = noisy.decide(sig())
    assert d.reason is Reason.NO_EDGE and d.p_value is not None and d.p_value >= 0.05


def test_sign_test_variant() -> None:
    gate, _ = make_gate(test="sign")
    winning_history(gate, n=40)
    assert gate.decide(sig()).reason is Reason.PASSED


def test_revenge_cooldown_after_loss_streak() -> None:
    gate, _ = make_gate(loss_streak=3, cooldown_ns=15 * MIN)
    winning_history(gate)
    t0 = 10**12
    for i in range(3):
        gate.record_trade(-0.0001, 100_000.0, 1.0, "BTC", t0 + i)
    assert gate.decide(sig(ts=t0 + 2 + MIN)).reason is Reason.REVENGE_COOLDOWN
    d = gate.decide(sig(ts=t0 + 2 + 16 * MIN))
    assert d.reason is not Reason.REVENGE_COOLDOWN


def test_drawdown_step_triggers_cooldown_and_limit_halts() -> None:
    gate, _ = make_gate(drawdown_step=0.05, drawdown_limit=0.15, loss_streak=100)
    winning_history(gate)
    gate.record_trade(-0.06, 94_000.0, 1.0, "BTC", 10**12)
    assert gate.decide(sig(ts=10**12 + 1)).reason is Reason.REVENGE_COOLDOWN
    gate.record_trade(-0.12, 80_000.0, 1.0, "BTC", 10**12 + 2)
    assert gate.decide(sig(ts=10**15)).reason is Reason.DRAWDOWN_HALT


def test_fomo_blocks_chasing_only_in_the_move_direction() -> None:
    gate, _ = make_gate(fomo_sigma=3.0, fomo_lookback=3, vol_window=50)
    winning_history(gate)
    price = 100.0
    for i in range(50):
        price *= 1.001 if i % 2 else 0.999
        gate.observe_price("BTC", price)
    assert gate.decide(sig(side=1)).reason is Reason.PASSED
    for _ in range(3):
        price *= 1.03
        gate.observe_price("BTC", price)
    assert gate.decide(sig(side=1)).reason is Reason.FOMO
    assert gate.decide(sig(side=-1)).reason is Reason.PASSED
    assert gate.decide(sig(side=1, inst="ETH")).reason is Reason.PASSED


def test_flat_prices_are_not_fomo() -> None:
    gate, _ = make_gate(fomo_lookback=2, vol_window=5)
    winning_history(gate)
    for _ in range(10):
        gate.observe_price("BTC", 100.0)
    assert gate.decide(sig()).reason is Reason.PASSED


def test_oversized_vs_fractional_kelly() -> None:
    gate, _ = make_gate()
    winning_history(gate)
    # p = 2/3, b = 2 → Kelly 0.5, quarter-Kelly 0.125, capped at 0.2 → 12.5% of ~100k equity.
    assert gate.decide(sig(qty=100.0)).reason is Reason.PASSED  # 10k notional
    d = gate.decide(sig(qty=200.0))  # 20k notional
    assert d.reason is Reason.OVERSIZED and "Kelly 0.1250" in d.detail


def test_no_losses_yet_sizes_conservatively() -> None:
    gate, _ = make_gate(min_trades=5, window_trades=5)
    for i in range(5):
        gate.record_trade(0.001, 100_000.0 + i, 40.0, "BTC", i)
    assert gate.decide(sig(qty=40.0)).reason is Reason.PASSED  # 4k ≤ 0.2 × 0.25 × 100k
    assert gate.decide(sig(qty=60.0)).reason is Reason.OVERSIZED


def test_size_escalation_after_wins() -> None:
    gate, _ = make_gate(win_streak=2, max_size_growth=1.5)
    winning_history(gate, n=32)  # ends on two wins (i = 30, 31), last size 1.0
    assert gate.decide(sig(qty=1.5)).reason is Reason.PASSED
    assert gate.decide(sig(qty=2.0)).reason is Reason.SIZE_ESCALATION


def test_disabled_gate_passes_but_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gate, registry = make_gate(tmp_path)
    with caplog.at_level(logging.WARNING):
        gate.set_enabled(False, "alice", "exchange maintenance drill")
    assert not gate.enabled
    assert registry.get_sample_value("gate_enabled") == 0.0
    d = gate.decide(sig())
    assert (d.allowed, d.reason, d.detail) == (
        True,
        Reason.GATE_DISABLED,
        "gate disabled: rules not applied",
    )
    assert count(registry, Reason.GATE_DISABLED) == 1
    gate.set_enabled(True, "alice", "drill over")
    assert gate.decide(sig()).reason is Reason.INSUFFICIENT_HISTORY
    assert gate.audit_log is not None
    gate.audit_log.close()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["gate_switch", "decision", "gate_switch", "decision"]
    assert records[1]["data"]["reason"] == "gate_disabled"
    assert verify([tmp_path / "audit.jsonl"]).ok
    assert "gate DISABLED by alice" in caplog.text


def test_override_is_scoped_single_use_and_logged(tmp_path: Path) -> None:
    gate, registry = make_gate(tmp_path)
    token = issue(
        KEY, order_id="o1", not_before_ns=0, not_after_ns=MIN, operator="bob", reason="hedge"
    )
    d = gate.decide(sig("o1"), override_token=token)
    assert (d.allowed, d.reason) == (True, Reason.OVERRIDE)
    assert d.detail == "override by bob: hedge"
    replay = gate.decide(sig("o1"), override_token=token)
    assert (replay.allowed, replay.reason) == (False, Reason.OVERRIDE_REJECTED)
    assert "replay rejected" in replay.detail
    other = gate.decide(
        sig("o2"),
        override_token=issue(
            KEY, order_id="o1", not_before_ns=0, not_after_ns=MIN, operator="bob", reason="x"
        ),
    )
    assert "not 'o2'" in other.detail
    late = issue(
        KEY, order_id="o3", not_before_ns=5_000, not_after_ns=MIN, operator="bob", reason="x"
    )
    assert "outside its validity window" in gate.decide(sig("o3"), override_token=late).detail
    forged = issue(
        OverrideKey(hmac_secret=b"x" * 32),
        order_id="o4",
        not_before_ns=0,
        not_after_ns=MIN,
        operator="eve",
        reason="x",
    )
    assert "signature does not verify" in gate.decide(sig("o4"), override_token=forged).detail
    assert count(registry, Reason.OVERRIDE) == 1 and count(registry, Reason.OVERRIDE_REJECTED) == 4
    assert gate.audit_log is not None
    gate.audit_log.close()
    text = (tmp_path / "audit.jsonl").read_text()
    assert "override by bob: hedge" in text and KEY.hmac_secret is not None
    assert KEY.hmac_secret.decode() not in text


def test_override_without_key() -> None:
    gate = EmotionFreeGate()
    token = issue(KEY, order_id="o1", not_before_ns=0, not_after_ns=MIN, operator="bob", reason="x")
    assert gate.decide(sig(), override_token=token).detail == "no override key configured"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("alpha", 1.0, "alpha must be in"),
        ("test", "z", "test must be"),
        ("min_trades", 1, "min_trades"),
        ("window_trades", 5, "window_trades"),
        ("loss_streak", 0, "loss_streak"),
        ("drawdown_step", 0.0, "drawdown_step"),
        ("cooldown_ns", -1, "cooldown_ns"),
        ("fomo_sigma", 0.0, "fomo_sigma"),
        ("fomo_lookback", 0, "fomo_lookback"),
        ("vol_window", 5, "vol_window"),
        ("kelly_fraction", 0.0, "kelly_fraction"),
        ("kelly_cap", 2.0, "kelly_cap"),
        ("win_streak", 0, "win_streak"),
        ("max_size_growth", 0.5, "max_size_growth"),
        ("drawdown_limit", 1.0, "drawdown_limit"),
    ],
)
def test_config_validation(field: str, value: object, message: str) -> None:
    with pytest.raises(GateConfigError, match=f"gate config: {message}"):
        GateConfig(**{field: value})  # type: ignore[arg-type]


def test_bad_updates() -> None:
    gate = EmotionFreeGate()
    with pytest.raises(GateConfigError, match="finite pnl"):
        gate.record_trade(float("nan"), 1.0, 1.0, "X", 0)
    with pytest.raises(GateConfigError, match="price must be finite"):
        gate.observe_price("X", -1.0)


def test_decision_value() -> None:
    assert Decision("o", True, Reason.PASSED).detail == ""


def test_ed25519_override_keys() -> None:
    private = Ed25519PrivateKey.generate()
    issuer = OverrideKey(signing_key=private)
    checker = OverrideVerifier(OverrideKey(verify_key=private.public_key()))
    token = issue(issuer, order_id="o1", not_before_ns=0, not_after_ns=10, operator="a", reason="b")
    assert checker.verify(token, "o1", 5).operator == "a"
    stranger = OverrideKey(signing_key=Ed25519PrivateKey.generate())
    forged = issue(
        stranger, order_id="o1", not_before_ns=0, not_after_ns=10, operator="a", reason="b"
    )
    with pytest.raises(GateConfigError, match="signature does not verify"):
        checker.verify(forged, "o1", 5)
    assert "secret material redacted" in repr(issuer) and "1 used" in repr(checker)
    with pytest.raises(GateConfigError, match="only a public half"):
        issue(
            OverrideKey(verify_key=private.public_key()),
            order_id="o",
            not_before_ns=0,
            not_after_ns=1,
            operator="a",
            reason="b",
        )


class EagerGate(EmotionFreeGate):
    """The gate as it was: statistics derived on every outcome (the reference)."""

    def _add_evidence(self, pnl_fraction: float) -> None:
        super()._add_evidence(pnl_fraction)
        self._derive(self._trades)


_OUTCOMES = st.floats(-0.01, 0.01, allow_nan=False).filter(lambda x: x != 0.0) | st.just(0.0)
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("outcome"), _OUTCOMES),
        st.tuples(st.just("trade"), _OUTCOMES),
        st.tuples(st.just("decide"), st.floats(0.1, 5.0)),
    ),
    max_size=80,
)


@settings(max_examples=150)
@given(_STEPS, st.sampled_from(["t", "sign"]))
def test_lazy_evidence_decides_like_the_eager_gate(
    steps: list[tuple[str, float]], test: str
) -> None:
    """Statistics derived at decision time give the same decisions, p-values included."""
    cfg = GateConfig(min_trades=3, window_trades=12, alpha=0.2, test=test)  # type: ignore[arg-type]
    lazy, eager = EmotionFreeGate(cfg, clock=lambda: 0), EagerGate(cfg, clock=lambda: 0)
    equity = 100_000.0
    for k, (kind, value) in enumerate(steps):
        for gate in (lazy, eager):
            if kind == "outcome":
                gate.record_signal_outcome(value)
            elif kind == "trade":
                gate.record_trade(value, equity * (1 + value), 1.0, "BTC", k)
        if kind == "trade":
            equity *= 1 + value
        if kind == "decide":
            signal = sig(f"o{k}", qty=value, ts=k)
            assert lazy.decide(signal) == eager.decide(signal)


def test_gate_metrics_export_what_prometheus_counter_and_histogram_would() -> None:
    """GateMetrics counts in plain integers (one lock per decision); its series must be the
    ones a prometheus_client Counter and Histogram give for the same decisions."""
    ours = CollectorRegistry()
    metrics = GateMetrics(ours)
    reference = CollectorRegistry()
    decisions = Counter(
        "gate_decisions",
        "Emotion-free gate decisions by outcome and reason",
        ["outcome", "reason"],
        registry=reference,
    )
    Gauge(
        "gate_enabled", "1 while the gate applies its rules, 0 while disabled", registry=reference
    )
    latency = Histogram(
        "gate_decision_seconds",
        "Time to reach a gate decision",
        registry=reference,
        buckets=GateMetrics.BUCKETS,
    )
    for reason in Reason:
        decisions.labels("allow" if reason in ALLOWING else "block", reason.value)
    observations = [
        (Reason.PASSED, 1e-6),
        (Reason.PASSED, 1.5e-5),
        (Reason.NO_EDGE, 2e-5),
        (Reason.FOMO, 0.5),
        (Reason.OVERRIDE, 5e-7),
        (Reason.PASSED, 3e-3),
    ]
    for reason, seconds in observations:
        metrics.record(reason, seconds)
        decisions.labels("allow" if reason in ALLOWING else "block", reason.value).inc()
        latency.observe(seconds)

    def samples(registry: CollectorRegistry) -> list[tuple[str, str, object]]:
        text = generate_latest(registry).decode()
        out = []
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                value = "created" if s.name.endswith("_created") else s.value
                out.append((s.name, json.dumps(s.labels, sort_keys=True), value))
        return sorted(out)

    assert samples(ours) == samples(reference)
    assert ours.get_sample_value("gate_decision_seconds_bucket", {"le": "1e-06"}) == 2
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        GateMetrics(ours)


_ANY = (
    st.text()
    | st.integers()
    | st.booleans()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.none()
    | st.sampled_from(list(Reason))
)


@settings(max_examples=300)
@given(
    st.text() | _ANY,
    st.text() | _ANY,
    st.sampled_from([1, -1]) | _ANY,
    st.floats(allow_nan=True, allow_infinity=True) | _ANY,
    st.floats(allow_nan=True, allow_infinity=True) | _ANY,
    st.booleans() | st.integers(0, 1),  # an int is not a bool: the encoder decides
    st.sampled_from(list(Reason)) | st.text(),
    st.text() | _ANY,
)
def test_the_decision_layout_is_the_canonical_encoding(
    oid: object,
    instrument: object,
    side: object,
    quantity: object,
    price: object,
    allowed: object,
    reason: object,
    detail: object,
) -> None:
    """The gate's pre-laid-out decision record is ``canonical`` of its dict, byte for byte,
    or None (then the dict goes through the encoder): never different bytes."""
    signal = Signal(oid, instrument, side, quantity, price, 0)  # type: ignore[arg-type]
    decision = Decision(str(oid), allowed, reason, detail)  # type: ignore[arg-type]
    covered = type(allowed) is bool and isinstance(reason, Reason)
    body = decision_body(signal, decision)
    try:
        expected = canonical(decision_record(signal, decision)).decode()
    except ValueError:  # not encodable at all (a huge int): the layout must not cover it
        assert body is None
        return
    assert body is None or body == expected
    plain = type(quantity) is float and type(price) is float
    small_side = type(side) is int and abs(side) < 10**18
    if covered and plain and small_side and type(oid) is type(instrument) is type(detail) is str:
        assert body is not None or not (math.isfinite(quantity) and math.isfinite(price))  # type: ignore[arg-type]


def test_fast_and_generic_decision_records_write_the_same_log(tmp_path: Path) -> None:
    """Every decision path (covered layout, and the fallback for other types) writes what
    ``append(kind, dict)`` writes."""
    signals = [
        sig("o1"),
        Signal("o2", "ETH", -1, 2, 100.0, 10**15),  # an int quantity: the fallback
        Signal("o3", 'ÉTH"\n', 1, float("nan"), 1e-300, 10**15),  # NaN: the fallback
        Signal("o4", "BTC", 1, -0.0, 1e300, 10**15),
    ]
    logs = []
    for name, fast in (("fast", True), ("generic", False)):
        with AuditLog(tmp_path / name, fsync=FsyncPolicy.NEVER, clock=lambda: 7) as audit:
            gate = EmotionFreeGate(audit_log=audit, clock=lambda: 0)
            for s in signals:
                if fast:
                    gate.decide(s)
                else:
                    gate.audit_log = None
                    d = gate.decide(s)
                    gate.audit_log = audit
                    audit.append("decision", decision_record(s, d))
        logs.append((tmp_path / name).read_bytes())
    assert logs[0] == logs[1]
    assert len(logs[0].splitlines()) == len(signals)
    assert verify([tmp_path / "fast"]).ok


@pytest.mark.parametrize("cls", [Signal, Decision, Intent])
def test_hand_written_inits_are_the_dataclass_ones(
    cls: type[Signal] | type[Decision] | type[Intent],
) -> None:
    """Signal, Decision and the strategy's Intent fill their dict directly (speed); they
    must take and set exactly the declared fields, with the declared defaults, and stay
    frozen."""
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields
    ]
    values = {f.name: object() for f in fields}
    obj = cls(**values)  # type: ignore[arg-type]
    assert vars(obj) == values and list(vars(obj)) == [f.name for f in fields]
    first = fields[0].name
    assert obj == cls(**values) and obj != cls(**{**values, first: 1})  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, first, "x")
    assert getattr(dataclasses.replace(obj, **{first: "y"}), first) == "y"  # type: ignore[arg-type]


def test_a_batch_of_outcomes_is_the_outcomes_one_by_one() -> None:
    """The engine hands over a step's outcomes at once: the same evidence as one at a time,
    and a batch with a non-finite outcome is refused whole."""
    outcomes = [0.002, -0.001, 0.003, 0.0, 0.004, -0.002, 0.001]
    cfg = GateConfig(min_trades=5, alpha=0.5)
    batch, single = EmotionFreeGate(cfg, clock=lambda: 0), EmotionFreeGate(cfg, clock=lambda: 0)
    batch.record_signal_outcomes(outcomes)
    for x in outcomes:
        single.record_signal_outcome(x)
    decision = batch.decide(sig("o1", qty=0.01))
    assert decision == single.decide(sig("o1", qty=0.01))
    assert decision.p_value is not None  # the evidence was read, not just counted
    assert list(batch._trades.outcomes) == outcomes
    with pytest.raises(GateConfigError, match=r"^a signal outcome must be finite$"):
        batch.record_signal_outcomes([0.001, float("nan")])
    assert list(batch._trades.outcomes) == outcomes  # nothing half-recorded


def test_an_unencodable_signal_is_refused_alike_on_either_path(tmp_path: Path) -> None:
    """A lone surrogate in a signal's id cannot be UTF-8: the laid-out path refuses it with
    the generic encoder's one-line AuditError, writes nothing, and the log goes on."""
    hostile = Signal("o\ud800", "BTC", 1, 1.0, 100.0, 0)
    with AuditLog(tmp_path / "a", fsync=FsyncPolicy.NEVER, clock=lambda: 7) as audit:
        gate = EmotionFreeGate(audit_log=audit, clock=lambda: 0)
        with pytest.raises(AuditError) as fast:
            gate.decide(hostile)
        gate.audit_log = None
        decision = gate.decide(hostile)
        gate.audit_log = audit
        with pytest.raises(AuditError) as generic:
            audit.append("decision", decision_record(hostile, decision))
        assert str(fast.value) == str(generic.value)
        assert str(fast.value).startswith("audit record 'decision' is not JSON-serialisable: ")
        assert (tmp_path / "a").read_bytes() == b""  # nothing half-written
        gate.decide(sig("o2"))
    assert verify([tmp_path / "a"]).ok
    assert len((tmp_path / "a").read_bytes().splitlines()) == 1
