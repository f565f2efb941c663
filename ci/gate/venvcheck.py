"""Reused-venv check: a session's venv holds what the lock installs, byte for byte, or is rebuilt.

nox reuses session venvs between runs, so a package a hostile lock installed once (its
``.pth`` runs on every interpreter start) would outlive the revert of that lock. Before a
session runs anything, ``noxfile.py`` calls :func:`check` on the runner's interpreter
(standard library only): every ``*.dist-info`` must be a locked name at its locked
version (or bot4's own editables; no venv seed is exempt), every file its RECORD lists must have
that hash, no file in site-packages or bin/ may be outside every RECORD (bytecode caches
of recorded modules excepted), and each RECORD must be the one present right after the
last clean install (the baseline :func:`record` writes beside the venv). Anything else
and the venv is deleted and rebuilt from the lock.

``scripts/gate`` runs it as a script over the runner's own venv (``.venv-gate``, against
the bootstrap lock) before it starts nox, with the baseline kept inside that venv.

Warm runs stay fast because a file is re-hashed only when its (inode, size, mtime,
ctime) changed since it was last verified; ctime cannot be set back by a writer.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EDITABLES = frozenset({"bot4", "bot4-ci"})  # installed from this repo, no-deps, editable
# What a venv tool writes to bin/ itself (not from any wheel's RECORD).
BIN_OK = frozenset(
    {
        "activate", "Activate.ps1", "activate.bat", "activate.csh", "activate.fish", "activate.nu",
        "activate.ps1", "activate.xsh", "activate_this.py", "deactivate.bat", "pydoc.bat",
        "python", "python3", "python3.11",
    }
)  # fmt: skip
STATE_VERSION = 1


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class State:
    """What was verified: RECORD digests at the last clean install, and a stat → hash cache."""

    baseline: dict[str, str] = field(default_factory=dict)
    cache: dict[str, list[Any]] = field(default_factory=dict)
    inputs: str = ""  # digest of what the last clean install was made from
    installed: dict[str, str] = field(default_factory=dict)  # name → version found

    @classmethod
    def load(cls, path: Path) -> State:
        """The saved state, or an empty one when missing or unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return cls()
        baseline, cache, inputs = data.get("baseline"), data.get("cache"), data.get("inputs")
        if not isinstance(baseline, dict) or not isinstance(cache, dict):
            return cls()
        return cls(baseline, cache, inputs if isinstance(inputs, str) else "")

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        payload = {
            "version": STATE_VERSION,
            "inputs": self.inputs,
            "baseline": self.baseline,
            "cache": self.cache,
        }
        tmp.write_text(json.dumps(payload, sort_keys=True), encoding="utf-8")
        tmp.replace(path)


def site_packages(venv: Path) -> Path | None:
    """The venv's site-packages directory, if it has exactly one."""
    found = sorted(venv.glob("lib/python3*/site-packages"))
    return found[0] if len(found) == 1 else None


def _metadata(dist_info: Path) -> tuple[str, str] | None:
    try:
        text = (dist_info / "METADATA").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and key in {"Name", "Version"}:
            fields.setdefault(key, value.strip())
    if "Name" not in fields or "Version" not in fields:
        return None
    return fields["Name"], fields["Version"]


class _Hasher:
    """sha256 of files under a venv, memoised by (inode, size, mtime, ctime).

    Plain strings, not pathlib: this runs over every file of every session venv on
    every start, and pathlib's parsing was most of its cost.
    """

    def __init__(self, venv: Path, cache: Mapping[str, list[Any]]) -> None:
        self.venv = str(venv)
        self.old = cache
        self.new: dict[str, list[Any]] = {}

    def rel(self, path: str) -> str:
        """``path`` relative to the venv (it is known to be inside)."""
        return path[len(self.venv) + 1 :]

    def sha256(self, path: str) -> str | None:
        """urlsafe-base64 sha256 (RECORD's form), or None when the file is missing."""
        try:
            st = os.stat(path)  # noqa: PTH116
        except OSError:
            return None
        key = self.rel(path)
        stamp = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        cached = self.old.get(key)
        if cached is not None and cached[:4] == stamp:
            self.new[key] = cached
            return str(cached[4])
        digest = hashlib.sha256()
        with open(path, "rb") as handle:  # noqa: PTH123 - strings on purpose (see class doc)
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        value = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
        self.new[key] = [*stamp, value]
        return value


