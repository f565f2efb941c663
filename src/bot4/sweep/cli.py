"""``bot4 sweep SPEC.toml`` and ``bot4 sweep report DIR``: a thin front end.

Everything a sweep needs is checked before the first cell runs: the spec and every
cell's engine config, the audit key (unless ``--unsigned-audit``), the executor's and
the Parquet writer's libraries, and the results directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot4.sweep import executors
from bot4.sweep.runner import executor, run_sweep
from bot4.sweep.spec import SweepError, load_spec
from bot4.trading_engine.audit_keys import DEFAULT_KEY_ID, KEY_ENV, key_id_from_env, load_signer


def register(subparsers: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add ``sweep``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sweep",
        help="run a grid or random search of engine runs (or: sweep report DIR)",
        description="bot4 sweep SPEC.toml runs every cell of the spec; "
        "bot4 sweep report DIR renders a finished sweep's plots and HTML page.",
    )
    parser.add_argument("target", nargs="+", metavar="SPEC.toml | report DIR")
    parser.add_argument("--out", type=Path, help="results directory (default: sweeps/NAME)")
    parser.add_argument("--executor", choices=executors.EXECUTORS, default="local")
    parser.add_argument(
        "--workers",
        type=int,
        help=f"worker processes (default: one per CPU, here {executors.default_workers()})",
    )
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (implies dask)")
    parser.add_argument(
        "--audit-key",
        help=f"Ed25519 checkpoint key id (default: ${KEY_ENV} or {DEFAULT_KEY_ID}); "
        "every worker needs the same key",
    )
    parser.add_argument(
        "--unsigned-audit", action="store_true", help="cells write unsigned audit logs"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch to a sweep run or a report."""
    target: list[str] = args.target
    if target[0] == "report":
        if len(target) != 2:
            raise SweepError("usage: bot4 sweep report DIR")
        from bot4.sweep.report import render  # noqa: PLC0415 - needs the sweep extra

        page = render(Path(target[1]))
        print(f"wrote {page}")
        return 0
    if len(target) != 1:
        raise SweepError("usage: bot4 sweep SPEC.toml (or: bot4 sweep report DIR)")
    workers = args.workers if args.workers is not None else executors.default_workers()
    if workers < 1:
        raise SweepError("--workers must be ≥ 1")
    spec = load_spec(Path(target[0]))
    signer = None if args.unsigned_audit else load_signer(args.audit_key or key_id_from_env())
    name = "dask" if args.scheduler is not None else args.executor
    executors.require(name, args.scheduler)
    out = args.out if args.out is not None else Path("sweeps") / spec.name
    outcome = run_sweep(
        spec,
        out,
        executor(name, args.scheduler),
        workers=workers,
        signer=signer,
        same_machine=args.scheduler is None,
    )
    print(
        f"{len(spec.cells)} cells ({outcome.ran} run now, {outcome.skipped} already done) "
        f"in {outcome.seconds:.1f}s → {out / 'results.parquet'}, {out / 'results.csv'}"
    )
    return 0
