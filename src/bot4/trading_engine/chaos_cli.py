"""``bot4 chaos DRILL…``: run chaos drills against the engine on simulated time."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot4.trading_engine.chaos import DRILLS, run_drill, write_report


def register(subparsers: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add ``chaos``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "chaos",
        help="run chaos drills (partition, component-failure, load-spike) with pass/fail targets",
        description="Inject a fault into the engine on simulated time and check its targets.",
    )
    parser.add_argument("drills", nargs="+", choices=[*DRILLS, "all"], help="drills to run")
    parser.add_argument("--seed", type=int, help="scenario seed (default: the example's)")
    parser.add_argument("--seconds", type=float, help="fault duration (default: per drill)")
    parser.add_argument("--report-dir", type=Path, help="write <drill>.json reports here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run each drill, print its report; exit 1 if any failed."""
    names = list(DRILLS) if "all" in args.drills else list(dict.fromkeys(args.drills))
    failed = []
    for name in names:
        result = run_drill(name, args.seed, args.seconds)
        print(result.render())
        if args.report_dir is not None:
            print(f"  report: {write_report(result, args.report_dir)}")
        if not result.passed:
            failed.append(name)
    print(
        f"chaos: {len(names) - len(failed)} of {len(names)} drills passed"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0
