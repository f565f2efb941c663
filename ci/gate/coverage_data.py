"""Coverage measured by more than one session, combined only when it measured these sources.

`tests` (the fast suite) and `e2e` (the slow end-to-end tests) each write a coverage data
file; `coverage` combines them and applies the floors. A data file measured on other
sources would combine without complaint and report lines that no longer exist, so each
run stamps its data file with a digest of the measured sources, and the combination is
refused unless every part is present and its stamp matches the sources as they are now.

    python -m ci.gate.coverage_data stamp reports/coverage-data/tests
    python -m ci.gate.coverage_data check reports/coverage-data/tests reports/coverage-data/e2e
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

from ci.compat import tomllib
from ci.errors import GateError

STAMP_SUFFIX = ".sources"


def measured_sources(root: Path) -> list[str]:
    """The directories coverage measures ([tool.coverage.run] source in pyproject.toml)."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return [str(s) for s in config["tool"]["coverage"]["run"]["source"]]


def sources_digest(root: Path) -> str:
    """sha256 over every measured .py file's relative path and bytes (order-independent
    of the file system, so any clone of the same sources gives the same digest)."""
    digest = hashlib.sha256()
    files = sorted(
        path.relative_to(root).as_posix()
        for source in measured_sources(root)
        for path in (root / source).rglob("*.py")
    )
    for name in files:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def _stamp_path(data: Path) -> Path:
    return data.with_name(data.name + STAMP_SUFFIX)


def stamp(root: Path, data: Path) -> None:
    """Record which sources `data` measured (after its run has written it)."""
    if not data.is_file():
        raise GateError(f"{data}: no coverage data to stamp (did the run write it?)")
    _stamp_path(data).write_text(sources_digest(root) + "\n", encoding="utf-8")


def check(root: Path, parts: Sequence[tuple[Path, str]]) -> None:
    """Refuse unless every (data file, session) exists and measured the current sources."""
    now = sources_digest(root)
    for data, session in parts:
        remedy = f"run scripts/gate -s {session}"
        stamp_file = _stamp_path(data)
        if not data.is_file() or not stamp_file.is_file():
            raise GateError(f"{data}: no coverage data from `{session}`; {remedy}")
        if stamp_file.read_text(encoding="utf-8").strip() != now:
            raise GateError(
                f"{data}: measured other sources than these (changed since `{session}` "
                f"ran); {remedy}"
            )


def _part(value: str) -> tuple[Path, str]:
    data, sep, session = value.partition("=")
    if not sep or not data or not session:
        raise argparse.ArgumentTypeError(f"expected DATA=SESSION, got {value!r}")
    return Path(data), session


def main(argv: Sequence[str] | None = None) -> int:
    """`stamp DATA` after a run; `check DATA=SESSION …` before combining."""
    parser = argparse.ArgumentParser(prog="python -m ci.gate.coverage_data")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("stamp").add_argument("data", type=Path)
    commands.add_parser("check").add_argument("parts", type=_part, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "stamp":
            stamp(args.root, args.data)
        else:
            check(args.root, args.parts)
    except GateError as error:
        print(f"coverage: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
