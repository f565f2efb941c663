"""Engine configuration from TOML: the gate, risk limits, breaker, client, queue and strategy.

The exchange side lives in the simulator's scenario file; this file says how *our* side
behaves. Every key is checked and every error names the file and the key. Omitted
sections take defaults; omitted risk limits are generous ones built from the scenario's
instruments, so a scenario alone is enough to run.

    strategy = "mean_reversion"      # or "package.module:ClassName"
    account = "strategy"
    step_ms = 10                     # engine loop step on simulated time
    response_timeout_ms = 2000       # no ack/reject by then → a failure for the breaker
    signal_horizon_ms = 5000         # a signal's outcome = its forward return over this
    initial_equity = 100000.0
    order_type = "ioc"               # or "limit" (rests until filled or cancelled)
    max_routes_per_step = 0          # router capacity per step (0 = unlimited)

    [strategy_params]                # passed to the strategy as floats
    lookback = 50

    [gate]                           # GateConfig fields; cooldown in ms
    min_trades = 20
    cooldown_ms = 60000

    [breaker]                        # BreakerConfig fields; times in seconds
    open_threshold = 0.5
    close_threshold = 0.35

    [client]                         # our own token bucket (same class as the venue's)
    capacity = 20
    rate_per_s = 10

    [queue]
    capacity = 256
    policy = "reject"                # or "shed" (lowest priority first)

    [fuse]
    max_open = 1                     # trip the global fuse when this many breakers are open

    [risk] / [instruments.SYMBOL] / [accounts.NAME]   # bot4.risk limits format
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot4.infrastructure.breaker import BreakerConfig
from bot4.infrastructure.errors import InfrastructureError
from bot4.infrastructure.fuse import FuseConfig
from bot4.risk.config import parse_limits
from bot4.risk.errors import RiskError
from bot4.risk.limits import RiskLimits
from bot4.simulator.scenario import Scenario
from bot4.trading_engine.emotion_gate import GateConfig
from bot4.trading_engine.errors import TradingEngineError

_NS_PER_MS = 1_000_000
_TOP = {
    "strategy": str,
    "account": str,
    "step_ms": float,
    "response_timeout_ms": float,
    "signal_horizon_ms": float,
    "initial_equity": float,
    "order_type": str,
    "max_routes_per_step": int,
}
_SECTIONS = {
    "strategy_params",
    "gate",
    "breaker",
    "client",
    "queue",
    "fuse",
    "risk",
    "instruments",
    "accounts",
}
_GATE = {
    "alpha": float,
    "test": str,
    "min_trades": int,
    "window_trades": int,
    "loss_streak": int,
    "drawdown_step": float,
    "cooldown_ns": int,
    "fomo_sigma": float,
    "fomo_lookback": int,
    "vol_window": int,
    "kelly_fraction": float,
    "kelly_cap": float,
    "win_streak": int,
    "max_size_growth": float,
    "drawdown_limit": float,
}
_BREAKER = {
    "open_threshold": float,
    "close_threshold": float,
    "min_samples": int,
    "window_calls": int,
    "probe_calls": int,
    "cooldown": float,
    "backoff_factor": float,
    "max_cooldown": float,
    "quick_reopen": float,
}


@dataclass(frozen=True)
class ClientConfig:
    """Our side's rate limit: a token bucket of ``capacity`` refilled at ``rate_per_s``."""

    capacity: float = 20.0
    rate_per_s: float = 10.0


@dataclass(frozen=True)
class QueueConfig:
    """The bounded signal queue between the strategy and routing."""

    capacity: int = 256
    policy: str = "reject"


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs besides the scenario."""

    risk: RiskLimits
    instrument_ids: dict[str, int]
    account_id: int
    strategy: str = "mean_reversion"
    account: str = "strategy"
    step_ns: int = 10 * _NS_PER_MS
    response_timeout_ns: int = 2_000 * _NS_PER_MS
    signal_horizon_ns: int = 5_000 * _NS_PER_MS
    initial_equity: float = 100_000.0
    order_type: str = "ioc"
    max_routes_per_step: int = 0  # router capacity per step; 0 = unlimited
    strategy_params: dict[str, float] = field(default_factory=dict)
    gate: GateConfig = field(default_factory=GateConfig)
    breaker: BreakerConfig = field(default_factory=lambda: BreakerConfig(cooldown=5.0))
    client: ClientConfig = field(default_factory=ClientConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    fuse: FuseConfig = field(default_factory=FuseConfig)


def _typed(value: object, kind: type, where: str) -> Any:  # noqa: ANN401 - TOML value, checked
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TradingEngineError(f"{where} must be a {kind.__name__}, got {value!r}")
    if kind is float and not math.isfinite(value):  # type: ignore[arg-type]
        raise TradingEngineError(f"{where} must be finite, got {value!r}")
    return value


def _section(data: Mapping[str, Any], name: str, source: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise TradingEngineError(f"{source}: [{name}] must be a table")
    return value


def _fields_of(table: Mapping[str, Any], spec: Mapping[str, type], where: str) -> dict[str, Any]:
    unknown = sorted(set(table) - set(spec))
    if unknown:
        raise TradingEngineError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(spec)})")
    return {key: _typed(value, spec[key], f"{where}.{key}") for key, value in table.items()}


def default_limits(scenario: Scenario, account: str) -> dict[str, Any]:
    """Generous limits for every instrument of the scenario and the engine's account."""
    instruments = {
        inst.symbol: {
            "id": i + 1,
            "max_order_qty": 1_000_000,
            "max_notional": 1e10,
            "price_band": 0.2,
            "max_position": 10_000_000,
        }
        for i, inst in enumerate(scenario.instruments)
    }
    accounts = {
        account: {
            "id": 1,
            "max_gross_exposure": 1e10,
            "max_net_exposure": 1e10,
            "max_open_orders": 10_000,
            "max_orders_per_window": 1_000,
        }
    }
    return {"instruments": instruments, "accounts": accounts}


