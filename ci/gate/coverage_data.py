"""Coverage measured by more than one session, combined only when it measured these sources.

`tests` (the fast suite) and `e2e` (the slow end-to-end tests) each write a coverage data
file; `coverage` combines them and applies the floors. A data file measured on other
sources would combine without complaint and report lines that no longer exist, so each
run stamps its data file with a digest of the measured sources and of the data file itself,
and the combination is refused unless every part is present, is the data its stamp was made
for (not rewritten by a later run that never reached its stamp), and measured the sources as
they are now.

    python -m ci.gate.coverage_data stamp reports/coverage-data/tests
    python -m ci.gate.coverage_data check reports/coverage-data/tests=tests \
        reports/coverage-data/e2e=e2e
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
    path = root / "pyproject.toml"
    try:
        sources = tomllib.loads(path.read_text(encoding="utf-8"))["tool"]["coverage"]["run"]
        return [str(s) for s in sources["source"]]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise GateError(f"{path}: no [tool.coverage.run] source list ({exc})") from None


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
        body = (root / name).read_bytes()
        digest.update(b"%b\0%d\0%b" % (name.encode(), len(body), body))
    return digest.hexdigest()


def _stamp_text(root: Path, data: Path) -> str:
    """The measured sources' digest and the data file's own sha256: a data file rewritten
    after its stamp (a later run that failed or was stopped first) no longer matches."""
    return f"{sources_digest(root)} {hashlib.sha256(data.read_bytes()).hexdigest()}"


def _stamp_path(data: Path) -> Path:
    return data.with_name(data.name + STAMP_SUFFIX)


def stamp(root: Path, data: Path) -> None:
    """Record which sources `data` measured, and `data` itself (after its run wrote it)."""
    if not data.is_file():
        raise GateError(f"{data}: no coverage data to stamp (did the run write it?)")
    _stamp_path(data).write_text(_stamp_text(root, data) + "\n", encoding="utf-8")


def check(root: Path, parts: Sequence[tuple[Path, str]]) -> None:
    """Refuse unless every (data file, session) exists and measured the current sources."""
    now = sources_digest(root)
    for data, session in parts:
        remedy = f"run scripts/gate -s {session}"
        stamp_file = _stamp_path(data)
        if not data.is_file() or not stamp_file.is_file():
            raise GateError(f"{data}: no coverage data from `{session}`; {remedy}")
        stamped = stamp_file.read_bytes().decode("utf-8", errors="replace").split()
        if stamped[:1] != [now]:
            raise GateError(
                f"{data}: measured other sources than these (changed since `{session}` "
                f"ran); {remedy}"
            )
        if stamped[1:] != [hashlib.sha256(data.read_bytes()).hexdigest()]:
            raise GateError(
                f"{data}: not the data `{session}` stamped (rewritten since, by a run that "
                f"did not finish?); {remedy}"
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
    try:  # OSError: an unreadable data file or stamp, an unwritable stamp
        if args.command == "stamp":
            stamp(args.root, args.data)
        else:
            check(args.root, args.parts)
    except GateError as error:
        print(f"coverage: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"coverage: {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