def _record_entries(record: str) -> Iterable[tuple[str, str]]:
    with open(record, encoding="utf-8", newline="") as handle:  # noqa: PTH123
        for row in csv.reader(handle):
            if row:
                yield row[0], row[1] if len(row) > 1 else ""


def _recorded_pyc_ok(base: str, fname: str, owned: set[str]) -> bool:
    """A bytecode cache of a recorded module (written by the interpreter, not in RECORD)."""
    if not fname.endswith(".pyc") or os.path.basename(base) != "__pycache__":  # noqa: PTH119
        return False
    source = os.path.join(os.path.dirname(base), fname.split(".", 1)[0] + ".py")  # noqa: PTH118, PTH120
    return source in owned


def _check_dist(
    dist: Path, pins: Mapping[str, str], hasher: _Hasher, owned: set[str], found: dict[str, str]
) -> tuple[list[str], str | None]:
    """Problems with one dist-info (name, version, RECORD'd files) and its RECORD digest."""
    meta = _metadata(dist)
    if meta is None:
        return [f"{dist.name}: no readable Name/Version in METADATA"], None
    problems = []
    name, version = canonical(meta[0]), meta[1]
    found[name] = version
    if name in pins and pins[name] != version:
        problems.append(f"{name} {version} installed, the lock pins {pins[name]}")
    elif name not in pins and name not in EDITABLES:  # a venv tool's seeds too (see scripts/gate)
        problems.append(f"{name} {version} installed but not in the lock")
    record = str(dist / "RECORD")
    rel = hasher.rel(record)
    digest = hasher.sha256(record)
    if digest is None:
        return [*problems, f"{dist.name}: no RECORD"], None
    sp, inside = str(dist.parent), hasher.venv + os.sep
    for entry, expected in _record_entries(record):
        target = entry if entry.startswith("/") else f"{sp}/{entry}"
        if "/." in target or "//" in target:  # ../ (console scripts) or odd spelling
            target = os.path.normpath(target)
        if not target.startswith(inside):
            problems.append(f"{rel}: lists {entry}, outside the venv")
            continue
        owned.add(target)
        actual = hasher.sha256(target) if expected else ""
        if actual is None:
            problems.append(f"{hasher.rel(target)}: missing (listed in {rel})")
        elif expected and f"sha256={actual}" != expected:
            problems.append(f"{hasher.rel(target)}: altered (hash differs from {rel})")
    return problems, digest


def _unowned(hasher: _Hasher, sp: Path, owned: set[str]) -> list[str]:
    """Files in site-packages or bin/ that no RECORD lists."""
    problems = []
    for base, dirs, files in os.walk(sp):
        dirs.sort()
        for fname in sorted(files):
            path = os.path.join(base, fname)  # noqa: PTH118
            if path not in owned and not _recorded_pyc_ok(base, fname, owned):
                problems.append(f"{hasher.rel(path)}: not installed from the lock")
    bin_dir = os.path.join(hasher.venv, "bin")  # noqa: PTH118
    names = sorted(os.listdir(bin_dir)) if os.path.isdir(bin_dir) else []  # noqa: PTH112, PTH208
    for fname in names:
        path = os.path.join(bin_dir, fname)  # noqa: PTH118
        if path not in owned and fname not in BIN_OK:
            problems.append(f"{hasher.rel(path)}: not installed from the lock")
    return problems


