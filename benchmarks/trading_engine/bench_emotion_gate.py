"""Benchmark: EmotionFreeGate decision latency (median / p99), with and without the audit log.

Each decision is timed individually with perf_counter_ns over a warm gate that has a
trade history (so every rule runs to the end and the order passes). The audit-log
variant appends a hash-chained record per decision (fsync policy "never", as in a
simulation; production's "always" adds the disk's fsync latency).
Run: python benchmarks/trading_engine/bench_emotion_gate.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from bot4.trading_engine.audit_log import AuditLog, FsyncPolicy
from bot4.trading_engine.emotion_gate import (
    EmotionFreeGate,
    GateConfig,
    GateMetrics,
    Reason,
    Signal,
)


def warm_gate(audit: AuditLog | None) -> EmotionFreeGate:
    """A gate with a clear edge in its history, so decisions pass every rule."""
    gate = EmotionFreeGate(GateConfig(), audit_log=audit, metrics=GateMetrics(CollectorRegistry()))
    equity = 1_000_000.0
    for i in range(60):
        pnl = -0.001 if i % 3 == 2 else 0.002
        equity *= 1 + pnl
        gate.record_trade(pnl, equity, 1.0, "BTC", i)
    for i in range(120):
        gate.observe_price("BTC", 100.0 * (1.001 if i % 2 else 0.999))
    return gate


def measure(gate: EmotionFreeGate, n: int) -> list[int]:
    """Nanoseconds per decide() call."""
    signals = [Signal(f"o{i}", "BTC", 1, 1.0, 100.0, 10**15 + i) for i in range(n)]
    out = []
    clock = time.perf_counter_ns
    for s in signals:
        start = clock()
        d = gate.decide(s)
        out.append(clock() - start)
        assert d.reason is Reason.PASSED  # noqa: S101 - the benchmark measures the full path
    return out


def pct(samples: list[int], q: float) -> float:
    """The q-quantile in nanoseconds."""
    ordered = sorted(samples)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def main(argv: Sequence[str] | None = None) -> int:
    """Print median and p99 per variant; goal ≤ 5 µs median."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10k decisions instead of 100k")
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else 100_000
    print(f"gate decision latency over {n} decisions (goal: median ≤ 5 µs)")
    base = measure(warm_gate(None), n)
    print(
        f"  rules + metrics           median {statistics.median(base):7.0f} ns"
        f"   p99 {pct(base, 0.99):7.0f} ns"
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = AuditLog(Path(tmp) / "audit.jsonl", fsync=FsyncPolicy.NEVER)
        audited = measure(warm_gate(log), n)
        log.close()
    print(
        f"  rules + metrics + audit   median {statistics.median(audited):7.0f} ns"
        f"   p99 {pct(audited, 0.99):7.0f} ns"
    )
    share = 1 - statistics.median(base) / statistics.median(audited)
    print(f"  audit log share of median {share:6.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
