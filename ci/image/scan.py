"""``python -m ci.image scan``: vulnerabilities and hygiene of the built image.

- Advisories: the image SBOM's wheels are matched with
  ``ci.supply_chain.advisories.osv`` (PEP 440) and its
  .debs with a Debian matcher here (OSV ``Debian`` / ``Debian:12`` records name *source*
  packages; versions ordered by python-debian), over the same OSV database option as
  the audit (``--db``, ``BOT4_ADVISORY_DB``, else the committed PyPA snapshot).
- Pending security updates: a locked .deb older than the newest version in a
  ``*-security`` suite of the apt indexes on this machine.
- Hygiene, over every layer: non-root user, no setuid/setgid files, no world-writable
  paths (sticky directories such as /tmp aside), no private keys or cloud credentials,
  no package manager.

Severity comes from CVSS vectors (``cvss``); findings at or above the policy's
threshold (HIGH by default) fail unless ignored with a reason and an expiry date.
Output: a table, and optionally JSON and SARIF 2.1.0 (GitHub code scanning).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ci import policy
from ci.errors import GateError
from ci.image import apt_index, lock_format
from ci.image.apt_index import Archive, compare
from ci.image.bundle import read_image
from ci.image.errors import ImageError
from ci.image.tarball import Entry, read_tar
from ci.supply_chain.advisories.database import decode, iter_records
from ci.supply_chain.advisories.osv import Severity, parse_record, score

SEVERITIES = ("NONE", "LOW", "MEDIUM", "HIGH", "CRITICAL")
POLICY_FILE = "ci/image/scan.toml"
AUDIT_POLICY = "ci/policy.toml"
DEFAULT_DB = "ci/advisories/pypa-advisory-db.zip"
PACKAGE_MANAGERS = (
    "usr/bin/dpkg",
    "usr/bin/apt",
    "usr/bin/apt-get",
    "usr/bin/rpm",
    "sbin/apk",
    "usr/bin/pip",
    "usr/bin/pip3",
    "usr/local/bin/pip",
    "usr/local/bin/pip3",
    "*/dist-packages/pip/__init__.py",
    "*/site-packages/pip/__init__.py",
    "usr/lib/python3.*/ensurepip/__init__.py",
)
SECRETS = (
    (
        re.compile(
            rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"
            rb"\r?\n[A-Za-z0-9+/=\r\n]{64}"
        ),
        "a private key",
    ),
    (re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"), "an AWS access key id"),
    (re.compile(rb"gh[pousr]_[A-Za-z0-9]{36}"), "a GitHub token"),
)
SECRET_MAX_BYTES = 8 << 20


@dataclass(frozen=True)
class Finding:
    """One problem: an advisory, a pending update, or a hygiene rule."""

    rule: str
    subject: str
    severity: str
    message: str
    score: float | None = None
    ignored: str = ""
    fixed: str = ""
    location: str = ""

    def fails(self, threshold: str) -> bool:
        """At or above the threshold and not ignored."""
        return not self.ignored and rank(self.severity) >= rank(threshold)


def rank(severity: str) -> int:
    """Order of severities; unknown ones rank below LOW (reported, never failing)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass(frozen=True)
class Ignore:
    """A reviewed finding (advisory id, alias or rule:subject) allowed until expiry."""

    id: str
    reason: str
    expires: dt.date


@dataclass(frozen=True)
class ScanPolicy:
    """``[image-scan]`` of ``ci/image/scan.toml``."""

    fail_on: str = "HIGH"
    pending_security: str = "HIGH"
    ignores: tuple[Ignore, ...] = field(default=())


def load_policy(path: Path) -> ScanPolicy:
    """Read the scan policy; a missing file means the defaults."""
    if not path.exists():
        return ScanPolicy()
    table = policy.load_section(path, "image-scan")
    where = f"{path} [image-scan]"
    fail_on = str(table.get("fail-on", "HIGH")).upper()
    pending = str(table.get("pending-security", "HIGH")).upper()
    for key, value in (("fail-on", fail_on), ("pending-security", pending)):
        if value not in SEVERITIES:
            raise ImageError(f"{where}: {key} must be one of {', '.join(SEVERITIES)}")
    ignores = tuple(
        Ignore(
            policy.text(e, "id", where),
            policy.text(e, "reason", where),
            policy.date(e, "expires", where),
        )
        for e in policy.entries(table, "ignore", where)
    )
    return ScanPolicy(fail_on, pending, ignores)


