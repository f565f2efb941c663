"""The toolkit's error type: a failed gate or bad input, with a message a user can act on."""

from __future__ import annotations

import argparse
from collections.abc import Callable


class GateError(Exception):
    """Raised for bad input or a failed check; the CLI prints it as one line and exits 1."""

    exit_code: int = 1


def run_command(args: argparse.Namespace, report: Callable[[str], None]) -> int:
    """Run ``args.func(args)``: a GateError is reported as one line and becomes its exit code.

    Every ``python -m ci…`` entry point goes through here, so none prints a traceback for
    a failure the user can act on.
    """
    try:
        return int(args.func(args))
    except GateError as exc:
        report(str(exc))
        return exc.exit_code
