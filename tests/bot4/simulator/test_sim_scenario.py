"""Scenario TOML loading and validation messages."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot4.simulator.book import SelfTradePrevention
from bot4.simulator.errors import SimulatorError
from bot4.simulator.latency import LatencyKind
from bot4.simulator.outage import OutageKind
from bot4.simulator.scenario import Scenario, load_scenario, parse_scenario

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
INSTRUMENT = {"symbol": "X", "tick_size": "0.5", "lot_size": "1", "initial_mid": "100"}


def minimal(**extra: Any) -> dict[str, Any]:
    return {"instrument": [dict(INSTRUMENT)], **extra}


@pytest.mark.parametrize("name", ["basic.toml", "stress.toml", "replay.toml"])
def test_examples_load(name: str) -> None:
    scenario = load_scenario(EXAMPLES / name)
    assert scenario.instruments
    assert scenario.name == name.removesuffix(".toml")


def test_stress_example_values() -> None:
    s = load_scenario(EXAMPLES / "stress.toml")
    assert s.seed == 7
    assert s.instruments[0].tick_size == Decimal("0.01")
    assert s.latency.submit.kind is LatencyKind.LOGNORMAL
    assert s.latency.ack.samples[0] == 180.0
    assert s.rate_limits["order"].capacity == 10.0
    assert s.self_trade_prevention is SelfTradePrevention.CANCEL_RESTING
    assert s.outages.scheduled[0].kind is OutageKind.REJECT_ALL
    assert s.outages.random_outages is not None
    assert len(s.outages.random_outages.kinds) == 4
    assert s.cancel.late_probability == 0.05
    assert s.fill_model.prob_fill_at_touch == 0.7
    replay = load_scenario(EXAMPLES / "replay.toml").instruments[0].replay
    assert replay is not None and replay.name == "sample_quotes_trades.csv"
    assert s.instrument("ETH-USD") is s.instruments[0]
    assert s.instrument("nope") is None


def test_defaults() -> None:
    s = parse_scenario(minimal())
    assert s.seed == 0 and s.duration_s == 60.0
    assert s.fill_model.partial_fills
    assert s.rate_limits == {}
    assert s.outages.random_outages is None
    random_default = parse_scenario(minimal(outages={"random": {"rate_per_hour": 1}}))
    assert random_default.outages.random_outages is not None
    assert random_default.outages.random_outages.kinds == (OutageKind.REJECT_ALL,)


def test_the_issue_example_message(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(
        '[[instrument]]\nsymbol = "X"\ntick_size = "1"\nlot_size = "1"\n'
        '[latency.submit]\nkind = "normal"\nmean = 5\nsigma = -1\n',
        encoding="utf-8",
    )
    with pytest.raises(SimulatorError) as info:
        load_scenario(path)
    assert str(info.value) == "scenario.toml: latency.submit.sigma must be ≥ 0, got -1"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "instrument needs at least one"),
        ({"instrument": "x"}, "instrument must be an array of tables"),
        ({"instrument": [1]}, r"instrument\[0\] must be a table"),
        ({"instrument": [INSTRUMENT, INSTRUMENT]}, "'X' appears twice"),
        (
            {"instrument": [{**INSTRUMENT, "tick_size": "0"}]},
            r"instrument\[0\].tick_size must be > 0",
        ),
        ({"instrument": [{**INSTRUMENT, "tick_size": "abc"}]}, "must be a decimal"),
        ({"instrument": [{**INSTRUMENT, "tick_size": "inf"}]}, "must be finite"),
        ({"instrument": [{**INSTRUMENT, "tick_size": [1]}]}, "write it as a string"),
        ({"instrument": [{**INSTRUMENT, "lot_size": None}]}, "lot_size is required"),
        (
            {"instrument": [{k: v for k, v in INSTRUMENT.items() if k != "symbol"}]},
            "symbol is required",
        ),
        ({"instrument": [{**INSTRUMENT, "symbol": 5}]}, "symbol must be a non-empty string"),
        ({"instrument": [{**INSTRUMENT, "initial_mid": "100.25"}]}, "multiple of tick_size"),
        ({"instrument": [{**INSTRUMENT, "replay": 3}]}, "replay must be a CSV path"),
        (
            {"instrument": [{**INSTRUMENT, "colour": "red"}]},
            r"instrument\[0\].colour is not a known key",
        ),
        (
            {"instrument": [{**INSTRUMENT, "flow": {"arrival_rate": 0}}]},
            "arrival_rate must be > 0, got 0",
        ),
        (
            {
                "instrument": [
                    {**INSTRUMENT, "flow": {"market_probability": 0.6, "cancel_probability": 0.6}}
                ]
            },
            "plus cancel_probability must be ≤ 1",
        ),
        (minimal(seed=-1), "seed must be ≥ 0, got -1"),
        (minimal(seed=1.5), "seed must be an integer"),
        (minimal(duration_s="long"), "duration_s must be a number, got 'long'"),
        (minimal(duration_s=True), "duration_s must be a number, got true"),
        (
            minimal(fill_model={"prob_fill_at_touch": 1.5}),
            "fill_model.prob_fill_at_touch must be ≤ 1, got 1.5",
        ),
        (minimal(fill_model={"partial_fills": "yes"}), "partial_fills must be true or false"),
        (minimal(cancel={"pull_mean_s": 0}), "cancel.pull_mean_s must be > 0"),
        (minimal(rate_limits={"order": {"capacity": 0}}), "rate_limits.order.capacity must be > 0"),
        (minimal(rate_limits={"orders": {}}), "rate_limits.orders is not a known key"),
        (minimal(latency={"ack": {"kind": "gamma"}}), "latency.ack.kind must be one of"),
        (
            minimal(latency={"ack": {"kind": "empirical", "samples": ["a"]}}),
            "must be a list of numbers",
        ),
        (minimal(latency={"ack": {"kind": "empirical"}}), "latency.ack.samples must list"),
        (minimal(latency={"ack": 3}), "latency.ack must be a table, got 3"),
        (
            minimal(matching={"self_trade_prevention": "maybe"}),
            "must be one of off, cancel_resting",
        ),
        (
            minimal(outages={"scheduled": [{"start_s": 1, "duration_s": 0, "kind": "reject_all"}]}),
            "duration_s must be > 0",
        ),
        (minimal(outages={"scheduled": [{"start_s": 1, "duration_s": 1}]}), "kind is required"),
        (
            minimal(outages={"random": {"kinds": ["meteor"]}}),
            "outages.random.kinds must be a non-empty list",
        ),
        (minimal(outages={"slow_factor": 0.5}), "outages.slow_factor must be ≥ 1"),
        (
            minimal(strategy={"max_offset_ticks": -1}),
            "strategy.max_offset_ticks must be ≥ 0, got -1",
        ),
        (minimal(strategy={"order_rate": 0}), "strategy.order_rate must be > 0"),
        (minimal(typo=1), "typo is not a known key"),
    ],
)
def test_validation_messages(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SimulatorError, match=message) as info:
        parse_scenario(data, source="s.toml")
    assert str(info.value).startswith("s.toml: ")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SimulatorError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1\n", encoding="utf-8")
    with pytest.raises(SimulatorError, match=r"bad\.toml: not valid TOML"):
        load_scenario(bad)


def test_scenario_needs_instruments() -> None:
    with pytest.raises(SimulatorError, match="at least one instrument"):
        Scenario(instruments=())