# --- advisories -------------------------------------------------------------------------


@dataclass(frozen=True)
class DebAdvisory:
    """The Debian part of one OSV record."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    package: str
    release: str
    ranges: tuple[tuple[tuple[str, str], ...], ...]
    versions: frozenset[str]
    severity: Severity | None

    def affects(self, source: str, version: str, release: str) -> bool:
        """Whether source package ``source`` at ``version`` on ``release`` is affected."""
        if source != self.package or (self.release and self.release != release):
            return False
        return version in self.versions or any(_in_range(version, r) for r in self.ranges)

    def fixed(self) -> str:
        """The fixed versions named by the record."""
        return ", ".join(sorted({v for r in self.ranges for k, v in r if k == "fixed"}))


def _event_order(a: tuple[str, str], b: tuple[str, str]) -> int:
    if (a[1] == "0") != (b[1] == "0"):
        return -1 if a[1] == "0" else 1
    return 0 if a[1] == "0" else compare(a[1], b[1])


def _in_range(version: str, events: tuple[tuple[str, str], ...]) -> bool:
    """OSV range evaluation with Debian version ordering ("0" is the beginning)."""
    affected = False
    for kind, at in sorted(events, key=functools.cmp_to_key(_event_order)):
        if kind == "introduced":
            if at == "0" or compare(version, at) >= 0:
                affected = True
        elif (kind in {"fixed", "limit"} and compare(version, at) >= 0) or (
            kind == "last_affected" and compare(version, at) > 0
        ):
            affected = False
    return affected


def debian_advisories(data: Mapping[str, Any], source: str) -> list[DebAdvisory]:
    """The Debian-ecosystem entries of a decoded OSV record."""
    out: list[DebAdvisory] = []
    if data.get("withdrawn"):
        return out
    severities = [
        score(str(s.get("type", "")), str(s.get("score", "")))
        for s in data.get("severity") or []
        if isinstance(s, dict)
    ]
    scored = [s for s in severities if s.score is not None]
    worst = max(scored, key=lambda s: s.score or 0.0) if scored else None
    for affected in data.get("affected") or []:
        if not isinstance(affected, dict):
            raise ImageError(f"{source}: an affected entry must be a mapping")
        package = affected.get("package") or {}
        ecosystem = str(package.get("ecosystem", ""))
        if not ecosystem.startswith("Debian"):
            continue
        ranges = []
        for raw in affected.get("ranges") or []:
            if raw.get("type") != "ECOSYSTEM":
                continue
            events = tuple((k, str(v)) for ev in raw.get("events", []) for k, v in ev.items())
            ranges.append(events)
        local = affected.get("ecosystem_specific") or {}
        sev = worst
        if sev is None and isinstance(local, dict) and isinstance(local.get("urgency"), str):
            sev = Severity("debian-urgency", "", None, _urgency(local["urgency"]))
        out.append(
            DebAdvisory(
                id=str(data.get("id", source)),
                aliases=tuple(str(a) for a in data.get("aliases") or []),
                summary=" ".join(str(data.get("summary") or data.get("details") or "").split())[
                    :160
                ],
                package=str(package.get("name", "")),
                release=ecosystem.partition(":")[2],
                ranges=tuple(ranges),
                versions=frozenset(str(v) for v in affected.get("versions") or []),
                severity=sev,
            )
        )
    return out


def _urgency(urgency: str) -> str:
    return {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "unimportant": "NONE"}.get(
        urgency.split(maxsplit=1)[0].lower(), "unknown"
    )


@dataclass(frozen=True)
class Component:
    """What the scan needs from one SBOM component."""

    kind: str
    name: str
    version: str
    source: str
    source_version: str
    suite: str


def components(bom: Mapping[str, Any]) -> list[Component]:
    """The deb and pypi components of an SBOM."""
    out: list[Component] = []
    for comp in bom.get("components", []):
        purl = str(comp.get("purl", ""))
        props = {p["name"]: p["value"] for p in comp.get("properties", [])}
        kind = (
            "deb"
            if purl.startswith("pkg:deb/")
            else "pypi"
            if purl.startswith("pkg:pypi/")
            else "other"
        )
        out.append(
            Component(
                kind,
                str(comp["name"]),
                str(comp["version"]),
                props.get("debian:source", str(comp["name"])),
                props.get("debian:source-version", str(comp["version"])),
                props.get("debian:suite", ""),
            )
        )
    return out


def _severity(sev: Severity | None) -> tuple[str, float | None]:
    if sev is None:
        return "unknown", None
    return sev.rating.upper(), sev.score


def match_advisories(
    comps: Sequence[Component], db_paths: Sequence[Path], release: str
) -> list[Finding]:
    """Every component an advisory in the databases affects."""
    findings: list[Finding] = []
    debs = [c for c in comps if c.kind == "deb"]
    wheels = {canonicalize_name(c.name): c for c in comps if c.kind == "pypi"}
    for db in db_paths:
        for name, raw in iter_records(db):
            data = decode(name, raw)
            if not isinstance(data, dict):
                continue
            where = f"{db.name}/{name}"
            for adv in debian_advisories(data, where):
                for comp in debs:
                    if adv.affects(comp.source, comp.source_version, release):
                        sev, cvss = _severity(adv.severity)
                        findings.append(
                            Finding(
                                "advisory",
                                f"{comp.name} {comp.version}",
                                sev,
                                f"{adv.id}{_aliases(adv.aliases)}: {adv.summary}",
                                cvss,
                                fixed=adv.fixed(),
                                location=where,
                            )
                        )
            if not any(
                isinstance(a, dict) and (a.get("package") or {}).get("ecosystem") == "PyPI"
                for a in data.get("affected") or []
            ):
                continue
            try:
                pyadv = parse_record(data, where)
            except GateError:  # a malformed record (ci.supply_chain.advisories.osv names the file)
                continue
            for cname, comp in wheels.items():
                try:
                    version = Version(comp.version)
                except InvalidVersion:
                    continue
                if pyadv.affects(cname, version):
                    sev, cvss = _severity(pyadv.worst_severity())
                    findings.append(
                        Finding(
                            "advisory",
                            f"{comp.name} {comp.version}",
                            sev,
                            f"{pyadv.id}{_aliases(pyadv.aliases)}: {pyadv.summary}",
                            cvss,
                            fixed=", ".join(pyadv.fixed_versions(cname)),
                            location=where,
                        )
                    )
    return findings


def _aliases(aliases: Sequence[str]) -> str:
    return f" ({', '.join(aliases)})" if aliases else ""


def pending_updates(comps: Sequence[Component], archive: Archive, severity: str) -> list[Finding]:
    """Locked .debs that a ``*-security`` suite has a newer version of."""
    findings = []
    for comp in comps:
        if comp.kind != "deb":
            continue
        newer = [
            p
            for p in archive.versions.get(comp.name, ())
            if p.suite.endswith("-security") and compare(p.version, comp.version) > 0
        ]
        if newer:
            findings.append(
                Finding(
                    "pending-security-update",
                    f"{comp.name} {comp.version}",
                    severity,
                    # image-lock alone leaves the built image and its SBOM behind:
                    # refresh re-locks, rebuilds and rewrites both SBOMs in one step.
                    f"{newer[0].suite} has {newer[0].version}; run scripts/gate -s refresh",
                    fixed=newer[0].version,
                )
            )
    return findings


# --- hygiene ---------------------------------------------------------------------------


def hygiene(layers: Sequence[tuple[str, Sequence[Entry]]], user: str) -> list[Finding]:
    """Image hygiene over every layer's entries (``(layer digest, entries)``)."""
    findings: list[Finding] = []
    name = user.partition(":")[0]
    if name in {"", "0", "root"}:
        findings.append(
            Finding(
                "root-user",
                "config.User",
                "HIGH",
                f"the image runs as {user or 'root (unset)'}; set a non-root user",
            )
        )
    for digest, entries in layers:
        at = digest[:19]
        for entry in entries:
            path = "/" + entry.path
            if entry.kind == "file" and entry.mode & 0o6000:
                bits = "setuid" if entry.mode & 0o4000 else "setgid"
                findings.append(
                    Finding(
                        bits,
                        path,
                        "HIGH",
                        f"{bits} file (mode {entry.mode & 0o7777:04o})",
                        location=at,
                    )
                )
            if (
                entry.kind in {"file", "dir"}
                and entry.mode & 0o002
                and not (entry.kind == "dir" and entry.mode & 0o1000)
            ):
                findings.append(
                    Finding(
                        "world-writable",
                        path,
                        "HIGH",
                        f"world-writable {entry.kind} (mode {entry.mode & 0o7777:04o})",
                        location=at,
                    )
                )
            if any(fnmatch.fnmatchcase(entry.path, p) for p in PACKAGE_MANAGERS):
                findings.append(
                    Finding(
                        "package-manager",
                        path,
                        "HIGH",
                        "a package manager is in the image",
                        location=at,
                    )
                )
            if entry.kind == "file" and len(entry.data) <= SECRET_MAX_BYTES:
                for pattern, what in SECRETS:
                    if pattern.search(entry.data):
                        findings.append(
                            Finding("secret", path, "CRITICAL", f"contains {what}", location=at)
                        )
    return findings


