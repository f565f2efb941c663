"""``bot4 simulate SCENARIO.toml``: run the built-in strategy against the simulated venue."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from bot4.simulator.errors import SimulatorError
from bot4.simulator.reports import Report
from bot4.simulator.runner import run_session
from bot4.simulator.scenario import load_scenario


def register(subparsers: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add the ``simulate`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run a scenario against the deterministic exchange simulator",
        description=(
            "Run SCENARIO.toml with the built-in strategy and print a summary. "
            "The same scenario and seed always give the same event log."
        ),
    )
    parser.add_argument("scenario", type=Path, metavar="SCENARIO.toml")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument(
        "--orders", type=int, help="orders to send (default: the scenario's duration)"
    )
    parser.add_argument("--out", type=Path, metavar="EVENTS.jsonl", help="write the event log here")
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show progress on stderr even when it is not a terminal",
    )
    parser.set_defaults(handler=run)


def _progress_printer(stream: TextIO) -> Any:  # noqa: ANN401 - a plain callback
    def show(done: int, total: int) -> None:
        stream.write(f"\rsimulate: {done}/{total} orders ({100 * done // total}%)")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show


def run(args: argparse.Namespace) -> int:
    """Load, simulate, write the event log atomically, print the summary."""
    if args.orders is not None and args.orders < 1:
        raise SimulatorError(f"--orders must be ≥ 1, got {args.orders}")
    if args.seed is not None and args.seed < 0:
        raise SimulatorError(f"--seed must be ≥ 0, got {args.seed}")
    scenario = load_scenario(args.scenario)
    show = args.progress or sys.stderr.isatty()
    progress = _progress_printer(sys.stderr) if show else None
    out: Path | None = args.out
    if out is None:
        summary = run_session(scenario, seed=args.seed, orders=args.orders, progress=progress)
    else:
        directory = out.parent if str(out.parent) else Path()
        if not directory.is_dir():
            raise SimulatorError(f"{out}: directory {directory} does not exist; create it first")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:

                def sink(report: Report) -> None:
                    fh.write(report.to_json())
                    fh.write("\n")

                summary = run_session(
                    scenario, seed=args.seed, orders=args.orders, sink=sink, progress=progress
                )
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
    seed = scenario.seed if args.seed is None else args.seed
    print(f"scenario       {scenario.name} (seed {seed})")
    print(summary.format())
    if out is not None:
        print(f"event log      {out}")
    return 0
