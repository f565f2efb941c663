"""``bot4 …``: a thin argparse front end over the engine's packages.

Each subcommand lives next to the code it drives and exposes ``register(subparsers)``;
this module only collects them, checks the environment's settings before any of them runs
(``bot4.infrastructure.settings``), and turns ``Bot4Error`` into one line and an exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from bot4 import __version__
from bot4.errors import Bot4Error
from bot4.infrastructure import doctor
from bot4.infrastructure.settings import load_settings
from bot4.simulator import cli as simulate_cli
from bot4.sweep import cli as sweep_cli
from bot4.trading_engine import audit_cli, chaos_cli, override_cli, run_cli

Handler = Callable[[argparse.Namespace], int]

# Modules that contribute subcommands, in the order `bot4 --help` lists them.
COMMAND_MODULES: tuple[ModuleType, ...] = (
    doctor,
    simulate_cli,
    run_cli,
    sweep_cli,
    chaos_cli,
    audit_cli,
    override_cli,
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; exposed for tests and for shell completion."""
    parser = argparse.ArgumentParser(
        prog="bot4",
        description="bot4 trading engine: simulator, pre-trade risk, emotion-free gate.",
    )
    parser.add_argument("--version", action="version", version=f"bot4 {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; errors become one line on stderr and a non-zero exit."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="bot4: %(levelname)s: %(message)s", stream=sys.stderr)
    handler: Handler = args.handler
    try:
        load_settings()  # every command refuses a bad setting before doing anything
        return handler(args)
    except Bot4Error as exc:
        print(f"bot4: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bot4: interrupted", file=sys.stderr)
        return 130