def layout_layers(layout: Path) -> tuple[list[tuple[str, list[Entry]]], str]:
    """Every layer's entries and the configured user of the image in ``layout``."""
    manifest, config = read_image(layout)
    layers = []
    for layer in manifest["layers"]:
        blob = (layout / "blobs" / "sha256" / layer["digest"].removeprefix("sha256:")).read_bytes()
        layers.append((str(layer["digest"]), read_tar(blob)))
    return layers, str(config.get("config", {}).get("User", ""))


# --- verdict and output ----------------------------------------------------------------


def apply_ignores(
    findings: Sequence[Finding], ignores: Sequence[Ignore], today: dt.date
) -> tuple[list[Finding], list[str]]:
    """Mark ignored findings; expired ignores are problems of their own."""
    problems = [
        f"ignore of {i.id} expired on {i.expires} ({i.reason}); fix it or renew the ignore"
        for i in ignores
        if i.expires < today
    ]
    active = {i.id: i for i in ignores if i.expires >= today}
    out = []
    for finding in findings:
        ids = [
            finding.message.split(":", 1)[0].split(" ", 1)[0],
            f"{finding.rule}:{finding.subject}",
        ]
        ids += re.findall(r"[A-Z]+-[\w-]+", finding.message.split(":", 1)[0])
        hit = next((active[i] for i in ids if i in active), None)
        out.append(
            replace(finding, ignored=f"until {hit.expires}: {hit.reason}") if hit else finding
        )
    return out, problems