def scan(
    venv: Path, pins: Mapping[str, str], state: State, *, compare_baseline: bool
) -> tuple[list[str], State]:
    """Every way the venv differs from the lock, and the refreshed state."""
    sp = site_packages(venv)
    if sp is None:
        return [f"{venv.name}: no single lib/python3*/site-packages"], State()
    hasher = _Hasher(venv, state.cache)
    problems: list[str] = []
    baseline: dict[str, str] = {}
    owned: set[str] = set()
    found: dict[str, str] = {}
    dists = sorted(sp.glob("*.dist-info"))
    if compare_baseline and dists and not state.baseline:
        problems.append(f"{venv.name}: no record of a verified install (made before this check)")
    for dist in dists:
        wrong, digest = _check_dist(dist, pins, hasher, owned, found)
        problems += wrong
        if digest is not None:
            rel = hasher.rel(str(dist / "RECORD"))
            baseline[rel] = digest
            if compare_baseline and state.baseline and state.baseline.get(rel) != digest:
                problems.append(f"{rel}: changed since the last verified install")
    problems += _unowned(hasher, sp, owned)
    return problems, State(baseline, hasher.new, state.inputs, found)


def check(
    venv: Path, pins: Mapping[str, str], state_file: Path, inputs: str
) -> tuple[list[str], bool]:
    """Problems with a reused venv (none when absent, empty or matching the lock), and
    whether it is complete: every pin and both editables installed from these ``inputs``
    (then installing again would change nothing, and is skipped)."""
    if not venv.exists():
        return [], False
    before = State.load(state_file)
    problems, state = scan(venv, pins, before, compare_baseline=True)
    if problems:
        return problems, False
    if state.cache != before.cache:  # something was re-hashed: remember it
        state.save(state_file)
    wanted = {**pins, **dict.fromkeys(EDITABLES, "")}
    have = state.installed
    complete = state.inputs == inputs and all(
        name in have and (not version or have[name] == version) for name, version in wanted.items()
    )
    return [], complete


def record(venv: Path, pins: Mapping[str, str], state_file: Path, inputs: str) -> list[str]:
    """After a clean install from ``inputs``: verify, then save the RECORD baseline."""
    problems, state = scan(venv, pins, State.load(state_file), compare_baseline=False)
    if problems:
        state_file.unlink(missing_ok=True)
    else:
        state.inputs = inputs
        state.save(state_file)
    return problems


def _lock_pins(lock: Path) -> dict[str, str]:
    """The lock's pins, read by preinstall (loaded by path: this may run as a plain script)."""
    spec = importlib.util.spec_from_file_location(
        "bot4_gate_preinstall", Path(__file__).with_name("preinstall.py")
    )
    if spec is None or spec.loader is None:
        raise SystemExit("venvcheck: cannot load preinstall.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    pins: dict[str, str] = module.lock_pins(lock)
    return pins


def main(argv: Sequence[str] | None = None) -> int:
    """Check (or, after installing, ``--record``) a venv against a lock; exit 1 if it differs."""
    parser = argparse.ArgumentParser(prog="venvcheck", description=__doc__.splitlines()[0])
    parser.add_argument("venv", type=Path, help="the virtualenv to check")
    parser.add_argument("lock", type=Path, help="the lock it was installed from")
    parser.add_argument("--record", action="store_true", help="save the baseline after install")
    args = parser.parse_args(argv)
    state = args.venv / ".bot4-verified.json"
    pins = _lock_pins(args.lock)
    inputs = hashlib.sha256(args.lock.read_bytes()).hexdigest()
    if args.record:
        problems = record(args.venv, pins, state, inputs)
        verb = "differs from the lock after installing"
    else:
        problems = check(args.venv, pins, state, inputs)[0]
        verb = "rebuilding from the lock"
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        print(f"gate: {args.venv}: {verb}: {problems[0]}{more}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
