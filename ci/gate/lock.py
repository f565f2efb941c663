"""``python -m ci.gate.lock``: regenerate locks/*.txt and toolchain.lock in the runner, and
ci/pyproject.toml's dependencies from the ``toolkit`` group (``toolkit_pyproject``).

The ``lock`` session runs in the runner's venv (nox, uv and their dependencies only),
so this entry point imports nothing beyond the standard library, ``packaging`` and
ci.gate.toolchain — not ``ci.cli``, whose other commands need the toolkit's own
dependencies (PyYAML, cyclonedx, …) that only the session venvs have.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ci.errors import run_command
from ci.gate import debian, toolchain, toolkit_pyproject


def lock(args: argparse.Namespace) -> int:
    """Re-lock (``--root``, ``--uv``, ``--upgrade``), then generate ci/pyproject.toml's
    dependencies; shared by ``python -m ci lock``."""
    root = Path(args.root).resolve()
    data = toolchain.read_pyproject(root / "pyproject.toml")
    tc = toolchain.compile_locks(
        root,
        toolchain.find_uv(args.uv),
        toolchain.python_pin(data),
        toolchain.platform_pin(data),
        upgrade=args.upgrade,
        log=lambda msg: print(f"lock: {msg}", file=sys.stderr, flush=True),
    )
    for entry in tc.locks:
        print(f"{entry.path}  sha256:{entry.sha256}")
    print(f"wrote {toolchain.LOCK_FILE}")
    if toolkit_pyproject.sync(root):
        print(f"wrote {toolkit_pyproject.PATH} (dependencies from the toolkit group)")
    debian.write_lock(root, lambda msg: print(f"lock: {msg}", file=sys.stderr, flush=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and re-lock; a failure is one line and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m ci.gate.lock", description=__doc__)
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    parser.add_argument("--uv", help="the uv to compile with (default: $UV, PATH, beside python)")
    parser.add_argument("--upgrade", action="store_true", help="move every pin to the newest")
    parser.set_defaults(func=lock)
    args = parser.parse_args(argv)
    return run_command(args, lambda msg: print(f"lock: error: {msg}", file=sys.stderr))


if __name__ == "__main__":
    raise SystemExit(main())
