"""The scheduled refresh: what re-locking ``image.lock`` changed, and what the image scan
found before and after, as the body of the pull request the refresh workflow opens.

Debian supersedes a locked .deb within days of a security update; the refresh makes that
a reviewed pull request (lock diff + scan delta) instead of a red gate on the next change.
The ``refresh`` nox session writes ``reports/refresh/`` (the old lock, both scans, the
patch, ``pr.md``); ``open_pr`` turns it into a branch and a pull request with git and
GitHub's ``gh`` (which needs GitHub: it cannot run on a machine without it).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ci.errors import GateError
from ci.image.lock_format import Lock, read_lock

BRANCH_PREFIX = "bot4/refresh-"
Key = tuple[str, str, str]


def _pins(lock: Lock) -> dict[str, tuple[str, str]]:
    pins = {f"deb {d.name}": (d.version, d.suite) for d in lock.debs}
    pins.update({f"wheel {w.name}": (w.version, "PyPI") for w in lock.wheels})
    return pins


def lock_diff(old: Lock, new: Lock) -> list[str]:
    """One line per package added, removed or moved to another version (sorted)."""
    before, after = _pins(old), _pins(new)
    lines = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was == now:
            continue
        if was is None and now is not None:
            lines.append(f"- {name}: added {now[0]} ({now[1]})")
        elif now is None and was is not None:
            lines.append(f"- {name}: removed {was[0]} ({was[1]})")
        elif was is not None and now is not None:
            lines.append(f"- {name}: {was[0]} ({was[1]}) → {now[0]} ({now[1]})")
    return lines


def read_findings(path: Path) -> dict[Key, Mapping[str, Any]]:
    """The findings of a ``ci.image scan --json`` report, keyed by (rule, subject, message)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        rows = doc["findings"]
        return {(str(r["rule"]), str(r["subject"]), str(r["message"])): r for r in rows}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GateError(f"{path}: not a ci.image scan --json report ({exc})") from None


def _finding(row: Mapping[str, Any]) -> str:
    fails = " — fails the gate" if row.get("fails") else ""
    return f"- {row['severity']} {row['rule']} {row['subject']}: {row['message']}{fails}"


def body(
    old: Lock, new: Lock, before: Mapping[Key, Mapping[str, Any]], after: Mapping[Key, Any]
) -> str:
    """The pull request's body (Markdown): lock diff, then the scan delta."""
    diff = lock_diff(old, new)
    fixed = [before[k] for k in sorted(before.keys() - after.keys())]
    found = [after[k] for k in sorted(after.keys() - before.keys())]
    failing = sum(bool(r.get("fails")) for r in after.values())
    lines = ["Scheduled refresh of `image.lock` and the SBOMs (`scripts/gate -s refresh`).", ""]
    lines += ["## image.lock", ""]
    lines += diff or ["No package changed."]
    lines += ["", "## Image scan, before → after", ""]
    lines.append(
        f"{len(before)} finding(s) before, {len(after)} after; "
        f"{len(fixed)} gone, {len(found)} new; {failing} failing the gate after the refresh."
    )
    if fixed:
        lines += ["", "Gone:", *map(_finding, fixed)]
    if found:
        lines += ["", "New:", *map(_finding, found)]
    return "\n".join(lines) + "\n"


def report(old_lock: Path, new_lock: Path, before: Path, after: Path) -> str:
    """``body`` from the files the refresh session leaves in reports/refresh/."""
    return body(
        read_lock(old_lock), read_lock(new_lock), read_findings(before), read_findings(after)
    )


Runner = Callable[[Sequence[str]], str]


def _run(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False)  # noqa: S603  # nosec B603
    except OSError as exc:
        raise GateError(f"cannot run {argv[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise GateError(f"{' '.join(argv[:3])} failed (exit {done.returncode}): {detail}")
    return done.stdout


def open_pr(directory: Path, today: dt.date, run: Runner = _run) -> str:
    """Commit ``changes.patch`` on a new branch, push it and open a pull request with
    ``pr.md`` as its body (git, then GitHub's gh); a line saying what was done."""
    patch, pr_body = directory / "changes.patch", directory / "pr.md"
    if not pr_body.is_file() or not patch.is_file():
        raise GateError(f"{directory}: no pr.md/changes.patch; run scripts/gate -s refresh first")
    if not patch.read_bytes().strip():
        return "refresh: nothing changed; no pull request"
    if shutil.which("gh") is None:
        raise GateError("gh (GitHub CLI) not found: opening the pull request needs it")
    branch = f"{BRANCH_PREFIX}{today.isoformat()}"
    run(["git", "switch", "-c", branch])
    run(["git", "apply", "--index", str(patch)])
    run(["git", "-c", "user.name=bot4-refresh", "-c", "user.email=bot4-refresh@users.noreply",
         "commit", "-q", "-m", f"refresh image.lock and SBOMs ({today.isoformat()})"])  # fmt: skip
    run(["gh", "auth", "setup-git"])
    run(["git", "push", "origin", f"HEAD:refs/heads/{branch}"])
    title = f"Refresh image.lock and SBOMs ({today.isoformat()})"
    url = run(
        ["gh", "pr", "create", "--head", branch, "--title", title, "--body-file", str(pr_body)]
    )
    return f"refresh: opened {url.strip()}"
