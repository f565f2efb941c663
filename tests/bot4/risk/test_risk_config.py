"""Limits from TOML: the happy path and every error naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot4.risk import RiskError, load_limits, parse_limits

CONFIG = """
[risk]
notional_decimals = 2
duplicate_window_ms = 250
rate_window_ms = 1000

[instruments.BTCUSD]
id = 1
max_order_qty = 100
max_notional = 5_000_000.0
price_band = 0.05
max_position = 1_000

[accounts.alpha]
id = 7
max_gross_exposure = 50_000_000
max_net_exposure = 20_000_000.0
max_open_orders = 200
max_orders_per_window = 100
"""


def doc(**changes: Any) -> dict[str, Any]:
    import tomllib

    data: dict[str, Any] = tomllib.loads(CONFIG)
    for dotted, value in changes.items():
        *path, key = dotted.split("__")
        table = data
        for part in path:
            table = table[part]
        if value is None:
            del table[key]
        else:
            table[key] = value
    return data


def test_load_limits(tmp_path: Path) -> None:
    path = tmp_path / "limits.toml"
    path.write_text(CONFIG, encoding="utf-8")
    limits = load_limits(path)
    assert limits.duplicate_window_ns == 250_000_000
    assert limits.rate_window_ns == 1_000_000_000
    assert limits.instruments[0].name == "BTCUSD"
    assert limits.accounts[0].max_gross_exposure == 50_000_000.0
    assert limits.tables.max_gross_minor.tolist() == [5_000_000_000, 0]


def test_defaults_without_risk_table() -> None:
    data = doc()
    del data["risk"]
    limits = parse_limits(data)
    assert (limits.notional_decimals, limits.duplicate_window_ns) == (2, 500_000_000)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RiskError, match="cannot read risk config"):
        load_limits(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk\n", encoding="utf-8")
    with pytest.raises(RiskError, match="not valid TOML"):
        load_limits(bad)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**doc(), "extra": 1}, "unknown top-level key 'extra'"),
        (doc(instruments=None), r"missing table \[instruments\]"),
        (doc(risk=3), "risk must be a table"),
        (doc(instruments__BTCUSD=1), "instruments.BTCUSD must be a table"),
        (doc(instruments__BTCUSD__max_qty=1), "unknown key instruments.BTCUSD.max_qty"),
        (doc(accounts__alpha__id=None), "missing key accounts.alpha.id"),
        (
            doc(accounts__alpha__max_open_orders=1.5),
            "accounts.alpha.max_open_orders must be an integer",
        ),
        (doc(accounts__alpha__max_net_exposure="1"), "max_net_exposure must be a number"),
        (doc(instruments__BTCUSD__price_band=True), "price_band must be a number"),
        (doc(instruments__BTCUSD__max_notional=float("nan")), "max_notional must be finite"),
        (doc(risk__notional_decimals=9), "notional_decimals must be in 0..6"),
        (doc(risk__rate_window_ms=0), "rate_window_ns must be > 0"),
        (doc(instruments__BTCUSD__id=-1), "id must be in"),
        (doc(instruments__BTCUSD__max_order_qty=-1), "max_order_qty must be in"),
        (doc(instruments__BTCUSD__max_notional=1e300), "max_notional must be >= 0 and at most"),
        (doc(instruments__BTCUSD__price_band=2.0), "price_band must be a fraction"),
        (doc(instruments__BTCUSD__max_position=-5), "max_position must be in"),
        (doc(accounts__alpha__max_gross_exposure=-1.0), "max_gross_exposure must be finite"),
        (doc(accounts__alpha__max_orders_per_window=-1), "max_orders_per_window must be in"),
    ],
)
def test_invalid_documents(data: dict[str, Any], message: str) -> None:
    with pytest.raises(RiskError, match=message) as info:
        parse_limits(data, source="limits.toml")
    assert str(info.value).startswith("limits.toml: ")


def test_duplicate_ids() -> None:
    data = doc()
    data["accounts"]["beta"] = dict(data["accounts"]["alpha"])
    with pytest.raises(RiskError, match="id 7 is used twice"):
        parse_limits(data)
