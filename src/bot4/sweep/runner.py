"""Run a sweep: skip verified finished cells, run the rest, store each as it lands.

The results tables are rewritten once at the end from the stored cells, so they are
the same bytes whatever ran the cells, in whatever order, across however many restarts.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot4.infrastructure.secrets.selection import BACKEND_ENV, DIR_ENV, default_secrets_dir
from bot4.sweep import executors
from bot4.sweep.cell import CellResult, CellTask
from bot4.sweep.spec import SweepSpec
from bot4.sweep.store import Store, require_pyarrow
from bot4.trading_engine.checkpoint import NoteSigner


@dataclass(frozen=True)
class Outcome:
    """What a sweep did: cells run now and cells found finished (verified) on disk."""

    ran: int
    skipped: int
    seconds: float


class Progress:
    """``done/total cells, rate, ETA`` on stderr: redrawn in place on a terminal,
    every 5 % otherwise (a log stays short)."""

    def __init__(self, total: int, skipped: int, stream: TextIO = sys.stderr) -> None:
        self.total, self.done, self.skipped = total, skipped, skipped
        self.stream = stream
        self.start = time.monotonic()
        self.tty = stream.isatty()
        self.step = max(1, (total - skipped) // 20)

    def line(self) -> str:
        """The current progress line."""
        ran = self.done - self.skipped
        elapsed = time.monotonic() - self.start
        rate = ran / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = f"{int(left / rate) // 60}:{int(left / rate) % 60:02d}" if rate > 0 else "?"
        bar = "#" * (20 * self.done // max(1, self.total))
        return (
            f"sweep [{bar:<20}] {self.done}/{self.total} cells "
            f"({self.skipped} already done) {rate:.2f} cells/s ETA {eta}"
        )

    def advance(self) -> None:
        """One more cell finished."""
        self.done += 1
        ran = self.done - self.skipped
        if self.tty:
            print("\r" + self.line(), end="", file=self.stream, flush=True)
        elif ran % self.step == 0 or self.done == self.total:
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        """End the in-place line."""
        if self.tty:
            print(file=self.stream, flush=True)


Execute = Callable[[Sequence[CellTask], int], Iterator[CellResult]]


def run_sweep(
    spec: SweepSpec,
    out: Path,
    execute: Execute,
    *,
    workers: int,
    signer: NoteSigner | None,
    same_machine: bool = True,
    stream: TextIO = sys.stderr,
) -> Outcome:
    """Run every cell of ``spec`` not already finished in ``out``; write the tables.

    ``same_machine``: the workers read the audit key from this process's secrets directory
    (otherwise each reads its own, and must hold the same key).
    """
    require_pyarrow()
    verifier = signer.verifier() if signer is not None else None
    secrets_env = None
    if same_machine:
        directory = str(default_secrets_dir(os.environ))
        secrets_env = ((BACKEND_ENV, "file"), (DIR_ENV, directory))
    store = Store(out, spec, verifier)
    rows = {}
    todo: list[CellTask] = []
    for cell in spec.cells:
        done = store.load_done(cell.cell_id)
        if done is not None:
            rows[cell.cell_id] = done.row
            continue
        todo.append(
            CellTask(
                cell,
                spec.scenarios[cell.scenario],
                signer.name if signer is not None else None,
                verifier.vkey() if verifier is not None else None,
                secrets_env,
            )
        )
    progress = Progress(len(spec.cells), len(rows), stream)
    start = time.monotonic()
    try:
        for result in execute(todo, workers):
            store.save(result)
            rows[result.row["cell_id"]] = result.row
            progress.advance()
    finally:
        progress.close()
    store.write_tables(list(rows.values()))
    return Outcome(len(todo), len(spec.cells) - len(todo), time.monotonic() - start)


def executor(name: str, scheduler: str | None) -> Execute:
    """The executor called ``name`` (``--scheduler`` implies dask)."""
    if scheduler is not None or name == "dask":
        return lambda tasks, workers: executors.run_dask(tasks, workers, scheduler)
    if name == "serial":
        return executors.run_serial
    return executors.run_local
