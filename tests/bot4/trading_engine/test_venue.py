"""The engine talks to a ``Venue``: any object with submit/cancel/advance/status/now will do."""

from __future__ import annotations

import ast
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from bot4.simulator.exchange import ExchangeSimulator
from bot4.simulator.orders import Order, OrderStatus, OrderType, Side
from bot4.simulator.reports import Report
from bot4.simulator.scenario import load_scenario
from bot4.trading_engine import engine as engine_module
from bot4.trading_engine.config import load_engine_config
from bot4.trading_engine.emotion_gate import GateConfig
from bot4.trading_engine.engine import Engine
from bot4.trading_engine.venue import Venue

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
NS = 1_000_000_000


class Recording:
    """A venue adapter that is not the simulator: it forwards and records every call."""

    def __init__(self, inner: Venue) -> None:
        self.inner = inner
        self.calls: list[str] = []

    @property
    def now(self) -> int:
        return self.inner.now

    def submit(self, order: Order, at_ns: int | None = None) -> None:
        self.calls.append("submit")
        self.inner.submit(order, at_ns)

    def cancel(self, order_id: int, account: str = "default", at_ns: int | None = None) -> None:
        self.calls.append("cancel")
        self.inner.cancel(order_id, account, at_ns)

    def advance(self, until_ns: int) -> list[Report]:
        self.calls.append("advance")
        return self.inner.advance(until_ns)

    def status(self, order_id: int) -> OrderStatus | None:
        return self.inner.status(order_id)


def test_engine_runs_on_any_venue_and_uses_only_the_protocol() -> None:
    sc = load_scenario(EXAMPLES / "reverting.toml")
    cfg = load_engine_config(EXAMPLES / "engine.toml", sc)
    cfg = replace(
        cfg,
        gate=GateConfig(
            alpha=0.999, min_trades=2, window_trades=10, kelly_cap=1.0, kelly_fraction=1.0
        ),
    )
    venue = Recording(ExchangeSimulator(sc))
    engine = Engine(sc, cfg, venue=venue)
    summary = engine.run(20 * NS)
    assert engine.venue is venue
    assert venue.calls.count("submit") == summary.submitted > 0
    assert "advance" in venue.calls
    # The same run on the bare simulator gives the same summary: the adapter changes nothing.
    again = Engine(sc, cfg, venue=ExchangeSimulator(sc)).run(20 * NS)
    assert again == summary


def test_engine_module_does_not_build_a_simulator() -> None:
    source = Path(engine_module.__file__ or "")  # the installed module (also in the image)
    tree = ast.parse(source.read_text(encoding="utf-8"))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert "ExchangeSimulator" not in names | imported


def test_simulator_satisfies_the_protocol() -> None:
    venue: Venue = ExchangeSimulator(load_scenario(EXAMPLES / "basic.toml"))  # mypy checks this
    order = Order(1, "BTC-USD", Side.BUY, Decimal("0.001"), Decimal("29000"), OrderType.LIMIT, "a")
    venue.submit(order, 0)
    assert venue.status(1) is OrderStatus.PENDING
    assert venue.advance(NS)
    assert venue.now == NS
