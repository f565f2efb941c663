"""The results directory: per-cell records, resumption, and the Parquet/CSV tables.

    DIR/sweep.json               the spec's digest and cell ids (a DIR holds one sweep)
    DIR/cells/ID/audit.jsonl     the cell's audit log, as the run wrote it
    DIR/cells/ID/cell.json       its row and equity curve: written last, it marks the cell done
    DIR/results.parquet, .csv    one row per cell, in cell order, rewritten atomically

Every file is written to a temporary name and renamed, so a killed sweep leaves whole
files or none. On restart a cell counts as done only when its log verifies (signatures
with the sweep's key) and its tree size and root equal the ones in its row; a mismatch
is tampering or corruption and stops the sweep with the command that clears the cell.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot4.sweep.cell import CellResult
from bot4.sweep.spec import SweepError, SweepSpec
from bot4.trading_engine.audit_log import verify
from bot4.trading_engine.checkpoint import NoteVerifier

FORMAT = "bot4-sweep/1"
METRICS = (
    "pnl",
    "max_drawdown",
    "sharpe",
    "orders",
    "fills",
    "gate_blocks",
    "breaker_opens",
    "audit_tree_size",
    "audit_root",
)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json(obj: object) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1, allow_nan=False) + "\n").encode()


class Store:
    """One sweep's results directory."""

    def __init__(self, root: Path, spec: SweepSpec, verifier: NoteVerifier | None) -> None:
        self.root = root
        self.spec = spec
        self.verifier = verifier
        if root.exists() and not root.is_dir():
            raise SweepError(f"{root}: exists and is not a directory")
        manifest = root / "sweep.json"
        expected = {
            "format": FORMAT,
            "name": spec.name,
            "spec": spec.digest,
            "signed": verifier is not None,
            "cells": [c.cell_id for c in spec.cells],
        }
        if manifest.exists():
            try:
                found = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise SweepError(f"{manifest}: unreadable ({exc})") from None
            if not isinstance(found, dict) or found.get("spec") != spec.digest:
                raise SweepError(
                    f"{root}: holds the results of another sweep spec; give a new directory"
                )
            if found.get("signed") != expected["signed"]:
                raise SweepError(
                    f"{root}: was started with{'' if found.get('signed') else 'out'} signed "
                    "audit logs; resume it the same way"
                )
        elif root.exists() and any(root.iterdir()):
            raise SweepError(f"{root}: is not empty and holds no sweep; give a new directory")
        else:
            atomic_write(manifest, _json(expected))

    def cell_dir(self, cell_id: str) -> Path:
        """Where one cell's files live."""
        return self.root / "cells" / cell_id

    def load_done(self, cell_id: str) -> CellResult | None:
        """The finished cell, verified against its audit log; None if it has not finished."""
        where = self.cell_dir(cell_id)
        record = where / "cell.json"
        if not record.exists():
            return None
        remedy = f"remove it to run the cell again: rm -r {where}"
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            row, equity = data["row"], tuple(float(x) for x in data["equity"])
            audit = (where / "audit.jsonl").read_bytes()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SweepError(f"{record}: unreadable cell record ({exc}); {remedy}") from None
        problem = self.check_audit(where / "audit.jsonl", row)
        if problem is not None:
            raise SweepError(f"{where}: {problem}; {remedy}")
        return CellResult(row, equity, audit)

    def check_audit(self, log: Path, row: dict[str, Any]) -> str | None:
        """Why the log does not back the row (None when it does)."""
        verdict = verify([log], self.verifier)
        allowed = {"no-key"} if self.verifier is not None else {"no-key", "unsigned-tail"}
        if not verdict.passes(allowed):
            return f"audit log does not verify ({verdict.lines(allowed)[0]})"
        head = (verdict.records, verdict.root.hex())
        if head != (row.get("audit_tree_size"), row.get("audit_root")):
            return (
                f"audit head {head[0]}/{head[1][:16]} does not match the row's "
                f"{row.get('audit_tree_size')}/{str(row.get('audit_root'))[:16]}"
            )
        return None

    def save(self, result: CellResult) -> None:
        """Store a finished cell: the log, then (verified) the record that marks it done."""
        cell_id = result.row["cell_id"]
        where = self.cell_dir(cell_id)
        atomic_write(where / "audit.jsonl", result.audit)
        problem = self.check_audit(where / "audit.jsonl", result.row)
        if problem is not None:
            raise SweepError(f"cell {cell_id}: the worker's {problem}")
        atomic_write(where / "cell.json", _json({"row": result.row, "equity": result.equity}))

    def write_tables(self, rows: Sequence[dict[str, Any]]) -> None:
        """results.csv and results.parquet, one row per cell in cell order."""
        columns = self.columns()
        ordered = sorted(rows, key=lambda r: int(r["cell"]))
        atomic_write(self.root / "results.csv", to_csv(ordered, columns))
        atomic_write(self.root / "results.parquet", to_parquet(ordered, columns))

    def columns(self) -> list[str]:
        """Column order: identity, parameters, metrics, audit head."""
        params = [f"param.{k}" for k in self.spec.param_names]
        return ["cell", "cell_id", "scenario", "seed", *params, *METRICS]


def _cell_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form: byte-stable, exact
    return str(value)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    """RFC 4180 CSV with ``\\n`` line ends; floats in their shortest exact form."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell_text(row[c]) for c in columns])
    return out.getvalue().encode()


def _pyarrow() -> Any:  # noqa: ANN401 - optional module
    try:  # the sweep extra; imported by name, so its absence is one line, not a traceback
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise SweepError(
            "bot4 sweep needs pyarrow, which is in bot4's 'sweep' extra (not installed)"
        ) from None
    return pa, pq


def to_parquet(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    """The same table as Parquet (no timestamps in it, so the bytes are stable)."""
    pa, pq = _pyarrow()
    table = pa.table({c: [row[c] for row in rows] for c in columns})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def require_pyarrow() -> None:
    """Refuse before anything runs when the Parquet writer is missing."""
    _pyarrow()
