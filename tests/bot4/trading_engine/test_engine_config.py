from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from bot4.simulator.scenario import load_scenario
from bot4.trading_engine.config import load_engine_config, parse_engine_config
from bot4.trading_engine.emotion_gate import EmotionFreeGate
from bot4.trading_engine.errors import TradingEngineError
from bot4.trading_engine.strategy import MeanReversion, Quote, StrategyContext, load_strategy

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SCENARIO = load_scenario(EXAMPLES / "reverting.toml")
CTX = StrategyContext(("ETH-USD",), {"ETH-USD": 0.01}, 0, {})


def test_defaults_need_nothing_but_the_scenario() -> None:
    cfg = load_engine_config(None, SCENARIO)
    assert cfg.instrument_ids == {"ETH-USD": 1}
    assert cfg.account == "strategy" and cfg.order_type == "ioc"
    assert cfg.breaker.cooldown == 5.0


def test_example_config_loads() -> None:
    cfg = load_engine_config(EXAMPLES / "engine.toml", SCENARIO)
    assert cfg.gate.alpha == 0.5 and cfg.gate.cooldown_ns == 2_000_000_000
    assert cfg.breaker.probe_calls == 5 and cfg.client.capacity == 20.0
    assert cfg.strategy_params["lookback"] == 20.0


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"step_ms": "x"}, "step_ms must be a float"),
        ({"step_ms": float("inf")}, "step_ms must be finite"),
        ({"initial_equity": 0}, "initial_equity must be > 0"),
        ({"strategy": True}, "strategy must be a str"),
        ({"order_type": "fok"}, "order_type must be 'ioc' or 'limit'"),
        ({"gate": 3}, r"\[gate\] must be a table"),
        ({"gate": {"nope": 1}}, "gate: unknown key 'nope'"),
        ({"gate": {"alpha": 2.0}}, "gate config: alpha"),
        ({"breaker": {"close_threshold": 0.6}}, "hysteresis"),
        ({"fuse": {"max_open": 0}}, "max_open"),
        ({"client": {"capacity": 0}}, "client.capacity must be > 0"),
        ({"queue": {"policy": "drop"}}, "policy 'reject' or 'shed'"),
        ({"strategy_params": {"lookback": "long"}}, "strategy_params.lookback must be a float"),
        (
            {
                "account": "other",
                "instruments": {
                    "ETH-USD": {
                        "id": 1,
                        "max_order_qty": 1,
                        "max_notional": 1.0,
                        "price_band": 0.1,
                        "max_position": 1,
                    }
                },
                "accounts": {
                    "strategy": {
                        "id": 1,
                        "max_gross_exposure": 1.0,
                        "max_net_exposure": 1.0,
                        "max_open_orders": 1,
                        "max_orders_per_window": 1,
                    }
                },
            },
            "no risk limits for account 'other'",
        ),
        (
            {
                "instruments": {
                    "BTC": {
                        "id": 1,
                        "max_order_qty": 1,
                        "max_notional": 1.0,
                        "price_band": 0.1,
                        "max_position": 1,
                    }
                },
                "accounts": {
                    "strategy": {
                        "id": 1,
                        "max_gross_exposure": 1.0,
                        "max_net_exposure": 1.0,
                        "max_open_orders": 1,
                        "max_orders_per_window": 1,
                    }
                },
            },
            "no risk limits for instrument 'ETH-USD'",
        ),
        ({"risk": {"notional_decimals": "x"}}, "notional_decimals"),
    ],
)
def test_bad_config_names_the_key(doc: dict[str, object], message: str) -> None:
    with pytest.raises(TradingEngineError, match=message):
        parse_engine_config(doc, SCENARIO, "e.toml")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TradingEngineError, match="cannot read engine config"):
        load_engine_config(tmp_path / "none.toml", SCENARIO)
    bad = tmp_path / "bad.toml"
    bad.write_text("[gate", encoding="utf-8")
    with pytest.raises(TradingEngineError, match="invalid TOML"):
        load_engine_config(bad, SCENARIO)


def test_strategy_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(load_strategy("mean_reversion", CTX), MeanReversion)
    module = types.ModuleType("bot4_test_plugins")

    class Good:
        def __init__(self, ctx: StrategyContext) -> None:
            self.ctx = ctx

        def on_quote(self, quote: Quote, position: float) -> list[object]:
            return []

    class Bad:
        def __init__(self, ctx: StrategyContext) -> None:
            pass

    module.Good = Good  # type: ignore[attr-defined]
    module.Bad = Bad  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bot4_test_plugins", module)
    assert isinstance(load_strategy("bot4_test_plugins:Good", CTX), Good)
    with pytest.raises(TradingEngineError, match="does not implement on_quote"):
        load_strategy("bot4_test_plugins:Bad", CTX)
    with pytest.raises(TradingEngineError, match="has no class Nope"):
        load_strategy("bot4_test_plugins:Nope", CTX)
    with pytest.raises(TradingEngineError, match="cannot import"):
        load_strategy("no_such_module_xyz:Thing", CTX)
    with pytest.raises(TradingEngineError, match="module:Class"):
        load_strategy("nope", CTX)


def test_mean_reversion_logic() -> None:
    with pytest.raises(TradingEngineError, match="need lookback"):
        MeanReversion(StrategyContext((), {}, 0, {"lookback": 2}))
    s = MeanReversion(
        StrategyContext(
            ("X",),
            {},
            0,
            {
                "lookback": 5,
                "every": 1,
                "entry_z": 1.0,
                "exit_z": 0.2,
                "quantity": 1.0,
                "max_position": 1.0,
            },
        )
    )
    q = [Quote("X", p - 0.5, p + 0.5, i) for i, p in enumerate([100, 100, 100, 100, 100])]
    assert [s.on_quote(x, 0.0) for x in q] == [[], [], [], [], []]  # flat: no deviation
    for i, p in enumerate([101, 99, 101, 99]):
        s.on_quote(Quote("X", p - 0.5, p + 0.5, 10 + i), 0.0)
    buy = s.on_quote(Quote("X", 94.5, 95.5, 20), 0.0)
    assert buy and buy[0].side == 1 and buy[0].price == 95.5
    assert s.on_quote(Quote("X", 94.5, 95.5, 21), 1.0) == []  # at max position: no add
    sell = s.on_quote(Quote("Y", 104.5, 105.5, 22), 0.0)  # a new instrument starts a window
    assert sell == []


def test_gate_state_inputs_are_validated() -> None:
    gate = EmotionFreeGate()
    with pytest.raises(TradingEngineError, match="signal outcome must be finite"):
        gate.record_signal_outcome(float("nan"))
    with pytest.raises(TradingEngineError, match="equity must be finite"):
        gate.observe_equity(0.0, 0)
    gate.observe_equity(100.0, 0)
    gate.observe_equity(80.0, 1)
    assert gate.max_drawdown == pytest.approx(0.2) and gate.halted
