"""One cell = one deterministic engine run, self-contained so any worker can run it.

A task carries everything the run needs as values (the validated scenario, its replay
files' bytes, the engine document): a worker on another machine needs no shared files.
The run writes its audit log in a private temporary directory; the worker returns the
log's bytes with the row, and the driver — not the worker — stores and verifies them.
Same task → same bytes on any worker: simulated time only, seeds only, Ed25519
signatures (deterministic per RFC 8032).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot4.simulator.exchange import ExchangeSimulator
from bot4.sweep.spec import Cell, ScenarioInput, SweepError
from bot4.trading_engine.audit_keys import load_signer
from bot4.trading_engine.audit_log import FsyncPolicy, verify
from bot4.trading_engine.config import parse_engine_config
from bot4.trading_engine.emotion_gate import ALLOWING
from bot4.trading_engine.engine import Engine, RunSummary

_NS_PER_S = 1_000_000_000
SAMPLE_NS = _NS_PER_S  # the equity curve (and the Sharpe ratio) is sampled each second


@dataclass(frozen=True)
class CellTask:
    """What a worker needs: the cell, its scenario, and how to sign its audit log."""

    cell: Cell
    scenario: ScenarioInput
    key_id: str | None  # None: unsigned audit log
    vkey: str | None  # the verifier key the driver expects the worker's key to match
    # Where the key is, for workers on the driver's machine (a forkserver or a pool keeps the
    # environment it started with); None: the worker's own environment (a remote cluster).
    secrets_env: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class CellResult:
    """A finished cell: its row, equity curve and audit log bytes."""

    row: dict[str, Any]
    equity: tuple[float, ...]
    audit: bytes


def sharpe(equity: list[float]) -> float:
    """Mean over standard deviation of the per-second returns (not annualised; 0 if flat)."""
    returns = [b / a - 1.0 for a, b in itertools.pairwise(equity) if a > 0]
    if len(returns) < 2:
        return 0.0
    mean = math.fsum(returns) / len(returns)
    var = math.fsum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return 0.0 if var <= 0.0 else mean / math.sqrt(var)


def row_of(cell: Cell, summary: RunSummary, equity: list[float]) -> dict[str, Any]:
    """The results row of one cell (its audit head is filled in from the log)."""
    row: dict[str, Any] = {
        "cell": cell.index,
        "cell_id": cell.cell_id,
        "scenario": cell.scenario,
        "seed": cell.seed,
    }
    row.update({f"param.{k}": v for k, v in cell.params})
    row.update(
        {
            "pnl": summary.equity_end - summary.equity_start,
            "max_drawdown": summary.max_drawdown,
            "sharpe": sharpe(equity),
            "orders": summary.submitted,
            "fills": summary.fills,
            "gate_blocks": sum(n for r, n in summary.gate.items() if r not in ALLOWING),
            "breaker_opens": summary.breaker_transitions.count("open"),
        }
    )
    return row


def run_cell(task: CellTask) -> CellResult:
    """Run the cell's engine on simulated time and return its row, curve and audit log.

    The engine's warnings (breaker transitions, halts) stay out of the sweep's stderr:
    they are in the cell's row and audit log, and hundreds of cells would bury the
    progress line.
    """
    quiet = logging.getLogger("bot4")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return _run(task)
    finally:
        quiet.setLevel(level)


def _run(task: CellTask) -> CellResult:
    cell, inp = task.cell, task.scenario
    signer = None
    if task.key_id is not None:
        environ = dict(task.secrets_env) if task.secrets_env is not None else None
        signer = load_signer(task.key_id, environ)
        if signer.verifier().vkey() != task.vkey:
            raise SweepError(
                f"this worker's audit key {task.key_id!r} is not the key the sweep was started "
                "with: give every worker the same key"
            )
    with tempfile.TemporaryDirectory(prefix="bot4-cell-") as tmp:
        work = Path(tmp)
        replays = {}
        for i, (symbol, data) in enumerate(inp.replays):
            target = work / f"replay{i}.csv"
            target.write_bytes(data)
            replays[symbol] = target
        scenario = dataclasses.replace(
            inp.scenario,
            instruments=tuple(
                dataclasses.replace(inst, replay=replays[inst.symbol])
                if inst.symbol in replays
                else inst
                for inst in inp.scenario.instruments
            ),
        )
        config = parse_engine_config(dict(cell.engine_doc), scenario, f"cell {cell.cell_id}")
        log_path = work / "audit.jsonl"
        engine = Engine(
            scenario,
            config,
            venue=ExchangeSimulator(scenario, seed=cell.seed),
            seed=cell.seed,
            audit_path=log_path,
            audit_fsync=FsyncPolicy.NEVER,
            audit_signer=signer,
        )
        equity = [engine.equity()]
        next_sample = SAMPLE_NS

        def sample(t: int, _end: int) -> None:
            nonlocal next_sample
            if t >= next_sample:
                equity.append(engine.equity())
                next_sample += SAMPLE_NS

        try:
            summary = engine.run(round(cell.duration_s * _NS_PER_S), progress=sample)
        finally:
            engine.close()
        equity.append(summary.equity_end)
        audit = log_path.read_bytes()
        row = row_of(cell, summary, equity)
        verdict = verify([log_path])
        row["audit_tree_size"] = verdict.records
        row["audit_root"] = verdict.root.hex()
    return CellResult(row, tuple(equity), audit)
