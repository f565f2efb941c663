"""Engine paths that the example scenarios rarely take: every stage's refusal, timeouts, halts."""

from __future__ import annotations

import signal
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from bot4 import cli
from bot4.risk.config import parse_limits
from bot4.simulator.exchange import ExchangeSimulator
from bot4.simulator.scenario import load_scenario
from bot4.trading_engine.config import EngineConfig, load_engine_config
from bot4.trading_engine.emotion_gate import GateConfig
from bot4.trading_engine.engine import Engine
from bot4.trading_engine.strategy import Intent, Quote, StrategyContext

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NS = 1_000_000_000
CTX = StrategyContext(("ETH-USD",), {"ETH-USD": 0.01}, 0, {})
OPEN_GATE = GateConfig(
    alpha=0.999, min_trades=2, window_trades=10, kelly_cap=1.0, kelly_fraction=1.0
)


class Scripted:
    """Emits ``per_quote`` intents of ``qty`` every ``every`` quotes; passive or at the touch."""

    def __init__(
        self, qty: float = 0.5, per_quote: int = 1, every: int = 10, passive: bool = False
    ) -> None:
        self.qty, self.per_quote, self.every, self.passive = qty, per_quote, every, passive
        self.n = 0
        self.side = 1

    def on_quote(self, quote: Quote, position: float) -> list[Intent]:
        self.n += 1
        if self.n % self.every:
            return []
        self.side = -self.side
        if self.passive:
            price = quote.bid - 0.5 if self.side > 0 else quote.ask + 0.5
        else:
            price = quote.ask if self.side > 0 else quote.bid
        return [Intent(quote.instrument, self.side, self.qty, price)] * self.per_quote


def config(**changes: object) -> tuple[EngineConfig, object]:
    sc = load_scenario(EXAMPLES / "reverting.toml")
    base = load_engine_config(EXAMPLES / "engine.toml", sc)
    return replace(base, gate=OPEN_GATE, **changes), sc  # type: ignore[arg-type]


def run(
    strategy: Scripted, seconds: int = 20, scenario: str = "reverting.toml", **changes: object
) -> Engine:
    cfg, _ = config(**changes)
    sc = load_scenario(EXAMPLES / scenario)
    engine = Engine(sc, cfg, venue=ExchangeSimulator(sc), strategy=strategy)
    engine.run(seconds * NS)
    return engine


def test_full_queue_sheds_and_counts() -> None:
    engine = run(Scripted(per_quote=5), queue=replace(config()[0].queue, capacity=2))
    assert engine.summary.shed > 0
    assert engine.summary.signals == engine.summary.shed + sum(engine.summary.gate.values())


def test_client_bucket_limits_the_rate() -> None:
    engine = run(
        Scripted(per_quote=3, every=2),
        client=replace(config()[0].client, capacity=1, rate_per_s=0.5),
    )
    assert engine.summary.client_rate_limited > 0


def test_risk_rejects_and_sub_lot_sizes() -> None:
    tight = parse_limits(
        {
            "instruments": {
                "ETH-USD": {
                    "id": 1,
                    "max_order_qty": 10,
                    "max_notional": 1e9,
                    "price_band": 0.2,
                    "max_position": 100,
                }
            },
            "accounts": {
                "strategy": {
                    "id": 1,
                    "max_gross_exposure": 1e9,
                    "max_net_exposure": 1e9,
                    "max_open_orders": 1000,
                    "max_orders_per_window": 1000,
                }
            },
        }
    )
    engine = run(Scripted(qty=0.5), risk=tight)
    assert engine.summary.risk_rejected["max_order_qty"] > 0
    engine = run(Scripted(qty=0.001))
    assert engine.summary.risk_rejected["below_lot_size"] > 0


def test_answers_slower_than_the_timeout_count_as_failures() -> None:
    # Acks take 0.4 ms here; a 0.1 ms budget makes every order a timeout for the breaker.
    cfg, _ = config(response_timeout_ns=100_000)
    sc = load_scenario(EXAMPLES / "reverting.toml")
    engine = Engine(sc, cfg, venue=ExchangeSimulator(sc), strategy=Scripted(qty=0.05, every=4))
    engine.gate.set_enabled(False, "test", "exercise the venue path only")
    summary = engine.run(15 * NS)
    assert summary.timeouts >= 10
    assert summary.acked > 0  # the late answers still arrive and are accounted
    assert summary.breaker_transitions[0] == "open"
    assert summary.gate == {"gate_disabled": sum(summary.gate.values())}


def test_fuse_cancels_resting_orders() -> None:
    cfg, _ = config(order_type="limit")
    sc = load_scenario(EXAMPLES / "reverting.toml")
    venue = ExchangeSimulator(sc)
    engine = Engine(sc, cfg, venue=venue, strategy=Scripted(passive=True))

    def trip(t: int, _total: int) -> None:
        if t == 10 * NS:
            engine.fuse.trip("drill")

    summary = engine.run(15 * NS, progress=trip)
    assert summary.fuse_tripped and summary.cancels_sent > 0
    statuses = {venue.status(oid) for oid in venue.order_ids()}
    assert {s.value if s else None for s in statuses} <= {"cancelled", "filled"}


def test_metrics_endpoint_and_signals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # SIGTERM only once the CLI has installed its handler: a fixed delay raced it on a busy
    # machine, and the default action then killed the whole test process (or xdist worker).
    default = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()

    def term_when_handled() -> None:
        while not stop.wait(0.01):
            if signal.getsignal(signal.SIGTERM) is not default:
                signal.raise_signal(signal.SIGTERM)
                return

    stopper = threading.Thread(target=term_when_handled, daemon=True)
    stopper.start()
    argv = [
        "run",
        str(EXAMPLES / "reverting.toml"),
        "--engine",
        str(EXAMPLES / "engine.toml"),
        "--metrics-port",
        "0",
        "--metrics-address",
        "127.0.0.1",
        "--duration",
        "600",
    ]
    try:
        assert cli.main(argv) == 0
    finally:
        stop.set()
        stopper.join()
    captured = capsys.readouterr()
    assert "metrics on http://127.0.0.1:" in captured.err
    assert "SIGTERM: stopping after this step" in captured.err
    assert "simulated" in captured.out
