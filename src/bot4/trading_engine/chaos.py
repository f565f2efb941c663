"""Chaos drills: the engine under a partition, a failing component, and a load spike.

Each drill runs the real engine on simulated time against the mean-reverting example
market, injects one fault, and checks pass/fail targets the runbooks promise. Runs are
seeded and deterministic, so a failing drill reproduces exactly.

- ``partition``: the venue is unreachable (connection drop) for ``seconds``: the breaker
  opens; every order ends in exactly one terminal state at the venue and none is sent
  twice; the breaker is closed again within 5 s of the partition's end.
- ``component-failure``: the order client raises on every call for ``seconds``: the loop
  survives (isolation), the breaker opens, the global fuse trips (``max_open = 1``), an
  operator resumes after the fault, and orders flow again.
- ``load-spike``: the strategy emits 10× its signals for ``seconds`` through a router
  that handles a fixed number per step: the queue never exceeds its capacity, every
  signal is routed, shed or still queued (none lost), and p99 queueing delay is reported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot4.infrastructure.breaker import BreakerConfig
from bot4.infrastructure.fuse import FuseConfig
from bot4.simulator.exchange import ExchangeSimulator
from bot4.simulator.orders import TERMINAL, Order
from bot4.simulator.scenario import Scenario, load_scenario
from bot4.trading_engine.config import EngineConfig, QueueConfig, load_engine_config
from bot4.trading_engine.engine import Engine
from bot4.trading_engine.errors import TradingEngineError
from bot4.trading_engine.strategy import Intent, Quote

NS = 1_000_000_000
EXAMPLES_ENV = "BOT4_EXAMPLES_DIR"
DRILLS = ("partition", "component-failure", "load-spike")
RECOVERY_TARGET_S = 5.0
# Fast, bounded breaker recovery for drills: 1 s cooldown, back-off capped at 3 s.
DRILL_BREAKER = BreakerConfig(
    min_samples=10,
    window_calls=20,
    probe_calls=5,
    cooldown=1.0,
    backoff_factor=1.5,
    max_cooldown=3.0,
)


@dataclass(frozen=True)
class Check:
    """One pass/fail target of a drill."""

    name: str
    ok: bool
    detail: str


@dataclass
class DrillResult:
    """A drill's checks and the figures it measured."""

    drill: str
    seed: int
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """All checks passed."""
        return all(c.ok for c in self.checks)

    def check(self, name: str, ok: bool, detail: str) -> None:
        """Record one target."""
        self.checks.append(Check(name, ok, detail))

    def render(self) -> str:
        """The report printed at the end of a drill."""
        lines = [f"drill {self.drill} (seed {self.seed}): {'PASS' if self.passed else 'FAIL'}"]
        lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        lines += [f"  {k} = {v}" for k, v in self.figures.items()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "drill": self.drill,
            "seed": self.seed,
            "passed": self.passed,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "figures": self.figures,
        }


def examples_dir() -> Path:
    """The examples/ of a checkout (the drills' market), or $BOT4_EXAMPLES_DIR."""
    default = Path(__file__).resolve().parents[3] / "examples"
    directory = Path(os.environ.get(EXAMPLES_ENV, default))
    if not (directory / "reverting.toml").is_file():
        raise TradingEngineError(
            f"chaos drills need examples/reverting.toml; not found in {directory} "
            f"(run from a checkout or set {EXAMPLES_ENV})"
        )
    return directory


def _base(seed: int | None) -> tuple[Scenario, EngineConfig]:
    examples = examples_dir()
    scenario = load_scenario(examples / "reverting.toml")
    if seed is not None:
        scenario = replace(scenario, seed=seed)
    config = load_engine_config(examples / "engine.toml", scenario)
    return scenario, replace(config, breaker=DRILL_BREAKER)


