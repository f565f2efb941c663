"""``bot4 doctor``: the platform report and the effective settings, so an operator can see
which path will run and with what configuration."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from bot4.infrastructure.platform import PlatformReport, describe_path, report
from bot4.infrastructure.settings import format_settings, load_settings

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add the ``doctor`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="show CPU features, numpy kernels, BLAS, the vector/scalar decision and settings",
        description=(
            "Show what this machine offers the engine, which code path will run, and the "
            "effective configuration (each BOT4_* setting, its value and whether it came "
            "from the environment or the default)."
        ),
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def format_report(rep: PlatformReport) -> str:
    """Human-readable report, one fact per line."""
    lines = [
        f"python       {rep.implementation} {rep.python} ({rep.pointer_bits}-bit, {rep.machine})",
        f"numpy        {rep.numpy}",
        f"cpu baseline {' '.join(rep.cpu.baseline) or '-'}",
        f"cpu dispatch {' '.join(rep.cpu.dispatch) or '-'}",
        f"simd found   {' '.join(rep.cpu.vector_extensions) or 'none'}",
        "kernels      "
        + (", ".join(f"{target}: {n}" for target, n in rep.kernel_targets.items()) or "-"),
    ]
    if rep.blas:
        for lib in rep.blas:
            lines.append(
                f"blas         {lib.internal_api} {lib.version or '?'} "
                f"({lib.architecture or '?'}, {lib.num_threads} threads) {lib.filepath}"
            )
    else:
        lines.append("blas         none loaded")
    for name, value in rep.openblas_env.items():
        lines.append(f"env          {name}={value} (overrides OpenBLAS kernel selection)")
    lines.append(f"path         {rep.path}: {describe_path(rep.cpu, rep.forced_scalar)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the report; warn when the scalar fallback will be used."""
    rep = report()
    settings = load_settings()
    if rep.path == "scalar":
        log.warning(describe_path(rep.cpu, rep.forced_scalar))
    if args.json:
        data = rep.to_json()
        data["settings"] = {s.name: {"value": s.value, "source": s.source} for s in settings}
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(format_report(rep))
        print("\nsettings")
        print(format_settings(settings))
    return 0
