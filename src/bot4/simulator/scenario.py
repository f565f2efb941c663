"""Scenario files: one TOML file describes a venue, its market and its misbehaviour.

Loading validates every value and names the offending key in the error, e.g.
``scenario.toml: latency.submit.sigma must be ≥ 0, got -1``; unknown keys are errors too,
because a misspelt key silently falling back to a default is the worst kind of scenario bug.
The format is documented in docs/simulator.md and examples/*.toml.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from bot4.simulator.book import SelfTradePrevention
from bot4.simulator.errors import SimulatorError
from bot4.simulator.fill_model import CancelModel, FillModel
from bot4.simulator.latency import LatencyDistribution, LatencyKind, LatencyModel, latency_problem
from bot4.simulator.market_data import SyntheticFlow
from bot4.simulator.outage import (
    OutageKind,
    OutagePattern,
    OutageWindow,
    RandomOutages,
    seconds_to_ns,
)
from bot4.simulator.rate_limit import BucketConfig

ENDPOINTS = ("order", "cancel")
MESSAGE_TYPES = ("submit", "cancel", "ack", "market_data")


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument: tick and lot sizes, fees, and where its market data comes from.

    ``replay`` (a CSV path) replaces synthetic flow when set.
    """

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    maker_fee_bps: Decimal = Decimal(0)
    taker_fee_bps: Decimal = Decimal(0)
    initial_mid: Decimal = Decimal(100)
    flow: SyntheticFlow = field(default_factory=SyntheticFlow)
    replay: Path | None = None


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """The CLI's built-in strategy: random orders around the touch at a Poisson rate."""

    order_rate: float = 50.0
    market_fraction: float = 0.1
    ioc_fraction: float = 0.2
    replace_fraction: float = 0.1
    max_offset_ticks: int = 3
    mean_size_lots: float = 3.0
    cancel_after_s: float = 0.5
    account: str = "strategy"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole simulation setup; build one with :func:`load_scenario` or directly."""

    instruments: tuple[Instrument, ...]
    seed: int = 0
    duration_s: float = 60.0
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.CANCEL_RESTING
    fill_model: FillModel = field(default_factory=FillModel)
    cancel: CancelModel = field(default_factory=CancelModel)
    rate_limits: Mapping[str, BucketConfig] = field(default_factory=dict)
    latency: LatencyModel = field(default_factory=LatencyModel)
    outages: OutagePattern = field(default_factory=OutagePattern)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    name: str = "scenario"

    def __post_init__(self) -> None:
        if not self.instruments:
            raise SimulatorError(f"{self.name}: at least one instrument is required")

    def instrument(self, symbol: str) -> Instrument | None:
        """The instrument called ``symbol``, if the scenario has it."""
        return next((i for i in self.instruments if i.symbol == symbol), None)


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


class _Table:
    """Typed, validated access to one TOML table; remembers which keys were read."""

    def __init__(self, source: str, path: str, data: object) -> None:
        self.source = source
        self.path = path
        if not isinstance(data, dict):
            raise self.error("", f"must be a table, got {_show(data)}")
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str) -> SimulatorError:
        where = self.key(name) if name else self.path or "top level"
        return SimulatorError(f"{self.source}: {where} {problem}")

    def get(self, name: str) -> Any:  # noqa: ANN401 - raw TOML value, typed by the callers
        self.seen.add(name)
        return self.data.get(name)

    def sub(self, name: str) -> _Table:
        value = self.get(name)
        return _Table(self.source, self.key(name), {} if value is None else value)

    def number(
        self,
        name: str,
        default: float,
        *,
        lo: float | None = None,
        hi: float | None = None,
        strict_lo: bool = False,
    ) -> float:
        value = self.get(name)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.error(name, f"must be a number, got {_show(value)}")
        if lo is not None and (value <= lo if strict_lo else value < lo):
            raise self.error(
                name, f"must be {'>' if strict_lo else '≥'} {lo:g}, got {_show(value)}"
            )
        if hi is not None and value > hi:
            raise self.error(name, f"must be ≤ {hi:g}, got {_show(value)}")
        return float(value)

    def probability(self, name: str, default: float) -> float:
        return self.number(name, default, lo=0.0, hi=1.0)

    def integer(self, name: str, default: int, *, lo: int | None = None) -> int:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {_show(value)}")
        if lo is not None and value < lo:
            raise self.error(name, f"must be ≥ {lo}, got {value}")
        return value

    def decimal(self, name: str, default: Decimal | None, *, positive: bool = False) -> Decimal:
        value = self.get(name)
        if value is None:
            if default is None:
                raise self.error(name, "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(name, f"must be a decimal (write it as a string), got {_show(value)}")
        try:
            dec = Decimal(str(value))
        except InvalidOperation:
            raise self.error(name, f"must be a decimal, got {_show(value)}") from None
        if not dec.is_finite():
            raise self.error(name, f"must be finite, got {_show(value)}")
        if positive and dec <= 0:
            raise self.error(name, f"must be > 0, got {_show(value)}")
        return dec

    def string(self, name: str, default: str | None, choices: tuple[str, ...] = ()) -> str:
        value = self.get(name)
        if value is None:
            if default is None:
                raise self.error(name, "is required")
            return default
        if not isinstance(value, str) or not value:
            raise self.error(name, f"must be a non-empty string, got {_show(value)}")
        if choices and value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {_show(value)}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {_show(value)}")
        return value

    def tables(self, name: str) -> list[_Table]:
        value = self.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(name, "must be an array of tables ([[" + self.key(name) + "]])")
        return [_Table(self.source, f"{self.key(name)}[{i}]", v) for i, v in enumerate(value)]

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise self.error(
                unknown[0], "is not a known key; check its spelling in docs/simulator.md"
            )


def _latency(table: _Table) -> LatencyDistribution:
    kind = LatencyKind(table.string("kind", "constant", tuple(k.value for k in LatencyKind)))
    raw = table.get("samples")
    samples: tuple[float, ...] = ()
    if raw is not None:
        if not isinstance(raw, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in raw
        ):
            raise table.error("samples", "must be a list of numbers (microseconds)")
        samples = tuple(float(x) for x in raw)
    value = table.number("value", 0.0)
    mean = table.number("mean", 0.0)
    sigma = table.number("sigma", 0.0)
    mu = table.number("mu", 0.0)
    table.done()
    problem = latency_problem(kind, value, mean, sigma, samples, mu)
    if problem is not None:
        raise SimulatorError(f"{table.source}: {table.path}.{problem}")
    return LatencyDistribution(kind, value, mean, sigma, mu, samples)


def _flow(table: _Table) -> SyntheticFlow:
    d = SyntheticFlow()
    cancel = table.probability("cancel_probability", d.cancel_probability)
    market = table.probability("market_probability", d.market_probability)
    if cancel + market > 1:
        raise table.error(
            "market_probability", f"plus cancel_probability must be ≤ 1, got {cancel + market:g}"
        )
    flow = SyntheticFlow(
        arrival_rate=table.number("arrival_rate", d.arrival_rate, lo=0.0, strict_lo=True),
        drift=table.number("drift", d.drift),
        volatility=table.number("volatility", d.volatility, lo=0.0),
        market_probability=market,
        cancel_probability=cancel,
        max_offset_ticks=table.integer("max_offset_ticks", d.max_offset_ticks, lo=1),
        mean_offset_ticks=table.number(
            "mean_offset_ticks", d.mean_offset_ticks, lo=0.0, strict_lo=True
        ),
        mean_size_lots=table.number("mean_size_lots", d.mean_size_lots, lo=0.0, strict_lo=True),
    )
    table.done()
    return flow


def _instrument(table: _Table, base_dir: Path) -> Instrument:
    symbol = table.string("symbol", None)
    tick = table.decimal("tick_size", None, positive=True)
    lot = table.decimal("lot_size", None, positive=True)
    mid = table.decimal("initial_mid", Decimal(100), positive=True)
    if mid % tick:
        raise table.error("initial_mid", f"must be a multiple of tick_size {tick}, got {mid}")
    replay = table.get("replay")
    if replay is not None and (not isinstance(replay, str) or not replay):
        raise table.error("replay", f"must be a CSV path, got {_show(replay)}")
    inst = Instrument(
        symbol=symbol,
        tick_size=tick,
        lot_size=lot,
        maker_fee_bps=table.decimal("maker_fee_bps", Decimal(0)),
        taker_fee_bps=table.decimal("taker_fee_bps", Decimal(0)),
        initial_mid=mid,
        flow=_flow(table.sub("flow")),
        replay=None if replay is None else base_dir / replay,
    )
    table.done()
    return inst


def _outages(table: _Table) -> OutagePattern:
    kinds = tuple(k.value for k in OutageKind)
    scheduled = []
    for t in table.tables("scheduled"):
        start = t.number("start_s", 0.0, lo=0.0)
        duration = t.number("duration_s", 0.0, lo=0.0, strict_lo=True)
        kind = OutageKind(t.string("kind", None, kinds))
        t.done()
        scheduled.append(OutageWindow(seconds_to_ns(start), seconds_to_ns(start + duration), kind))
    random_outages = None
    if table.get("random") is not None:
        r = table.sub("random")
        raw_kinds = r.get("kinds")
        if raw_kinds is None:
            chosen: tuple[OutageKind, ...] = (OutageKind.REJECT_ALL,)
        elif isinstance(raw_kinds, list) and raw_kinds and all(k in kinds for k in raw_kinds):
            chosen = tuple(OutageKind(k) for k in raw_kinds)
        else:
            raise r.error(
                "kinds", f"must be a non-empty list of {', '.join(kinds)}, got {_show(raw_kinds)}"
            )
        random_outages = RandomOutages(
            rate_per_hour=r.number("rate_per_hour", 0.0, lo=0.0),
            duration=_latency(r.sub("duration")),
            kinds=chosen,
        )
        r.done()
    pattern = OutagePattern(
        scheduled=tuple(scheduled),
        random_outages=random_outages,
        slow_factor=table.number("slow_factor", 10.0, lo=1.0),
    )
    table.done()
    return pattern


def _strategy(table: _Table) -> StrategyConfig:
    d = StrategyConfig()
    cfg = StrategyConfig(
        order_rate=table.number("order_rate", d.order_rate, lo=0.0, strict_lo=True),
        market_fraction=table.probability("market_fraction", d.market_fraction),
        ioc_fraction=table.probability("ioc_fraction", d.ioc_fraction),
        replace_fraction=table.probability("replace_fraction", d.replace_fraction),
        max_offset_ticks=table.integer("max_offset_ticks", d.max_offset_ticks, lo=0),
        mean_size_lots=table.number("mean_size_lots", d.mean_size_lots, lo=0.0, strict_lo=True),
        cancel_after_s=table.number("cancel_after_s", d.cancel_after_s, lo=0.0, strict_lo=True),
        account=table.string("account", d.account),
    )
    table.done()
    return cfg


def parse_scenario(
    data: Mapping[str, Any], source: str = "scenario", base_dir: Path | None = None
) -> Scenario:
    """Validate an already-parsed TOML document; ``source`` prefixes every error message."""
    base = base_dir if base_dir is not None else Path()
    top = _Table(source, "", dict(data))
    instruments = tuple(_instrument(t, base) for t in top.tables("instrument"))
    if not instruments:
        raise top.error("instrument", "needs at least one [[instrument]] table")
    symbols = [i.symbol for i in instruments]
    dup = next((s for s in symbols if symbols.count(s) > 1), None)
    if dup is not None:
        raise top.error("instrument", f"symbols must be unique, {dup!r} appears twice")
    fm = top.sub("fill_model")
    fill = FillModel(
        partial_fills=fm.boolean("partial_fills", True),
        prob_fill_at_touch=fm.probability("prob_fill_at_touch", 1.0),
        prob_slippage=fm.probability("prob_slippage", 0.0),
        slippage_ticks=fm.integer("slippage_ticks", 1, lo=0),
    )
    fm.done()
    cm = top.sub("cancel")
    cancel = CancelModel(
        late_probability=cm.probability("late_probability", 0.0),
        pull_probability=cm.probability("pull_probability", 0.0),
        pull_mean_s=cm.number("pull_mean_s", 1.0, lo=0.0, strict_lo=True),
    )
    cm.done()
    rl = top.sub("rate_limits")
    limits: dict[str, BucketConfig] = {}
    for endpoint in ENDPOINTS:
        if rl.get(endpoint) is not None:
            t = rl.sub(endpoint)
            limits[endpoint] = BucketConfig(
                capacity=t.number("capacity", 0.0, lo=0.0, strict_lo=True),
                rate=t.number("rate", 0.0, lo=0.0),
            )
            t.done()
    rl.done()
    lt = top.sub("latency")
    latency = LatencyModel(**{m: _latency(lt.sub(m)) for m in MESSAGE_TYPES})
    lt.done()
    mt = top.sub("matching")
    stp = SelfTradePrevention(
        mt.string(
            "self_trade_prevention", "cancel_resting", tuple(s.value for s in SelfTradePrevention)
        )
    )
    mt.done()
    scenario = Scenario(
        instruments=instruments,
        seed=top.integer("seed", 0, lo=0),
        duration_s=top.number("duration_s", 60.0, lo=0.0, strict_lo=True),
        self_trade_prevention=stp,
        fill_model=fill,
        cancel=cancel,
        rate_limits=limits,
        latency=latency,
        outages=_outages(top.sub("outages")),
        strategy=_strategy(top.sub("strategy")),
        name=top.string("name", source),
    )
    top.done()
    return scenario


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario TOML file; relative CSV paths resolve next to it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SimulatorError(
            f"{path}: cannot read scenario ({exc.strerror}); check the path"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SimulatorError(f"{path}: not valid TOML: {exc}") from None
    return parse_scenario(data, source=path.name, base_dir=path.parent)
