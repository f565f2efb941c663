"""OSV advisory records (https://ossf.github.io/osv-schema/) and the PEP 440 matcher over them.

Only what an audit of PyPI pins needs: the ``PyPI`` ecosystem, ``ECOSYSTEM`` ranges with
any number of ``introduced``/``fixed``/``last_affected``/``limit`` events, explicit
``versions`` lists, ``withdrawn``, aliases, severities (CVSS vectors scored with the
``cvss`` package) and the fixed versions to suggest. A record that does not fit raises
``MalformedRecordError``; the loader turns that into a warning naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from ci.errors import GateError

log = logging.getLogger(__name__)

ECOSYSTEM = "PyPI"
EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
_CVSS = {"CVSS_V2": CVSS2, "CVSS_V3": CVSS3, "CVSS_V4": CVSS4}


class MalformedRecordError(GateError):
    """An advisory record that does not follow the OSV schema closely enough to match."""


@dataclass(frozen=True)
class Event:
    """One range event; ``version`` None is the ``introduced: "0"`` sentinel (the beginning)."""

    kind: str
    version: Version | None

    def sort_key(self) -> tuple[int, Version]:
        """Ascending version order, with "0" before every real version."""
        return (0, Version("0")) if self.version is None else (1, self.version)


@dataclass(frozen=True)
class Affected:
    """The affected versions of one package: ECOSYSTEM ranges and explicit versions."""

    name: NormalizedName
    ranges: tuple[tuple[Event, ...], ...]
    versions: frozenset[Version]

    def contains(self, version: Version) -> bool:
        """Whether ``version`` is affected (explicitly listed or inside any range)."""
        return version in self.versions or any(in_range(version, r) for r in self.ranges)


@dataclass(frozen=True)
class Severity:
    """A severity entry: the vector as published and its base score, when computable."""

    kind: str
    vector: str
    score: float | None
    rating: str

    def __str__(self) -> str:
        return f"{self.score:.1f} {self.rating}" if self.score is not None else self.rating


@dataclass(frozen=True)
class Advisory:
    """One OSV record, reduced to what the audit reports."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    withdrawn: str | None
    affected: tuple[Affected, ...]
    severity: tuple[Severity, ...]
    source: str

    def affects(self, name: NormalizedName, version: Version) -> bool:
        """Whether this (not withdrawn) advisory affects ``name==version``."""
        return self.withdrawn is None and any(
            a.name == name and a.contains(version) for a in self.affected
        )

    def fixed_versions(self, name: NormalizedName) -> tuple[str, ...]:
        """The ``fixed`` versions published for ``name``, ascending."""
        fixed = {
            event.version
            for a in self.affected
            if a.name == name
            for r in a.ranges
            for event in r
            if event.kind == "fixed" and event.version is not None
        }
        return tuple(str(v) for v in sorted(fixed))

    def worst_severity(self) -> Severity | None:
        """The highest-scored severity (or the first one when none can be scored)."""
        scored = [s for s in self.severity if s.score is not None]
        if scored:
            return max(scored, key=lambda s: s.score or 0.0)
        return self.severity[0] if self.severity else None


def in_range(version: Version, events: tuple[Event, ...]) -> bool:
    """The OSV evaluation of one range: walk the events in version order.

    ``introduced`` at or below the version opens the range; ``fixed`` and ``limit`` at
    or below it close it; ``last_affected`` strictly below it closes it. Pre-releases
    order as PEP 440 says (``2.0.6rc1`` is before ``2.0.6``, so still affected).
    """
    affected = False
    for event in sorted(events, key=Event.sort_key):
        if event.kind == "introduced":
            if event.version is None or version >= event.version:
                affected = True
        elif event.version is not None and (
            (event.kind in {"fixed", "limit"} and version >= event.version)
            or (event.kind == "last_affected" and version > event.version)
        ):
            affected = False
    return affected


def score(kind: str, vector: str) -> Severity:
    """Score a CVSS vector with the ``cvss`` package; other kinds keep their text."""
    calculator = _CVSS.get(kind)
    if calculator is None:
        return Severity(kind, vector, None, vector or "unknown")
    try:
        if kind == "CVSS_V4":
            v4 = CVSS4(vector)
            return Severity(kind, vector, float(v4.base_score), str(v4.severity))
        if kind == "CVSS_V3":
            v3 = CVSS3(vector)
            return Severity(kind, vector, float(v3.scores()[0]), str(v3.severities()[0]))
        v2 = CVSS2(vector)
        return Severity(kind, vector, float(v2.scores()[0]), str(v2.severities()[0]))
    except (CVSSError, ValueError, KeyError, IndexError):
        log.debug("unscorable %s vector %r", kind, vector)
        return Severity(kind, vector, None, "unscorable vector")


