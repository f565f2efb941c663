"""Hashed requirement files (``uv pip compile --generate-hashes`` output) as typed values.

The locks in ``locks/`` are plain pip requirement files so that both pip and uv install
them with ``--require-hashes``; this module reads them back for the checks that need
to know what is pinned (toolchain drift, audit, licences, SBOM enrichment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from ci.errors import GateError

_HASH = re.compile(r"--hash=(?P<algo>[a-z0-9]+):(?P<digest>[0-9a-f]+)")


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` line of a lock, with its hashes and environment marker."""

    name: NormalizedName
    version: Version
    hashes: tuple[str, ...]
    marker: Marker | None
    line: int

    def applies(self, environment: dict[str, str] | None = None) -> bool:
        """Whether this pin is installed on the given (default: current) environment."""
        return self.marker is None or self.marker.evaluate(environment)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations and drop comments, keeping the first line number."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        line = line.rstrip()
        if not buf:
            start = number
        if line.endswith("\\"):
            buf.append(line[:-1].strip())
            continue
        buf.append(line.strip())
        joined = " ".join(part for part in buf if part)
        buf = []
        if joined:
            out.append((start, joined))
    if buf and any(buf):
        out.append((start, " ".join(part for part in buf if part)))
    return out


def parse_lock(text: str, source: str) -> tuple[Pin, ...]:
    """Parse a hashed lock; anything but ``name==version`` with sha256 hashes is an error.

    Options such as ``--index-url`` or ``-e``, URL/VCS/path requirements, ranges and
    unhashed pins are rejected: a lock must pin exact artifacts, nothing else.
    """
    pins: list[Pin] = []
    seen: dict[tuple[NormalizedName, str], int] = {}
    for number, line in _logical_lines(text):
        where = f"{source}:{number}"
        if line.startswith("-"):
            option = line.split()[0]
            raise GateError(f"{where}: option {option!r} is not allowed in a lock")
        hashes = tuple(f"{m['algo']}:{m['digest']}" for m in _HASH.finditer(line))
        spec = _HASH.sub("", line).strip()
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            raise GateError(f"{where}: not a valid requirement: {spec!r} ({exc})") from None
        if req.url:
            raise GateError(f"{where}: {req.name} comes from a URL/VCS/path ({req.url}); pin it")
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            raise GateError(f"{where}: {req.name} must be pinned with ==, got {spec!r}")
        if not hashes:
            raise GateError(
                f"{where}: {req.name} has no --hash; regenerate with scripts/gate -s lock"
            )
        if any(not h.startswith("sha256:") for h in hashes):
            raise GateError(f"{where}: {req.name} has a non-sha256 hash")
        try:
            version = Version(specs[0].version)
        except InvalidVersion:
            raise GateError(f"{where}: {req.name} has an invalid version") from None
        name = canonicalize_name(req.name)
        key = (name, str(req.marker))
        if key in seen:
            raise GateError(f"{where}: {name} is pinned twice (first at line {seen[key]})")
        seen[key] = number
        pins.append(Pin(name, version, hashes, req.marker, number))
    return tuple(pins)


def read_lock(path: Path) -> tuple[Pin, ...]:
    """Read and parse a lock file, with a clear error when it is missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GateError(f"{path}: lock file not found; run scripts/gate -s lock") from None
    return parse_lock(text, str(path))


def applicable(pins: tuple[Pin, ...], environment: dict[str, str] | None = None) -> dict[str, Pin]:
    """The pins that apply to an environment, by canonical name."""
    return {pin.name: pin for pin in pins if pin.applies(environment)}
