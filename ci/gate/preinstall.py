"""Pre-install lock verifier: a hostile lock is refused before any installer or index sees it.

pip and uv act on a requirement file as they read it: a ``--find-links`` or
``--extra-index-url`` line is followed, and an unpinned or wrongly hashed line may be
resolved or built, before any check of bot4's runs. So this module checks the locks
first, on the runner's bare interpreter — standard library only, so nothing it depends
on comes from the locks it judges. ``scripts/gate`` runs it (bootstrap lock) before its
pip; ``noxfile.py`` runs it (every lock) at import, before nox creates any venv.

Checks: each lock's sha256 equals the one ``toolchain.lock`` records; every logical line
is ``name==version`` (optional extras and environment marker) followed only by
``--hash=sha256:<64 hex>`` (one or more); no option lines at all (index URLs, find-links,
editables, includes, trusted hosts); no URL, VCS, path or ``@`` direct reference; no
name pinned twice; and pyproject.toml's dependency declarations still have the digest
the locks were compiled from. The file is read as pip reads it (continuations joined,
then comments stripped), and anything that pip and uv might read differently — a
control character, a comment ending in a backslash, a continuation into a comment — is
refused rather than guessed at.

Usage: ``python3 -I ci/gate/preinstall.py [--root DIR] [--only NAME]... [--no-inputs]``.
Exit 0 when clean; 1 with one ``file:line: problem — remedy`` line per violation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):  # standard library only: this file is loaded by path
    import tomllib
else:  # pragma: no cover - 3.10 (nox -s toolkit-pythons); tomli is tomllib's origin
    import tomli as tomllib

LOCK_FILE = "toolchain.lock"
SCHEMA = 1
RELOCK = "scripts/gate -s lock"

_COMMENT = re.compile(r"(^|\s+)#.*$")
_ODD = re.compile(r"[^\t\x20-\x7e]")  # control or non-ASCII: pip and uv may read it apart
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_PIN = re.compile(
    rf"^(?P<name>{_NAME})(?:\[(?P<extras>{_NAME}(?:\s*,\s*{_NAME})*)\])?"
    r"\s*==\s*(?P<version>[0-9A-Za-z!+._-]+)$"
)
_HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_QUOTED_OK = re.compile(r"^[\"'][A-Za-z0-9._ +*-]*[\"']$")
_MARKER = re.compile(r"^[A-Za-z0-9_\s()<>=!~\"']*$")
_URLISH = re.compile(r"(://|^[./~]|[/\\]|^(git|hg|svn|bzr)\+|\.whl$|\.tar\.gz$|\.zip$)")
# Why each option is refused (every option is: a lock is requirement lines and hashes).
_OPTION_REASONS = {
    "-i": "names a package index",
    "--index-url": "names a package index",
    "--extra-index-url": "adds a package index",
    "--no-index": "changes where packages come from",
    "-f": "adds a package source (find-links)",
    "--find-links": "adds a package source (find-links)",
    "-e": "installs an editable (a build from a path or VCS)",
    "--editable": "installs an editable (a build from a path or VCS)",
    "-r": "includes another requirement file the locks do not cover",
    "--requirement": "includes another requirement file the locks do not cover",
    "-c": "includes a constraint file the locks do not cover",
    "--constraint": "includes a constraint file the locks do not cover",
    "--trusted-host": "turns off TLS verification for a host",
}


@dataclass(frozen=True)
class Problem:
    """One violation, printed as ``file:line: problem — remedy``."""

    path: str
    line: int
    problem: str
    remedy: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.problem} — {self.remedy}"


@dataclass(frozen=True)
class LockRecord:
    """A lock file as toolchain.lock records it, with the line its sha256 is on."""

    name: str
    path: str
    sha256: str
    line: int


def restore(path: str) -> str:
    """The remedy for a lock that is not what `scripts/gate -s lock` wrote."""
    if path.endswith("bootstrap.txt"):  # the runner cannot re-lock without its own lock
        return f"restore it: git checkout HEAD -- {path} {LOCK_FILE}"
    return f"restore it (git checkout HEAD -- {path} {LOCK_FILE}) or re-lock ({RELOCK})"


def logical_lines(text: str, path: str) -> Iterator[tuple[int, str] | Problem]:
    """pip's reading of a requirement file: join continuations, then strip comments.

    Yields ``(first line number, text)`` per non-empty logical line, or a Problem where
    pip and uv could disagree about what the line says.
    """
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.split("\n"), start=1):
        odd = _ODD.search(line)
        if odd is not None:
            bad = odd.group()
            what = f"control character {bad!r}" if bad.isascii() else "a non-ASCII character"
            yield Problem(path, number, f"{what} in a lock", restore(path))
            pending = []
            continue
        if _COMMENT.match(line):
            if line.rstrip().endswith("\\"):
                yield Problem(path, number, "comment ends in a backslash", restore(path))
            if pending:
                yield Problem(path, start, "line continues into a comment", restore(path))
                pending = []
            continue
        if line.endswith("\\"):
            if not pending:
                start = number
            pending.append(line[:-1])
            continue
        if pending:
            if not line.strip():
                yield Problem(path, start, "line continues into a blank line", restore(path))
                pending = []
                continue
            pending.append(line)
            joined, first, pending = "".join(pending), start, []
        else:
            joined, first = line, number
        stripped = _COMMENT.sub("", joined).strip()
        if stripped:
            yield first, stripped
    if pending:
        yield Problem(path, start, "file ends inside a line continuation", restore(path))


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_line(path: str, number: int, line: str) -> tuple[Problem | None, str | None]:
    """(problem, pin key) for one logical line; the key is ``name;marker`` when it is clean."""

    def bad(problem: str) -> tuple[Problem, None]:
        return Problem(path, number, problem, restore(path)), None

    tokens = line.split()
    if tokens[0].startswith("-"):
        option = tokens[0].split("=", 1)[0]
        if not option.startswith("--") and len(option) > 2:  # -fDIR, -rFILE
            option = option[:2]
        reason = _OPTION_REASONS.get(option, "is not allowed in a lock")
        return bad(f"option {option} {reason}")
    split = next((i for i, t in enumerate(tokens) if t.startswith("--")), len(tokens))
    spec, options = " ".join(tokens[:split]), tokens[split:]
    requirement, _, marker = spec.partition(";")
    requirement = requirement.strip()
    if "@" in requirement or _URLISH.search(requirement):
        return bad(f"{requirement!r} is a URL, VCS or path requirement; pin name==version")
    match = _PIN.match(requirement)
    if match is None:
        return bad(f"{requirement!r} is not pinned as name==version")
    if not _MARKER.match(_QUOTED.sub('""', marker)) or not all(
        _QUOTED_OK.match(q) for q in _QUOTED.findall(marker)
    ):
        return bad(f"environment marker {marker.strip()!r} is not a plain marker")
    hashes = 0
    for token in options:
        if not _HASH.match(token):
            what = token.split("=", 1)[0] if token.startswith("--") else token
            return bad(f"{what!r} after {match['name']}: only --hash=sha256:<64 hex> may follow")
        hashes += 1
    if hashes == 0:
        return bad(f"{match['name']}=={match['version']} has no --hash=sha256:")
    return None, f"{canonical(match['name'])};{' '.join(marker.split())}"


def check_text(text: str, path: str) -> list[Problem]:
    """Every violation in one lock's text (empty when the lock is clean)."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for item in logical_lines(text, path):
        if isinstance(item, Problem):
            problems.append(item)
            continue
        number, line = item
        problem, key = check_line(path, number, line)
        if problem is not None:
            problems.append(problem)
        elif key is not None:
            if key in seen:
                name = key.split(";", 1)[0]
                twice = f"{name} is pinned twice (line {seen[key]})"
                problems.append(Problem(path, number, twice, restore(path)))
            seen.setdefault(key, number)
    return problems


