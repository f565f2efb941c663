"""The coverage gate: line AND branch floors, overall and per critical package.

coverage.py's ``fail_under`` is one combined number; what bot4 promises is two
(line ≥ 95 %, branch ≥ 90 %), held separately for the whole tree and for each
critical package, so a well-tested package cannot hide an untested one. This reads
coverage's JSON report, prints a table and names every package that falls short.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ci.compat import tomllib
from ci.errors import GateError

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,(?P<count>\d+))? @@")
_SOURCE_ROOTS = ("src/",)


@dataclass(frozen=True)
class Policy:
    """Floors in percent and the packages held to them individually."""

    line: float
    branch: float
    critical: tuple[str, ...]


@dataclass(frozen=True)
class FileCoverage:
    """The counts coverage.py reports for one file."""

    path: str
    module: str
    statements: int
    covered_lines: int
    branches: int
    covered_branches: int
    executed: frozenset[int]
    missing: frozenset[int]


@dataclass(frozen=True)
class Row:
    """One line of the gate's table."""

    name: str
    files: int
    statements: int
    covered_lines: int
    branches: int
    covered_branches: int

    @property
    def line_pct(self) -> float:
        """Line coverage in percent (100 when there is nothing to cover)."""
        return 100.0 * self.covered_lines / self.statements if self.statements else 100.0

    @property
    def branch_pct(self) -> float:
        """Branch coverage in percent (100 when there are no branches)."""
        return 100.0 * self.covered_branches / self.branches if self.branches else 100.0

    def shortfalls(self, policy: Policy) -> list[str]:
        """What this row misses, e.g. ``line 93.10% < 95%``; empty when it passes."""
        out = []
        if self.files == 0:
            out.append("no files measured (is the package imported by any test?)")
            return out
        if round(self.line_pct, 2) < policy.line:
            out.append(f"line {self.line_pct:.2f}% < {policy.line:g}%")
        if round(self.branch_pct, 2) < policy.branch:
            out.append(f"branch {self.branch_pct:.2f}% < {policy.branch:g}%")
        return out


