"""bench_audit's peer, the previous chain-only writer: its laid-out path writes what its
generic path writes, and the gate decides through it (the bench once crashed there)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.trading_engine.bench_audit import DATA, ChainOnly, gate_latencies
from bot4.trading_engine.audit_log import canonical


def test_the_peers_laid_out_record_is_its_generic_record(tmp_path: Path) -> None:
    logs = []
    for name in ("generic", "laid-out"):
        log = ChainOnly(tmp_path / name)
        log._clock = lambda: 1_700_000_000_000_000_000
        for _ in range(3):
            if name == "generic":
                log.append("decision", DATA)
            else:
                log.append_canonical("decision", canonical(DATA).decode())
        log.close()
        logs.append((tmp_path / name).read_bytes())
    assert logs[0] == logs[1]
    assert logs[0].count(b"\n") == 3


def test_the_gate_decides_through_the_peer() -> None:
    assert len(gate_latencies(ChainOnly, 50)) == 50  # every decision passed (the bench asserts)