def lock_pins(path: Path) -> dict[str, str]:
    """Canonical name → version of a lock that :func:`check_text` passed."""
    return pins_of(path.read_text(encoding="utf-8"), str(path))


def pins_of(text: str, path: str = "lock") -> dict[str, str]:
    """Canonical name → version of every ``name==version`` line, whatever else the text holds."""
    pins: dict[str, str] = {}
    for item in logical_lines(text, path):
        if not isinstance(item, Problem):
            match = _PIN.match(item[1].split()[0].split(";")[0])
            if match is not None:
                pins[canonical(match["name"])] = match["version"]
    return pins


def files_digest(root: Path, paths: Sequence[str]) -> str:
    """One sha256 over named files (name and bytes each), e.g. what a venv was built from."""
    digest = hashlib.sha256()
    for rel in paths:
        data = (root / rel).read_bytes()
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def read_toolchain(root: Path) -> tuple[dict[str, Any], list[LockRecord]]:
    """toolchain.lock's data and lock records; ValueError (one printable line) when unusable."""
    path = root / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ValueError(f"{LOCK_FILE}:1: missing — {RELOCK}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{LOCK_FILE}:1: unreadable ({exc}) — {restore(LOCK_FILE)}") from None
    if data.get("schema") != SCHEMA or not isinstance(data.get("locks"), dict):
        raise ValueError(f"{LOCK_FILE}:1: not a schema-{SCHEMA} toolchain lock — {RELOCK}")
    lines = text.split("\n")
    records = []
    for name, table in data["locks"].items():
        header = next((i for i, ln in enumerate(lines, 1) if ln.strip() == f"[locks.{name}]"), 1)
        line = next(
            (i for i, ln in enumerate(lines[header:], header + 1) if ln.startswith("sha256")),
            header,
        )
        entry = table if isinstance(table, dict) else {}
        lock_path, sha = entry.get("path"), entry.get("sha256")
        if not isinstance(lock_path, str) or not isinstance(sha, str):
            raise ValueError(  # noqa: TRY004 - a one-line refusal, not a type error
                f"{LOCK_FILE}:{header}: locks.{name} needs path and sha256 — {RELOCK}"
            )
        records.append(LockRecord(name, lock_path, sha, line))
    return data, records


