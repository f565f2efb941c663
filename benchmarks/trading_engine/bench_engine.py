"""Benchmark: end-to-end signals/s through the whole engine loop on simulated time.

Runs examples/reverting.toml with examples/engine.toml (strategy emitting on every
other quote) and reports wall time, CPU time, simulated-to-wall speed, signals/s and
orders/s. By default the gate is disabled and there is no audit log (the old headline's
setting); ``--gate --audit`` is the loop as a user runs it and as ``scripts/gate -s bench``
times it: gate on, an Ed25519-signed audit log with the engine's default fsync policy
(``interval``) in a temporary directory, ``--fsync`` to choose another.
Run: python benchmarks/trading_engine/bench_engine.py [--quick] [--gate] [--audit [--fsync P]]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot4.simulator.exchange import ExchangeSimulator
from bot4.simulator.scenario import load_scenario
from bot4.trading_engine.audit_log import FsyncPolicy
from bot4.trading_engine.checkpoint import NoteSigner
from bot4.trading_engine.config import load_engine_config
from bot4.trading_engine.engine import Engine
from bot4.trading_engine.strategy import Intent, Quote, StrategyContext, load_strategy


class Fanout:
    """Wraps the built-in strategy and repeats each quote's evaluation as ``k`` signals."""

    def __init__(self, context: StrategyContext, k: int) -> None:
        self.inner = load_strategy("mean_reversion", context)
        self.k = k

    def on_quote(self, quote: Quote, position: float) -> list[Intent]:
        """Every quote yields k small intents (alternating sides), plus the inner ones."""
        extra = [
            Intent(quote.instrument, 1 if i % 2 else -1, 0.01, quote.ask if i % 2 else quote.bid)
            for i in range(self.k)
        ]
        return self.inner.on_quote(quote, position) + extra


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def main(argv: Sequence[str] | None = None) -> int:
    """Print throughput of one full run (three runs, best of)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run instead of three")
    parser.add_argument("--fanout", type=int, default=20, help="signals per quote (default 20)")
    parser.add_argument("--gate", action="store_true", help="keep the gate on (default: off)")
    parser.add_argument("--audit", action="store_true", help="write a signed audit log")
    parser.add_argument(
        "--fsync",
        choices=[p.value for p in FsyncPolicy],
        default=FsyncPolicy.INTERVAL.value,
        help="the audit log's fsync policy with --audit (default: interval, the engine's)",
    )
    args = parser.parse_args(argv)
    scenario = load_scenario(EXAMPLES / "reverting.toml")
    config = load_engine_config(EXAMPLES / "engine.toml", scenario)
    config = replace(config, strategy_params={**config.strategy_params, "every": 1.0})
    # A fixed benchmark key (not a secret): checkpoints are Ed25519-signed as in production.
    signer = NoteSigner.from_private(
        "bench", Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    )
    best = None
    for _ in range(1 if args.quick else 3):
        lots = {i.symbol: float(i.lot_size) for i in scenario.instruments}
        context = StrategyContext(tuple(lots), lots, scenario.seed, dict(config.strategy_params))
        with tempfile.TemporaryDirectory() as tmp:
            engine = Engine(
                scenario,
                config,
                venue=ExchangeSimulator(scenario),
                strategy=Fanout(context, args.fanout),
                audit_path=Path(tmp) / "audit.jsonl" if args.audit else None,
                audit_signer=signer if args.audit else None,
                audit_fsync=FsyncPolicy(args.fsync),
            )
            if not args.gate:
                engine.gate.set_enabled(False, "bench", "measure the pipeline, not the edge")
            start, cpu = time.perf_counter(), time.process_time()
            summary = engine.run(round(scenario.duration_s * 1e9))
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        if best is None or wall < best[0]:
            best = (wall, cpu, summary)
    assert best is not None  # noqa: S101 - at least one run
    wall, cpu, summary = best
    setting = f"gate {'on' if args.gate else 'off'}, " + (
        f"signed audit log, fsync {args.fsync}" if args.audit else "no audit log"
    )
    print(
        f"engine loop over {summary.simulated_s:.0f} simulated seconds of "
        f"examples/reverting.toml ({setting})"
    )
    speed = summary.simulated_s / wall
    print(f"  wall time             {wall * 1e3:8.1f} ms ({speed:,.0f}× real time)")
    print(f"  CPU time              {cpu * 1e3:8.1f} ms (this process)")
    print(
        f"  signals               {summary.signals:8d}  → {summary.signals / wall:10,.0f} signals/s"
    )
    sent = summary.submitted
    print(f"  orders sent           {sent:8d}  → {sent / wall:10,.0f} orders/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
