"""Synthetic flow generator and the replay CSV loader."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest

from bot4.simulator.errors import SimulatorError
from bot4.simulator.market_data import (
    FlowAction,
    FlowGenerator,
    ReplayKind,
    SyntheticFlow,
    load_replay_csv,
)


def test_flow_is_seeded_and_mixes_actions() -> None:
    flow = SyntheticFlow(arrival_rate=1000.0, volatility=0.01)
    a = FlowGenerator(flow, 1000.0, random.Random(4))
    b = FlowGenerator(flow, 1000.0, random.Random(4))
    xs = [a.next_arrival() for _ in range(2000)]
    assert xs == [b.next_arrival() for _ in range(2000)]
    assert {x.action for x in xs} == set(FlowAction)
    times = [x.time_ns for x in xs]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert 1.5e9 < times[-1] < 2.5e9  # ~2000 arrivals at 1000/s
    assert a.mid_ticks != 1000.0
    for x in xs:
        if x.action is FlowAction.LIMIT:
            assert x.quantity_lots >= 1 and x.price_ticks >= 1


def test_flow_rejects_non_positive_mid() -> None:
    with pytest.raises(SimulatorError, match="initial mid"):
        FlowGenerator(SyntheticFlow(), 0.0, random.Random(0))


HEADER = "timestamp_ns,type,side,price,quantity\n"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "md.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_load_replay_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "0,bid,,99.5,2\n10,ask,,100.5,1.5\n\n20,trade,buy,100.5,0.5\n")
    events = load_replay_csv(path, Decimal("0.5"), Decimal("0.5"))
    assert [(e.time_ns, e.kind, e.side, e.price_ticks, e.quantity_lots) for e in events] == [
        (0, ReplayKind.BID, 1, 199, 4),
        (10, ReplayKind.ASK, -1, 201, 3),
        (20, ReplayKind.TRADE, 1, 201, 1),
    ]


def test_shipped_sample_csv_loads() -> None:
    root = Path(__file__).resolve().parents[3]
    events = load_replay_csv(
        root / "examples" / "sample_quotes_trades.csv", Decimal("0.01"), Decimal("0.01")
    )
    assert len(events) > 10


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x,bid,,1,1\n", "timestamp_ns must be a non-negative integer"),
        ("5,bid,,1,1\n4,bid,,1,1\n", "must not decrease"),
        ("0,quote,,1,1\n", "type must be trade, bid or ask"),
        ("0,trade,up,1,1\n", "side of a trade must be buy or sell"),
        ("0,bid,,abc,1\n", "price must be a decimal number"),
        ("0,bid,,-1,1\n", "price must be > 0"),
        ("0,bid,,0.3,1\n", "price 0.3 is not a multiple of 0.5"),
        ("0,bid,,1,0.25\n", "quantity 0.25 is not a multiple of 0.5"),
        ("0,bid,1\n", "expected 5 columns, got 3"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(SimulatorError, match=message) as info:
        load_replay_csv(path, Decimal("0.5"), Decimal("0.5"))
    assert str(info.value).startswith(f"{path}:")


def test_bad_header_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("time,price\n", encoding="utf-8")
    with pytest.raises(SimulatorError, match="header must be"):
        load_replay_csv(path, Decimal(1), Decimal(1))
    with pytest.raises(SimulatorError, match="cannot read market data CSV"):
        load_replay_csv(tmp_path / "nope.csv", Decimal(1), Decimal(1))
