"""The source policy over the lock files: the dependency-confusion guard.

The analogue of cargo-deny's ``unknown-registry = "deny"`` and ``unknown-git = "deny"``:
every locked requirement must be a plain ``name==version`` with sha256 hashes, resolved
from the index pip is configured with. A lock that names its own index
(``--index-url``/``--extra-index-url``/``--find-links``/``--trusted-host``), an editable,
a VCS, URL or path requirement, a range or an unhashed pin is denied — one line per
offending line, not just the first. (That the configured index really serves the locked
hashes is checked by ``python -m ci audit``.)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ci.errors import GateError
from ci.gate.requirements import _logical_lines, clean_lock, parse_lock


def check_text(text: str, source: str) -> list[str]:
    """Every violation in one lock's text (empty when the lock is clean)."""
    if clean_lock(text):  # the plain form uv writes: clean, known without packaging
        return []
    try:  # a clean lock is read once; parse_lock stops at a lock's first problem, so
        parse_lock(text, source)  # a bad one is read line by line to report them all
    except GateError:
        pass
    else:
        return []
    problems: list[str] = []
    for number, line in _logical_lines(text):
        try:
            parse_lock(line, source)
        except GateError as exc:
            # parse_lock numbers lines from 1 within the single line it was given.
            problems.append(str(exc).replace(f"{source}:1:", f"{source}:{number}:", 1))
    if not problems:
        try:
            parse_lock(text, source)
        except GateError as exc:  # cross-line problems, e.g. a name pinned twice
            problems.append(str(exc))
    return problems


def check_locks(locks: Iterable[Path]) -> list[str]:
    """Every violation in every lock; a missing lock is one too."""
    problems: list[str] = []
    for lock in locks:
        try:
            text = lock.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"{lock}: lock file not found")
            continue
        problems.extend(check_text(text, str(lock)))
    return problems
