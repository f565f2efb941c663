"""Hashed requirement files (``uv pip compile --generate-hashes`` output) as typed values.

The locks in ``locks/`` are plain pip requirement files so that both pip and uv install
them with ``--require-hashes``; this module reads them back for the checks that need
to know what is pinned (toolchain drift, audit, licences, SBOM enrichment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ci.errors import GateError

if TYPE_CHECKING:  # packaging is imported where a lock is parsed (see clean_lock)
    from packaging.markers import Marker
    from packaging.utils import NormalizedName
    from packaging.version import Version

_HASH = re.compile(r"--hash=(?P<algo>[a-z0-9]+):(?P<digest>[0-9a-f]+)")
# A lock line in the plainest form uv writes, which parse_lock certainly accepts: a PEP 508
# name, == and a PEP 440 version in its normal form, maybe a marker (:data:`_MARKER_TOKEN`),
# and sha256 hashes.
_PLAIN_PIN = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r"==(?P<version>[0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?)"
    r"(?:[ \t]*;[ \t]*(?P<marker>[^;]*?))?"
    r"(?:[ \t]+--hash=sha256:[0-9a-f]+)+"
)
# A marker's tokens in that plainest form: a comparison of an environment variable (by its
# own name, no alias) with a quoted value holding no quote, "and", "or", parentheses.
_MARKER_TOKEN = re.compile(
    r"[ \t]*(?:(?P<item>(?P<var>python_version|python_full_version|os_name|sys_platform"
    r"|platform_release|platform_system|platform_version|platform_machine"
    r"|platform_python_implementation|implementation_name|implementation_version)"
    r"""[ \t]*(?P<op>==|!=|<=|>=|<|>)[ \t]*(?:'(?P<v1>[^'"=]*)'|"(?P<v2>[^'"=]*)"))"""
    r"|(?P<bool>and|or)(?![A-Za-z0-9_])|(?P<open>\()|(?P<close>\)))[ \t]*"
)


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


def _marker_key(marker: str) -> tuple[tuple[str, ...], ...] | None:
    """The comparisons (variable, operator, value) and the and/or of a marker in the
    plainest form, in order; None when it is not in that form (or not a marker).

    packaging renders a marker as exactly these, with only parentheses between them, so
    two markers whose keys differ render differently: :func:`clean_lock` needs no
    packaging to tell that two pins of one name are under different markers."""
    items: list[tuple[str, ...]] = []
    depth = 0
    want_item = True
    pos = 0
    while pos < len(marker):
        token = _MARKER_TOKEN.match(marker, pos)
        if token is None or token.end() == pos:
            return None
        pos = token.end()
        if token["item"] is not None and want_item:
            value = token["v1"] if token["v1"] is not None else token["v2"]
            items.append((token["var"], token["op"], value))
            want_item = False
        elif token["open"] is not None and want_item:
            depth += 1
        elif token["close"] is not None and not want_item and depth:
            depth -= 1
        elif token["bool"] is not None and not want_item:
            items.append((token["bool"],))
            want_item = True
        else:
            return None
    return tuple(items) if not want_item and not depth else None


def clean_lock(text: str) -> bool:
    """Whether :func:`parse_lock` certainly accepts the lock, told without packaging: every
    line is a pin in the plainest form uv writes (:data:`_PLAIN_PIN`), and no name is
    pinned twice under markers that could render alike. False means "not known": ask
    parse_lock (``python -m ci licenses`` then never imports packaging for a clean lock;
    tests/ci/gate/test_requirements.py checks this against parse_lock)."""
    seen: set[tuple[str, tuple[tuple[str, ...], ...] | None]] = set()
    for _, line in _logical_lines(text):
        pin = _PLAIN_PIN.fullmatch(line)
        if pin is None:
            return False
        marker = None
        if pin["marker"] is not None:
            marker = _marker_key(pin["marker"])
            if marker is None:
                return False
        key = (re.sub(r"[-_.]+", "-", pin["name"]).lower(), marker)
        if key in seen:
            return False
        seen.add(key)
    return True


def parse_lock(text: str, source: str) -> tuple[Pin, ...]:
    """Parse a hashed lock; anything but ``name==version`` with sha256 hashes is an error.

    Options such as ``--index-url`` or ``-e``, URL/VCS/path requirements, ranges and
    unhashed pins are rejected: a lock must pin exact artifacts, nothing else.
    """
    # Imported here: packaging costs ~110 M instructions to import, a third of what
    # `python -m ci licenses` spends besides the licence texts, and clean_lock needs none.
    from packaging.requirements import InvalidRequirement, Requirement  # noqa: PLC0415
    from packaging.utils import canonicalize_name  # noqa: PLC0415
    from packaging.version import InvalidVersion, Version  # noqa: PLC0415

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