def _engine(scenario: Scenario, config: EngineConfig, strategy: _Steady) -> Engine:
    """An engine whose gate is off: drills test the plumbing, not the strategy's edge
    (every pass is still audited as ``gate_disabled``; the gate's rules have their own tests)."""
    venue = ExchangeSimulator(scenario, seed=scenario.seed)
    engine = Engine(scenario, config, venue=venue, strategy=strategy)
    engine.gate.set_enabled(False, "chaos-drill", "drills exercise the order path")
    return engine


class _Steady:
    """A strategy that trades small size every ``every`` quotes (20 quotes/s), alternating sides."""

    def __init__(self, every: int = 4, burst: Callable[[int], int] | None = None) -> None:
        self.every = every
        self.burst = burst or (lambda _t: 1)
        self.n = 0

    def on_quote(self, quote: Quote, position: float) -> list[Intent]:
        self.n += 1
        if self.n % self.every:
            return []
        side = 1 if (self.n // self.every) % 2 else -1
        price = quote.ask if side > 0 else quote.bid
        return [Intent(quote.instrument, side, 0.05, price)] * self.burst(quote.ts_ns)


def _orders_accounted(engine: Engine, result: DrillResult, dropped: set[int]) -> None:
    """Reconcile with the venue: every order sent is terminal there, or provably never
    arrived (dropped in the partition and unknown to the venue); no id used twice."""
    ours = [oid for oid in range(1, engine.next_order_id) if engine.venue.status(oid) is not None]
    terminal = [oid for oid in ours if engine.venue.status(oid) in TERMINAL]
    never_arrived = [oid for oid in dropped if engine.venue.status(oid) is None]
    result.check(
        "no order lost or duplicated",
        len(set(ours)) == len(ours)
        and len(terminal) == len(ours)
        and len(ours) + len(never_arrived) == engine.summary.submitted,
        f"{engine.summary.submitted} sent = {len(terminal)} terminal at the venue + "
        f"{len(never_arrived)} that never arrived (timed out, reconciled as not placed)",
    )


def partition(seed: int | None = None, seconds: float = 5.0) -> DrillResult:
    """The venue's order gateway is unreachable for ``seconds`` from t = 20 s.

    Orders sent into the partition vanish (no ack, no reject): only the response timeout
    tells the engine. Market data keeps flowing on its own feed.
    """
    scenario, config = _base(seed)
    start, end = 20 * NS, 20 * NS + round(seconds * NS)
    engine = _engine(scenario, config, _Steady(every=1))
    real_submit = engine._submit
    dropped: set[int] = set()

    def cut(order: Order, t: int) -> None:
        if start <= t < end:
            dropped.add(order.order_id)
            return
        real_submit(order, t)

    engine.submit_hook = cut
    summary = engine.run(40 * NS)
    result = DrillResult("partition", scenario.seed)
    result.check(
        "breaker opened",
        "open" in summary.breaker_transitions,
        " → ".join(summary.breaker_transitions),
    )
    _orders_accounted(engine, result, dropped)
    closed_at = engine.breaker_closed_at_ns
    recovery = None if closed_at is None or closed_at < end else (closed_at - end) / NS
    result.check(
        f"recovered within {RECOVERY_TARGET_S:g} s of the partition's end",
        recovery is not None
        and recovery <= RECOVERY_TARGET_S
        and engine.breaker.state.value == "closed",
        "never recovered" if recovery is None else f"breaker closed {recovery:.2f} s after",
    )
    result.figures.update(
        partition_s=seconds,
        timeouts=summary.timeouts,
        orders=summary.submitted,
        refused_while_open=summary.breaker_refused,
    )
    return result


def component_failure(seed: int | None = None, seconds: float = 5.0) -> DrillResult:
    """The order client raises for ``seconds`` from t = 15 s; an operator resumes after."""
    scenario, config = _base(seed)
    config = replace(config, fuse=FuseConfig(max_open=1))
    engine = _engine(scenario, config, _Steady(every=1))
    start, end = 15 * NS, 15 * NS + round(seconds * NS)
    real_submit = engine._submit

    def flaky(order: Order, t: int) -> None:
        if start <= t < end:
            raise ConnectionError("order client crashed (injected)")
        real_submit(order, t)

    engine.submit_hook = flaky
    resumed_at: list[int] = []
    sent_at_resume: list[int] = []

    def operator(t: int, _total: int) -> None:
        if t >= end + NS and not resumed_at and engine.fuse.tripped:
            sent_at_resume.append(engine.summary.submitted)
            engine.resume(by="chaos-drill", reason="client restarted after injected failure")
            resumed_at.append(t)

    summary = engine.run(40 * NS, progress=operator)
    result = DrillResult("component-failure", scenario.seed)
    result.check(
        "loop isolated the failure",
        summary.submit_errors > 0,
        f"{summary.submit_errors} client errors absorbed, run completed",
    )
    result.check(
        "breaker opened",
        "open" in summary.breaker_transitions,
        " → ".join(summary.breaker_transitions),
    )
    result.check("global fuse tripped", summary.fuse_tripped, f"halted at {summary.halted_at_s} s")
    flowing = bool(sent_at_resume) and summary.submitted > sent_at_resume[0]
    result.check(
        "orders flow again after the operator's restart",
        flowing,
        f"resumed at {resumed_at[0] / NS:.2f} s, "
        f"{summary.submitted - sent_at_resume[0]} orders since"
        if flowing
        else "no orders after the restart",
    )
    result.figures.update(fault_s=seconds, orders=summary.submitted)
    return result


def load_spike(seed: int | None = None, seconds: float = 10.0, factor: int = 10) -> DrillResult:
    """``factor``× signals for ``seconds`` from t = 15 s through a router of fixed capacity."""
    scenario, config = _base(seed)
    capacity = 64
    config = replace(
        config, queue=QueueConfig(capacity=capacity, policy="shed"), max_routes_per_step=1
    )
    start, end = 15 * NS, 15 * NS + round(seconds * NS)
    strategy = _Steady(every=1, burst=lambda t: factor if start <= t < end else 1)
    engine = _engine(scenario, config, strategy)
    summary = engine.run(40 * NS)
    result = DrillResult("load-spike", scenario.seed)
    routed = sum(summary.gate.values())
    queued = engine.queue.depth
    result.check(
        "backpressure holds",
        summary.max_queue_depth <= capacity and summary.shed > 0,
        f"max depth {summary.max_queue_depth} of {capacity}, {summary.shed} shed",
    )
    result.check(
        "every shed order accounted for",
        summary.signals == routed + summary.shed + queued,
        f"{summary.signals} signals = {routed} routed + {summary.shed} shed + {queued} queued",
    )
    p50, p99 = engine.signal_latency_ns(0.5), engine.signal_latency_ns(0.99)
    result.check(
        "p99 latency reported",
        p99 >= p50,
        f"queueing delay p50 {p50 / 1e6:.1f} ms, p99 {p99 / 1e6:.1f} ms",
    )
    result.figures.update(factor=factor, spike_s=seconds, p50_ms=p50 / 1e6, p99_ms=p99 / 1e6)
    return result


RUNNERS: dict[str, Callable[..., DrillResult]] = {
    "partition": partition,
    "component-failure": component_failure,
    "load-spike": load_spike,
}


def run_drill(name: str, seed: int | None = None, seconds: float | None = None) -> DrillResult:
    """Run one drill by name."""
    runner = RUNNERS.get(name)
    if runner is None:
        raise TradingEngineError(f"unknown drill {name!r}; choose from {', '.join(DRILLS)}")
    return runner(seed) if seconds is None else runner(seed, seconds)


def write_report(result: DrillResult, directory: Path) -> Path:
    """Write ``<dir>/<drill>.json`` atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.drill}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