def _version(raw: object, where: str) -> Version | None:
    if raw == "0":
        return None
    if not isinstance(raw, str):
        raise MalformedRecordError(f"{where}: range event version {raw!r} is not a string")
    try:
        return Version(raw)
    except InvalidVersion:
        raise MalformedRecordError(f"{where}: range event version {raw!r} is not PEP 440") from None


def _events(raw_range: Mapping[str, Any], where: str) -> tuple[Event, ...]:
    raw_events = raw_range.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise MalformedRecordError(f"{where}: a range needs a non-empty events list")
    events: list[Event] = []
    for raw in raw_events:
        if not isinstance(raw, dict) or len(raw) != 1:
            raise MalformedRecordError(f"{where}: an event must have exactly one key, got {raw!r}")
        ((kind, value),) = raw.items()
        if kind not in EVENT_KINDS:
            raise MalformedRecordError(f"{where}: unknown range event {kind!r}")
        version = _version(value, where)
        if version is None and kind != "introduced":
            raise MalformedRecordError(f'{where}: only "introduced" may be "0"')
        events.append(Event(kind, version))
    return tuple(events)


def _affected(raw: object, where: str) -> Affected | None:
    if not isinstance(raw, dict):
        raise MalformedRecordError(f"{where}: an affected entry must be a mapping")
    package = raw.get("package")
    if not isinstance(package, dict) or not isinstance(package.get("name"), str):
        raise MalformedRecordError(f"{where}: affected entry without package.name")
    if package.get("ecosystem") != ECOSYSTEM:
        return None
    ranges: list[tuple[Event, ...]] = []
    for raw_range in raw.get("ranges") or []:
        if not isinstance(raw_range, dict):
            raise MalformedRecordError(f"{where}: a range must be a mapping")
        if raw_range.get("type") == "ECOSYSTEM":
            ranges.append(_events(raw_range, where))
    versions: set[Version] = set()
    raw_versions = raw.get("versions") or []
    if not isinstance(raw_versions, list):
        raise MalformedRecordError(f"{where}: versions must be a list")
    for item in raw_versions:
        # Legacy PyPI versions that are not PEP 440 can never equal a locked pin.
        if isinstance(item, str):
            try:
                versions.add(Version(item))
            except InvalidVersion:
                log.debug("%s: skipping non-PEP 440 version %r", where, item)
    return Affected(canonicalize_name(package["name"]), tuple(ranges), frozenset(versions))


def _str_list(raw: object, key: str, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise MalformedRecordError(f"{where}: {key} must be a list of strings")
    return tuple(raw)


def _severities(raw: object, where: str) -> tuple[Severity, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise MalformedRecordError(f"{where}: severity must be a list")
    out: list[Severity] = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("score"), str):
            raise MalformedRecordError(f"{where}: a severity needs a type and a score string")
        out.append(score(str(entry.get("type", "")), entry["score"]))
    return tuple(out)


def parse_record(data: object, source: str) -> Advisory:
    """Validate and reduce one decoded OSV record; ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise MalformedRecordError(f"{source}: not an OSV record (expected a mapping)")
    record_id = data.get("id")
    if not isinstance(record_id, str) or not record_id:
        raise MalformedRecordError(f"{source}: record has no id")
    raw_affected = data.get("affected") or []
    if not isinstance(raw_affected, list):
        raise MalformedRecordError(f"{source}: affected must be a list")
    affected = tuple(a for a in (_affected(r, source) for r in raw_affected) if a is not None)
    withdrawn = data.get("withdrawn")
    severity = _severities(data.get("severity"), source)
    db_specific = data.get("database_specific")
    if (
        not severity
        and isinstance(db_specific, dict)
        and isinstance(db_specific.get("severity"), str)
    ):
        severity = (Severity("database_specific", "", None, db_specific["severity"]),)
    summary = data.get("summary") or data.get("details") or ""
    return Advisory(
        id=record_id,
        aliases=_str_list(data.get("aliases"), "aliases", source),
        summary=" ".join(str(summary).split())[:160],
        withdrawn=None if withdrawn in (None, "") else str(withdrawn),
        affected=affected,
        severity=severity,
        source=source,
    )