def load_policy(pyproject: Path) -> Policy:
    """Read ``[tool.bot4.coverage]``; every malformed value is a one-line error."""
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(f"{pyproject}: not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise GateError(f"{pyproject}: invalid TOML ({exc})") from None
    section = data.get("tool", {}).get("bot4", {}).get("coverage")
    if not isinstance(section, dict):
        raise GateError(f"{pyproject}: missing [tool.bot4.coverage] table")
    floors = {}
    for key in ("line", "branch"):
        value = section.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 100:
            raise GateError(f"{pyproject}: tool.bot4.coverage.{key} must be 0–100, got {value!r}")
        floors[key] = float(value)
    critical = section.get("critical", [])
    if not isinstance(critical, list) or not all(isinstance(c, str) and c for c in critical):
        raise GateError(f"{pyproject}: tool.bot4.coverage.critical must be a list of package names")
    return Policy(floors["line"], floors["branch"], tuple(critical))


def module_of(path: str) -> str:
    """``src/bot4/risk/var.py`` → ``bot4.risk.var``; ``ci/files.py`` → ``ci.files``."""
    posix = PurePosixPath(path.replace("\\", "/"))
    text = str(posix)
    for root in _SOURCE_ROOTS:
        if text.startswith(root):
            posix = PurePosixPath(text[len(root) :])
    parts = list(posix.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _int(summary: Mapping[str, Any], key: str, where: str) -> int:
    value = summary.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise GateError(f"{where}: summary.{key} missing or not a count")
    return value


def _lines(entry: Mapping[str, Any], key: str, where: str) -> frozenset[int]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(n, int) for n in value):
        raise GateError(f"{where}: {key} must be a list of line numbers")
    return frozenset(value)


def parse_report(data: Any, source: str) -> list[FileCoverage]:  # noqa: ANN401 - raw JSON
    """Validate coverage.py's JSON report and extract per-file counts."""
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise GateError(f"{source}: not a coverage.py JSON report (no 'files' object)")
    meta = data.get("meta", {})
    if isinstance(meta, dict) and meta.get("branch_coverage") is False:
        raise GateError(f"{source}: measured without branch coverage; run coverage with --branch")
    files = []
    for path, entry in sorted(data["files"].items()):
        where = f"{source}: {path}"
        if not isinstance(entry, dict) or not isinstance(entry.get("summary"), dict):
            raise GateError(f"{where}: entry has no summary")
        summary = entry["summary"]
        files.append(
            FileCoverage(
                path=path,
                module=module_of(path),
                statements=_int(summary, "num_statements", where),
                covered_lines=_int(summary, "covered_lines", where),
                branches=_int(summary, "num_branches", where) if "num_branches" in summary else 0,
                covered_branches=(
                    _int(summary, "covered_branches", where) if "covered_branches" in summary else 0
                ),
                executed=_lines(entry, "executed_lines", where),
                missing=_lines(entry, "missing_lines", where),
            )
        )
    return files


def load_report(path: Path) -> list[FileCoverage]:
    """Read a coverage JSON file with a clear error when it is missing or malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(
            f"{path}: not found; run the tests under coverage first (scripts/gate -s tests)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GateError(f"{path}: not valid JSON ({exc})") from None
    return parse_report(data, str(path))


def aggregate(name: str, files: Iterable[FileCoverage]) -> Row:
    """Sum the counts of several files into one row."""
    chosen = list(files)
    return Row(
        name=name,
        files=len(chosen),
        statements=sum(f.statements for f in chosen),
        covered_lines=sum(f.covered_lines for f in chosen),
        branches=sum(f.branches for f in chosen),
        covered_branches=sum(f.covered_branches for f in chosen),
    )


def in_package(module: str, package: str) -> bool:
    """True for the package itself and everything below it."""
    return module == package or module.startswith(package + ".")


def evaluate(files: Sequence[FileCoverage], policy: Policy) -> tuple[list[Row], list[str]]:
    """Rows (overall first, then each critical package) and the list of failures."""
    rows = [aggregate("overall", files)]
    rows += [
        aggregate(pkg, (f for f in files if in_package(f.module, pkg))) for pkg in policy.critical
    ]
    failures = [f"{row.name}: {'; '.join(s)}" for row in rows if (s := row.shortfalls(policy))]
    return rows, failures


def render_table(rows: Sequence[Row], policy: Policy) -> str:
    """The table the gate prints; verdict 'ok' or 'FAIL (…)'."""
    width = max([len("package")] + [len(r.name) for r in rows])
    head = f"{'package':<{width}}  {'files':>5}  {'line %':>7}  {'branch %':>8}  verdict"
    out = [
        f"coverage gate: line ≥ {policy.line:g}% and branch ≥ {policy.branch:g}%, "
        "overall and per critical package",
        head,
        "-" * len(head),
    ]
    for row in rows:
        shortfalls = row.shortfalls(policy)
        verdict = "ok" if not shortfalls else "FAIL (" + "; ".join(shortfalls) + ")"
        out.append(
            f"{row.name:<{width}}  {row.files:>5}  {row.line_pct:>7.2f}  "
            f"{row.branch_pct:>8.2f}  {verdict}"
        )
    return "\n".join(out)


# --- coverage of changed lines ------------------------------------------------------------------


def parse_diff(diff: str) -> dict[str, set[int]]:
    """Added/changed line numbers per file from ``git diff --unified=0`` output."""
    changed: dict[str, set[int]] = {}
    current: str | None = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            target = line[4:].strip()
            current = target[2:] if target.startswith("b/") else None
            if current is not None:
                changed.setdefault(current, set())
        elif (match := _HUNK.match(line)) and current is not None:
            start = int(match["start"])
            count = int(match["count"]) if match["count"] is not None else 1
            changed[current].update(range(start, start + count))
    return {path: lines for path, lines in changed.items() if lines}


def git_diff(base: str, cwd: Path) -> str:
    """``git diff --unified=0 BASE`` of the working tree, with a clear error for a bad ref."""
    result = subprocess.run(  # noqa: S603  # nosec B603 B607
        ["git", "diff", "--unified=0", "--no-color", "--no-ext-diff", base, "--"],  # noqa: S607
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["git failed"])[0]
        raise GateError(f"--diff {base}: {detail}")
    return result.stdout


@dataclass(frozen=True)
class DiffRow:
    """Coverage of the changed, executable lines of one file."""

    path: str
    changed: int
    covered: int
    missing: tuple[int, ...]

    @property
    def pct(self) -> float:
        """Percent of changed executable lines that ran (100 when none changed)."""
        return 100.0 * self.covered / self.changed if self.changed else 100.0


def diff_coverage(files: Sequence[FileCoverage], changed: Mapping[str, set[int]]) -> list[DiffRow]:
    """Intersect changed lines with the measured statements of each file."""
    rows = []
    for fc in files:
        lines = changed.get(fc.path)
        if not lines:
            continue
        statements = lines & (fc.executed | fc.missing)
        if not statements:
            continue
        covered = statements & fc.executed
        rows.append(
            DiffRow(fc.path, len(statements), len(covered), tuple(sorted(statements - covered)))
        )
    return rows


def render_diff(rows: Sequence[DiffRow], base: str) -> str:
    """The changed-lines report."""
    if not rows:
        return f"changed lines since {base}: no measured statements changed"
    total = sum(r.changed for r in rows)
    covered = sum(r.covered for r in rows)
    pct = 100.0 * covered / total if total else 100.0
    out = [f"changed lines since {base}: {covered}/{total} covered ({pct:.2f}%)"]
    for row in rows:
        missing = ",".join(str(n) for n in row.missing) or "-"
        out.append(f"  {row.path}: {row.covered}/{row.changed} ({row.pct:.2f}%) missing: {missing}")
    return "\n".join(out)


def run_gate(report: Path, pyproject: Path) -> tuple[str, list[str], Sequence[FileCoverage]]:
    """Load both inputs, evaluate, and return the table, the failures and the files."""
    policy = load_policy(pyproject)
    files = load_report(report)
    rows, failures = evaluate(files, policy)
    return render_table(rows, policy), failures, files