def table(findings: Sequence[Finding], threshold: str) -> str:
    """A fixed-width table, worst first."""
    if not findings:
        return "image scan: no findings"
    rows = sorted(findings, key=lambda f: (-rank(f.severity), f.rule, f.subject))
    lines = [f"{'severity':<9} {'rule':<24} {'subject':<44} detail", "-" * 100]
    for f in rows:
        verdict = "" if f.fails(threshold) else " (ignored " + f.ignored + ")" if f.ignored else ""
        score_text = f" {f.score:.1f}" if f.score is not None else ""
        fixed = f" — fixed in {f.fixed}" if f.fixed else ""
        lines.append(
            f"{f.severity + score_text:<9} {f.rule:<24} {f.subject:<44} {f.message}{fixed}{verdict}"
        )
    return "\n".join(lines)


def to_json(findings: Sequence[Finding], threshold: str) -> str:
    """Findings as JSON (sorted, stable)."""
    rows = [
        dict(vars(f), fails=f.fails(threshold))
        for f in sorted(findings, key=lambda f: (f.rule, f.subject, f.message))
    ]
    return json.dumps({"threshold": threshold, "findings": rows}, indent=2, sort_keys=True) + "\n"


_SARIF_LEVEL = {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note"}


def to_sarif(findings: Sequence[Finding], artifact: str) -> str:
    """SARIF 2.1.0 for GitHub code scanning: one rule per finding kind/advisory."""
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for f in sorted(findings, key=lambda f: (f.rule, f.subject, f.message)):
        rule_id = f.message.split(":", 1)[0].split(" ", 1)[0] if f.rule == "advisory" else f.rule
        rules.setdefault(
            rule_id,
            {
                "id": rule_id,
                "shortDescription": {"text": f.message[:120]},
                "properties": {
                    "security-severity": f"{f.score:.1f}" if f.score is not None else "0.0"
                },
            },
        )
        results.append(
            {
                "ruleId": rule_id,
                "level": _SARIF_LEVEL.get(f.severity, "note"),
                "message": {"text": f"{f.subject}: {f.message}"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": artifact}}}],
                **(
                    {"suppressions": [{"kind": "external", "justification": f.ignored}]}
                    if f.ignored
                    else {}
                ),
            }
        )
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "ci.image.scan",
                        "informationUri": "https://github.com/",
                        "rules": sorted(rules.values(), key=lambda r: r["id"]),
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def scan(
    bom: Mapping[str, Any],
    layers: Sequence[tuple[str, Sequence[Entry]]],
    user: str,
    db_paths: Iterable[Path],
    release: str,
    scan_policy: ScanPolicy,
    archive: Archive | None,
    today: dt.date,
) -> tuple[list[Finding], list[str]]:
    """All findings (ignores applied) and policy problems (expired ignores)."""
    comps = components(bom)
    findings = match_advisories(comps, list(db_paths), release)
    if archive is not None:
        findings += pending_updates(comps, archive, scan_policy.pending_security)
    findings += hygiene(layers, user)
    return apply_ignores(findings, scan_policy.ignores, today)


# --- the one entry point: the gate's ``scan`` and ``ci.release deploy`` both call this ---


@dataclass(frozen=True)
class Report:
    """The verdict of one image scan."""

    findings: list[Finding]
    problems: list[str]
    threshold: str

    @property
    def failing(self) -> list[Finding]:
        """Findings at or above the threshold, not ignored."""
        return [f for f in self.findings if f.fails(self.threshold)]

    @property
    def passed(self) -> bool:
        """No failing finding and no policy problem (an expired ignore)."""
        return not self.failing and not self.problems

    def summary(self) -> str:
        """One line: why it failed, or how many findings stayed below the threshold."""
        if self.problems:
            return f"image scan: {self.problems[0]}"
        failing = self.failing
        if failing:
            worst = sorted(failing, key=lambda f: (-rank(f.severity), f.rule, f.subject))[0]
            return (
                f"image scan: {len(failing)} finding(s) at or above {self.threshold}, e.g. "
                f"{worst.severity} {worst.subject}: {worst.message}"
            )
        return (
            f"image scan: passed ({len(self.findings)} finding(s) below {self.threshold} "
            "or ignored)"
        )


def default_dbs(root: Path, environ: Mapping[str, str]) -> list[Path]:
    """``$BOT4_ADVISORY_DB``, else the audit's database (``[advisories] db`` of
    ``ci/policy.toml``: the committed snapshot)."""
    if environ.get("BOT4_ADVISORY_DB"):
        return [Path(environ["BOT4_ADVISORY_DB"])]
    try:
        db = policy.load_section(root / AUDIT_POLICY, "advisories").get("db", DEFAULT_DB)
    except GateError:
        db = DEFAULT_DB
    return [root / str(db)]


def scan_image(
    root: Path,
    layout: Path,
    bom: Mapping[str, Any],
    today: dt.date,
    *,
    environ: Mapping[str, str],
    dbs: Sequence[Path] = (),
    policy_file: Path | None = None,
    index: Sequence[str] = (),
    pending: bool = True,
) -> Report:
    """Scan the image in ``layout`` described by ``bom`` exactly as the gate does.

    The Debian release, architecture and codename come from ``ci/image/image.toml``;
    pending security updates are looked up in apt's indexes (or ``index``: ``SUITE=PATH``
    Packages files); a missing advisory database is an error, never a silent pass.
    """
    spec = lock_format.read_spec(root / lock_format.SPEC_FILE)
    chosen = [d if d.is_absolute() else root / d for d in dbs] or default_dbs(root, environ)
    missing = [str(d) for d in chosen if not d.exists()]
    if missing:
        raise ImageError(f"advisory database {missing[0]} not found")
    try:
        comps = components(bom)
    except (KeyError, TypeError, AttributeError):
        raise ImageError("the image SBOM is not CycloneDX JSON") from None
    archive = None
    if pending and any(c.kind == "deb" for c in comps):  # no .deb: nothing can be pending
        targets = (
            apt_index.local_targets(index, spec.architecture, spec.codename)
            if index
            else apt_index.index_targets(spec.architecture, spec.codename)
        )
        archive = apt_index.load_archive(targets)
    path = policy_file or Path(POLICY_FILE)
    scan_policy = load_policy(path if path.is_absolute() else root / path)
    layers, user = layout_layers(layout)
    findings, problems = scan(bom, layers, user, chosen, spec.release, scan_policy, archive, today)
    return Report(findings, problems, scan_policy.fail_on)