def _check_top(top: Mapping[str, Any], source: str) -> None:
    """Range checks of the top-level keys."""
    for key in ("step_ms", "response_timeout_ms", "signal_horizon_ms", "initial_equity"):
        if key in top and top[key] <= 0:
            raise TradingEngineError(f"{source}: {key} must be > 0, got {top[key]}")
    if top.get("max_routes_per_step", 0) < 0:
        raise TradingEngineError(f"{source}: max_routes_per_step must be ≥ 0 (0 = unlimited)")
    if top.get("order_type", "ioc") not in ("ioc", "limit"):
        raise TradingEngineError(f"{source}: order_type must be 'ioc' or 'limit'")


def parse_engine_config(data: Mapping[str, Any], scenario: Scenario, source: str) -> EngineConfig:
    """Validate a parsed engine TOML against the scenario it will run with."""
    unknown = sorted(set(data) - set(_TOP) - _SECTIONS)
    if unknown:
        raise TradingEngineError(f"{source}: unknown key {unknown[0]!r}")
    top = _fields_of({k: v for k, v in data.items() if k in _TOP}, _TOP, source)
    account = top.get("account", "strategy")
    _check_top(top, source)
    risk_doc = {k: data[k] for k in ("risk", "instruments", "accounts") if k in data}
    if not risk_doc.get("instruments") or not risk_doc.get("accounts"):
        risk_doc = {
            **default_limits(scenario, account),
            **({"risk": data["risk"]} if "risk" in data else {}),
        }
    try:
        risk = parse_limits(risk_doc, source=source)
    except RiskError as exc:
        raise TradingEngineError(str(exc)) from None
    symbols = {inst.symbol for inst in scenario.instruments}
    ids = {name: spec["id"] for name, spec in risk_doc["instruments"].items()}
    missing = sorted(symbols - set(ids))
    if missing:
        raise TradingEngineError(f"{source}: no risk limits for instrument {missing[0]!r}")
    if account not in risk_doc["accounts"]:
        raise TradingEngineError(f"{source}: no risk limits for account {account!r}")
    params = {
        k: float(_typed(v, float, f"{source}: strategy_params.{k}"))
        for k, v in _section(data, "strategy_params", source).items()
    }
    gate_table = dict(_section(data, "gate", source))
    if "cooldown_ms" in gate_table:
        gate_table["cooldown_ns"] = round(
            _typed(gate_table.pop("cooldown_ms"), float, f"{source}: gate.cooldown_ms") * _NS_PER_MS
        )
    try:
        gate = GateConfig(**_fields_of(gate_table, _GATE, f"{source}: gate"))
        breaker = BreakerConfig(
            **{
                "cooldown": 5.0,
                **_fields_of(_section(data, "breaker", source), _BREAKER, f"{source}: breaker"),
            }
        )
        fuse_table = _fields_of(
            _section(data, "fuse", source),
            {"max_open": int, "max_state_changes": int, "flap_window": float},
            f"{source}: fuse",
        )
        fuse = FuseConfig(**fuse_table)
    except InfrastructureError as exc:
        raise TradingEngineError(f"{source}: {exc}") from None
    client = ClientConfig(
        **_fields_of(
            _section(data, "client", source),
            {"capacity": float, "rate_per_s": float},
            f"{source}: client",
        )
    )
    if client.capacity <= 0 or client.rate_per_s < 0:
        raise TradingEngineError(f"{source}: client.capacity must be > 0 and rate_per_s ≥ 0")
    queue = QueueConfig(
        **_fields_of(
            _section(data, "queue", source), {"capacity": int, "policy": str}, f"{source}: queue"
        )
    )
    if queue.capacity < 1 or queue.policy not in ("reject", "shed"):
        raise TradingEngineError(
            f"{source}: queue.capacity must be ≥ 1 and policy 'reject' or 'shed'"
        )
    return EngineConfig(
        risk=risk,
        instrument_ids=ids,
        account_id=risk_doc["accounts"][account]["id"],
        strategy=top.get("strategy", "mean_reversion"),
        account=account,
        step_ns=round(top.get("step_ms", 10.0) * _NS_PER_MS),
        response_timeout_ns=round(top.get("response_timeout_ms", 2_000.0) * _NS_PER_MS),
        signal_horizon_ns=round(top.get("signal_horizon_ms", 5_000.0) * _NS_PER_MS),
        initial_equity=top.get("initial_equity", 100_000.0),
        order_type=top.get("order_type", "ioc"),
        max_routes_per_step=top.get("max_routes_per_step", 0),
        strategy_params=params,
        gate=gate,
        breaker=breaker,
        client=client,
        queue=queue,
        fuse=fuse,
    )


def load_engine_config(path: Path | None, scenario: Scenario) -> EngineConfig:
    """Read an engine TOML (or use defaults when ``path`` is None)."""
    if path is None:
        return parse_engine_config({}, scenario, "engine defaults")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TradingEngineError(f"{path}: cannot read engine config ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise TradingEngineError(f"{path}: invalid TOML ({exc})") from None
    return parse_engine_config(data, scenario, str(path))