def inputs_digest_of(pyproject: Mapping[str, Any]) -> str:
    """Digest of every dependency declaration the locks are compiled from."""
    project = pyproject.get("project", {})
    settings = pyproject.get("tool", {}).get("bot4", {}).get("toolchain", {})
    inputs = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "dependency-groups": pyproject.get("dependency-groups", {}),
        "toolchain": dict(settings) if isinstance(settings, dict) else {},
    }
    canonical_json = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical_json.encode()).hexdigest()


def verify(root: Path, only: Sequence[str] = (), inputs: bool = True) -> list[Problem]:
    """Every problem with the locks under ``root`` (the named ones, or all)."""
    try:
        data, records = read_toolchain(root)
    except ValueError as exc:
        path, line, rest = str(exc).split(":", 2)
        problem, _, remedy = rest.strip().partition(" — ")
        return [Problem(path, int(line), problem, remedy)]
    problems: list[Problem] = []
    chosen = [r for r in records if not only or r.name in only]
    for name in set(only) - {r.name for r in records}:
        problems.append(Problem(LOCK_FILE, 1, f"no lock named {name!r}", RELOCK))
    for record in chosen:
        file = root / record.path
        if Path(record.path).is_absolute() or ".." in Path(record.path).parts:
            leaves = f"lock path {record.path!r} leaves the repository"
            problems.append(Problem(LOCK_FILE, record.line, leaves, RELOCK))
            continue
        try:
            raw = file.read_bytes()
        except OSError:
            problems.append(Problem(record.path, 1, "lock file missing", restore(record.path)))
            continue
        if hashlib.sha256(raw).hexdigest() != record.sha256:
            problems.append(
                Problem(
                    record.path, 1,
                    f"sha256 differs from {LOCK_FILE}:{record.line} (edited without re-locking)",
                    restore(record.path),
                )
            )  # fmt: skip
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(Problem(record.path, 1, "not UTF-8", restore(record.path)))
            continue
        problems += check_text(text, record.path)
    if inputs:
        try:
            pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            problems.append(Problem("pyproject.toml", 1, f"unreadable ({exc})", RELOCK))
        else:
            if inputs_digest_of(pyproject) != data.get("inputs_sha256"):
                problems.append(
                    Problem(
                        "pyproject.toml", 1,
                        f"dependency declarations changed since {LOCK_FILE} was written",
                        f"re-lock: {RELOCK}",
                    )
                )  # fmt: skip
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Print each problem on one line to stderr; exit 1 when there is any."""
    parser = argparse.ArgumentParser(
        prog="preinstall", description="Refuse a hostile lock before anything installs it."
    )
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="check only this lock (toolchain.lock name); repeatable")  # fmt: skip
    parser.add_argument("--no-inputs", action="store_true",
                        help="skip the pyproject.toml declarations digest")  # fmt: skip
    args = parser.parse_args(argv)
    problems = verify(Path(args.root), args.only, inputs=not args.no_inputs)
    for problem in problems:
        print(f"gate: refused: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
