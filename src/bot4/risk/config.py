"""Risk limits from TOML: every key checked, every error names the key and the file.

Format (all sections required except ``[risk]``; windows in milliseconds)::

    [risk]
    notional_decimals = 2        # exposure is counted in 1/100 currency units
    duplicate_window_ms = 500    # same account/instrument/side/qty/price within this → duplicate
    rate_window_ms = 1000        # max_orders_per_window is counted over this sliding window

    [instruments.BTCUSD]
    id = 1
    max_order_qty = 100          # lots
    max_notional = 5_000_000.0   # qty × price, currency units
    price_band = 0.05            # |price − reference| ≤ 5 % of reference
    max_position = 1_000         # worst-case |position| incl. open orders, lots

    [accounts.alpha]
    id = 7
    max_gross_exposure = 50_000_000.0
    max_net_exposure = 20_000_000.0
    max_open_orders = 200
    max_orders_per_window = 100
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot4.risk.errors import RiskError
from bot4.risk.limits import AccountLimits, InstrumentLimits, RiskLimits

_RISK_KEYS = {"notional_decimals": int, "duplicate_window_ms": float, "rate_window_ms": float}
_INSTRUMENT_KEYS = {
    "id": int,
    "max_order_qty": int,
    "max_notional": float,
    "price_band": float,
    "max_position": int,
}
_ACCOUNT_KEYS = {
    "id": int,
    "max_gross_exposure": float,
    "max_net_exposure": float,
    "max_open_orders": int,
    "max_orders_per_window": int,
}
_DEFAULTS = {"notional_decimals": 2, "duplicate_window_ms": 500, "rate_window_ms": 1000}


def load_limits(path: str | Path) -> RiskLimits:
    """Read and validate a limits file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RiskError(f"cannot read risk config {file}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RiskError(f"risk config {file} is not valid TOML: {exc}") from exc
    return parse_limits(data, source=str(file))


def parse_limits(data: Mapping[str, Any], source: str = "risk config") -> RiskLimits:
    """Validate a parsed TOML document and build :class:`RiskLimits`."""
    unknown = sorted(set(data) - {"risk", "instruments", "accounts"})
    if unknown:
        raise RiskError(
            f"{source}: unknown top-level key {unknown[0]!r} (expected risk, instruments, accounts)"
        )
    risk = _table(data, "risk", source, required=False)
    settings = {**_DEFAULTS, **_fields(risk, _RISK_KEYS, "risk", source, required=False)}
    instruments = _table(data, "instruments", source, required=True)
    accounts = _table(data, "accounts", source, required=True)
    try:
        return RiskLimits(
            instruments=tuple(
                InstrumentLimits(
                    name=name,
                    **_fields(
                        _table(instruments, name, source, prefix="instruments."),
                        _INSTRUMENT_KEYS,
                        f"instruments.{name}",
                        source,
                    ),
                )
                for name in instruments
            ),
            accounts=tuple(
                AccountLimits(
                    name=name,
                    **_fields(
                        _table(accounts, name, source, prefix="accounts."),
                        _ACCOUNT_KEYS,
                        f"accounts.{name}",
                        source,
                    ),
                )
                for name in accounts
            ),
            notional_decimals=int(settings["notional_decimals"]),
            duplicate_window_ns=round(settings["duplicate_window_ms"] * 1_000_000),
            rate_window_ns=round(settings["rate_window_ms"] * 1_000_000),
        )
    except RiskError as exc:
        raise RiskError(f"{source}: {exc}") from exc


def _table(
    data: Mapping[str, Any], key: str, source: str, *, required: bool = True, prefix: str = ""
) -> Mapping[str, Any]:
    if key not in data:
        if required:
            raise RiskError(f"{source}: missing table [{prefix}{key}]")
        return {}
    value = data[key]
    if not isinstance(value, Mapping):
        raise RiskError(f"{source}: {prefix}{key} must be a table, got {type(value).__name__}")
    return value


def _fields(
    table: Mapping[str, Any],
    spec: Mapping[str, type],
    where: str,
    source: str,
    *,
    required: bool = True,
) -> dict[str, Any]:
    unknown = sorted(set(table) - set(spec))
    if unknown:
        raise RiskError(
            f"{source}: unknown key {where}.{unknown[0]} (expected one of {', '.join(spec)})"
        )
    out: dict[str, Any] = {}
    for key, kind in spec.items():
        if key not in table:
            if required:
                raise RiskError(f"{source}: missing key {where}.{key}")
            continue
        value = table[key]
        ok = isinstance(value, int) if kind is int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok:
            expected = "an integer" if kind is int else "a number"
            raise RiskError(f"{source}: {where}.{key} must be {expected}, got {value!r}")
        if kind is float and not math.isfinite(value):
            raise RiskError(f"{source}: {where}.{key} must be finite, got {value!r}")
        out[key] = value if kind is int else float(value)
    return out
