"""``python -m ci audit``: every locked pin against advisories, ignores and the index.

Three independent checks, each able to fail the gate on its own:

1. the offline OSV database (the committed PyPA snapshot, or ``--db`` /
   ``BOT4_ADVISORY_DB``), matched by canonical name and exact version;
2. pip-audit online (``--online auto|require|never``), always strict — a package it
   could not audit is a failure, never a pass (``auto`` first probes with one pin and
   falls back to the offline result, with a warning, when the service cannot answer);
3. the configured index's simple API: a yanked pin is denied (``yanked = "deny"``), a
   pin whose hashes no configured index serves is denied, PEP 792 archived/deprecated
   projects are warned about and quarantined ones denied.

Ignores live in ``[advisories]`` of the policy file with an id, a reason and an expiry
date; an expired ignore fails the gate, an unused one is a warning. Paths in the policy
(``db``, ``locks``) are relative to the policy file; without ``db`` the snapshot shipped
in this package is used, so any project can audit its own locks with ``--lock``.

The installer packages (pip, setuptools, wheel) of the environment that installs the
locks are in no lock: ``--venv`` (repeatable) adds the ones found in each venv to the
offline audit, each finding marked as an installer package of that venv; without
``--venv`` every report says they were not audited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from ci import policy
from ci.errors import GateError
from ci.gate import toolchain, venvs
from ci.gate.requirements import Pin, read_lock
from ci.supply_chain import advisories
from ci.supply_chain.advisories import online as online_audit

if TYPE_CHECKING:  # types only: the DB loader (yaml, cvss) is imported when an audit runs
    from ci.supply_chain.advisories.database import Database
    from ci.supply_chain.advisories.osv import Advisory
    from ci.supply_chain.index import ProjectPage

# The PyPA advisory snapshot shipped in this package (ci/advisories/).
DEFAULT_DB = Path(__file__).resolve().parents[2] / "advisories" / "pypa-advisory-db.zip"
DB_ENV = advisories.DB_ENV
ONLINE_MODES = advisories.ONLINE_MODES
SCOPE_NOTE = (
    "scope: the locked pins only; the installer packages of the environment that installs "
    "them (pip, setuptools) are not audited (pass --venv to add them), and advisories only "
    "in GitHub's database (not in the PyPA one) are found only by the online audit"
)
SCOPE_NOTE_VENV = (
    "scope: the locked pins and the installer packages (pip, setuptools, wheel) of {venv}; "
    "advisories only in GitHub's database (not in the PyPA one) are found only by the "
    "online audit, which covers the locked pins alone"
)
# What installs the locks but is never in them: audited from the venv with --venv.
INSTALLERS = (canonicalize_name("pip"), canonicalize_name("setuptools"), canonicalize_name("wheel"))


@dataclass(frozen=True)
class Ignore:
    """A reviewed advisory that may stay until ``expires``."""

    id: str
    reason: str
    expires: dt.date


@dataclass(frozen=True)
class Acknowledged:
    """A known warning (the text it contains) accepted until ``expires``, and why.

    Quiet when green, never silent: an acknowledged warning prints as one dated line, an
    expired acknowledgement turns its warnings into failures, an unused one is a warning.
    """

    warning: str
    reason: str
    expires: dt.date


@dataclass(frozen=True)
class AuditPolicy:
    """``[advisories]`` of the policy file."""

    db: Path = DEFAULT_DB
    max_age_days: int = 30
    yanked: str = "deny"
    locks: tuple[Path, ...] = ()
    ignores: tuple[Ignore, ...] = ()
    acknowledged: tuple[Acknowledged, ...] = ()


def load_policy(path: Path) -> AuditPolicy:
    """Read and validate ``[advisories]``; its paths are relative to the policy file."""
    table = policy.load_section(path, "advisories")
    where = f"{path} [advisories]"
    ignores: list[Ignore] = []
    for n, entry in enumerate(policy.entries(table, "ignore", where), start=1):
        here = f"{where} ignore #{n}"
        ignores.append(
            Ignore(
                policy.text(entry, "id", here),
                policy.text(entry, "reason", here),
                policy.date(entry, "expires", here),
            )
        )
    acknowledged: list[Acknowledged] = []
    for n, entry in enumerate(policy.entries(table, "acknowledge", where), start=1):
        here = f"{where} acknowledge #{n}"
        acknowledged.append(
            Acknowledged(
                policy.text(entry, "warning", here),
                policy.text(entry, "reason", here),
                policy.date(entry, "expires", here),
            )
        )
    yanked = table.get("yanked", "deny")
    if yanked not in {"deny", "warn"}:
        raise GateError(f'{where}: yanked must be "deny" or "warn", got {yanked!r}')
    max_age = table.get("max-age-days", 30)
    if not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 1:
        raise GateError(f"{where}: max-age-days must be a positive integer")
    db = table.get("db")
    if db is not None and not isinstance(db, str):
        raise GateError(f"{where}: db must be a path string")
    return AuditPolicy(
        _beside(path, db) if db else DEFAULT_DB,
        max_age,
        yanked,
        tuple(_beside(path, p) for p in policy.strings(table, "locks", where)),
        tuple(ignores),
        tuple(acknowledged),
    )


def _beside(policy_file: Path, relative: str) -> Path:
    """A path written in a policy file, resolved against that file's directory."""
    return Path(os.path.normpath(policy_file.parent / relative))


def lock_paths(given: Sequence[Path], configured: Sequence[Path]) -> list[Path]:
    """The locks to audit: ``--lock`` as given, else the policy's; none is an error."""
    locks = list(given) or list(configured)
    if not locks:
        raise GateError("no locks to audit: pass --lock FILE (repeatable)")
    return locks


def collect_pins(locks: Iterable[Path]) -> dict[tuple[NormalizedName, str], Pin]:
    """Unique pins by (name, version) over several locks (markers ignored: audit them all)."""
    pins: dict[tuple[NormalizedName, str], Pin] = {}
    for lock in locks:
        for pin in read_lock(lock):
            pins.setdefault((pin.name, str(pin.version)), pin)
    return dict(sorted(pins.items()))


def db_path(root: Path, cli_db: str | None, configured: Path, environ: Mapping[str, str]) -> Path:
    """--db, then $BOT4_ADVISORY_DB (both relative to ``root``), then the policy's."""
    chosen = cli_db or environ.get(DB_ENV)
    if not chosen:
        return configured
    path = Path(chosen)
    return path if path.is_absolute() else root / path


@dataclass(frozen=True)
class Finding:
    """A pin an advisory affects, and the ignore that covers it (if any)."""

    name: NormalizedName
    version: str
    advisory: Advisory
    ignore: Ignore | None = None
    origin: str = ""  # where an unlocked package was found, e.g. "installer package in .venv"

    def render(self) -> str:
        """One report line."""
        adv = self.advisory
        aliases = f" ({', '.join(adv.aliases)})" if adv.aliases else ""
        severity = adv.worst_severity()
        fixed = adv.fixed_versions(self.name)
        origin = f" [{self.origin}]" if self.origin else ""
        parts = [
            f"{self.name} {self.version}{origin}: {adv.id}{aliases}",
            f"severity {severity}" if severity else "severity unknown",
            f"fixed in {', '.join(fixed)}" if fixed else "no fixed version",
        ]
        if self.ignore is not None:
            parts.append(f"IGNORED until {self.ignore.expires}: {self.ignore.reason}")
        elif adv.summary:
            parts.append(adv.summary)
        return " — ".join(parts)


def match(pins: Iterable[Pin], db: Database, origin: str = "") -> list[Finding]:
    """Every (pin, advisory) pair where the advisory affects the pinned version."""
    return [
        Finding(pin.name, str(pin.version), adv, origin=origin)
        for pin in pins
        for adv in db.for_package(pin.name)
        if adv.affects(pin.name, pin.version)
    ]


@dataclass(frozen=True)
class Installers:
    """The installer packages found in a venv (as unhashed pins) and how to name them."""

    venv: str
    pins: tuple[Pin, ...]

    @property
    def origin(self) -> str:
        """The mark each of their findings carries."""
        return f"installer package in {self.venv}, not in the locks"


def installer_pins(venv: Path, shown: str, locked: Iterable[NormalizedName]) -> Installers:
    """pip, setuptools and wheel as installed in ``venv``, except those a lock pins (those
    are audited as pins): what installed the locks, which no lock holds."""
    site = venvs.environment_from_venv(shown, "audit", venv).site_packages
    present = toolchain.installed(site)
    skip = set(locked)
    pins = []
    for name in INSTALLERS:
        if name in present and name not in skip:
            try:
                version = Version(present[name])
            except InvalidVersion:
                raise GateError(
                    f"{shown}: {name} has an invalid version {present[name]!r}"
                ) from None
            pins.append(Pin(name, version, (), None, 0))
    return Installers(shown, tuple(pins))


def apply_ignores(
    findings: Sequence[Finding], ignores: Sequence[Ignore], today: dt.date
) -> tuple[list[Finding], list[str], list[str]]:
    """Mark ignored findings; return them, failures (expired ignores), warnings (unused)."""
    failures = [
        f"ignore of {i.id} expired on {i.expires} ({i.reason}): upgrade the package or "
        "renew the ignore with a new reason and date in the policy file"
        for i in ignores
        if i.expires < today
    ]
    active = {i.id: i for i in ignores if i.expires >= today}
    used: set[str] = set()
    marked: list[Finding] = []
    for finding in findings:
        ids = (finding.advisory.id, *finding.advisory.aliases)
        hit = next((active[i] for i in ids if i in active), None)
        if hit is not None:
            used.add(hit.id)
        marked.append(dataclasses.replace(finding, ignore=hit))
    warnings = [
        f"ignore of {i} matches no finding; remove it from the policy file"
        for i in sorted(set(active) - used)
    ]
    return marked, failures, warnings


@dataclass(frozen=True)
class IndexVerdict:
    """What the index says about one pin."""

    name: NormalizedName
    version: str
    failures: tuple[str, ...]
    warnings: tuple[str, ...]


def check_index(pin: Pin, pages_: Sequence[ProjectPage], yanked: str) -> IndexVerdict:
    """yanked = deny, served-by-a-configured-index, and PEP 792 project status for one pin."""
    failures: list[str] = []
    warnings: list[str] = []
    where = f"{pin.name} {pin.version}"
    ours = {h.removeprefix("sha256:") for h in pin.hashes}
    files = [(page, f) for page in pages_ if page.found for f in page.files_for(pin.version)]
    if not files:
        failures.append(f"{where}: no configured index serves this release (dependency confusion?)")
    hashed = [f for _, f in files if f.sha256 is not None]
    if hashed and not any(f.sha256 in ours for f in hashed):
        failures.append(f"{where}: no file the index serves matches the lock's hashes")
    for page, file in files:
        if file.yanked is not None:
            reason = file.yanked or "no reason given"
            line = f"{where} is yanked on {page.index} ({file.filename}: {reason})"
            (failures if yanked == "deny" else warnings).append(line)
            break
    for page in pages_:
        status = (page.status or "active").lower()
        because = f": {page.status_reason}" if page.status_reason else ""
        if status == "quarantined":
            failures.append(f"{where}: project is quarantined on {page.index}{because}")
        elif status in {"archived", "deprecated"}:
            warnings.append(f"{where}: project is {status} on {page.index}{because}")
    return IndexVerdict(pin.name, str(pin.version), tuple(failures), tuple(warnings))


@dataclass
class Report:
    """What an audit run prints: information, warnings and failures, in order."""

    info: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The report as plain data for --json."""
        return {"info": self.info, "warnings": self.warnings, "failures": self.failures}


def offline(
    report: Report,
    pins: Sequence[Pin],
    db: Database,
    audit_policy: AuditPolicy,
    today: dt.date,
    installers: Sequence[Installers] = (),
) -> None:
    """Match the pins (and the venvs' installer packages) against the offline database and
    apply the ignores."""
    date = db.date.isoformat() if db.date else "unknown date"
    commit = f", commit {db.snapshot.commit[:12]}" if db.snapshot else ""
    report.info.append(
        f"advisory DB: {db.source} (snapshot of {date}{commit}; {db.records} records, "
        f"{db.withdrawn} withdrawn)"
    )
    report.warnings.extend(db.warnings)
    from ci.supply_chain.advisories.database import age_warning  # noqa: PLC0415 - see above

    stale = age_warning(db, today, audit_policy.max_age_days)
    if stale:
        report.warnings.append(stale)
    found = match(pins, db)
    for venv in installers:
        found += match(venv.pins, db, venv.origin)
    findings, expired, unused = apply_ignores(found, audit_policy.ignores, today)
    report.failures.extend(expired)
    report.warnings.extend(unused)
    for finding in findings:
        (report.info if finding.ignore else report.failures).append(finding.render())
    count = sum(len(venv.pins) for venv in installers)
    extra = f" and {count} installer packages" if installers else ""
    report.info.append(
        f"offline: {len(pins)} pins{extra} checked, "
        f"{sum(1 for f in findings if f.ignore is None)} vulnerable, "
        f"{sum(1 for f in findings if f.ignore is not None)} ignored"
    )


def acknowledge(report: Report, acknowledged: Sequence[Acknowledged], today: dt.date) -> None:
    """Fold the policy's acknowledged warnings into one dated line each (see Acknowledged)."""
    left: list[str] = []
    hits: dict[Acknowledged, int] = {}
    for warning in report.warnings:
        ack = next((a for a in acknowledged if a.warning in warning), None)
        if ack is None:
            left.append(warning)
        elif ack.expires < today:
            report.failures.append(
                f"{warning} (acknowledgement expired on {ack.expires}: fix it, or renew the "
                "acknowledgement with a new reason and date in the policy file)"
            )
        else:
            hits[ack] = hits.get(ack, 0) + 1
    for ack in acknowledged:
        if ack in hits:
            report.info.append(
                f"acknowledged until {ack.expires}: {hits[ack]} warning(s) containing "
                f"{ack.warning!r} — {ack.reason}"
            )
        elif not any(ack.warning in w for w in report.warnings):
            left.append(f"acknowledgement of {ack.warning!r} matches no warning; remove it")
    report.warnings[:] = left


def pin_line(pin: Pin) -> str:
    """The pin as a hashed requirement line (for a one-pin probe lock)."""
    return f"{pin.name}=={pin.version} " + " ".join(f"--hash={h}" for h in pin.hashes) + "\n"


def online(
    report: Report,
    mode: str,
    pip_audit: str,
    locks: Sequence[Path],
    probe: Pin,
    service: str,
    ignores: Sequence[Ignore],
    tmp: Path,
) -> None:
    """pip-audit, strictly; in ``auto`` a service that cannot answer falls back to offline."""
    if mode == "never":
        report.info.append("online: skipped (--online never)")
        return
    if mode == "auto":
        probe_lock = tmp / "probe.txt"
        probe_lock.write_text(pin_line(probe), encoding="utf-8")
        first = online_audit.run(pip_audit, [probe_lock], service)
        if not first.ok:
            why = first.error or "; ".join(f"{n}: {r}" for n, r in first.not_audited)
            report.warnings.append(
                f"online audit unavailable (pip-audit -s {service}: {why}); "
                "relying on the offline advisory DB"
            )
            return
    result = online_audit.run(pip_audit, locks, service)
    active = {i.id for i in ignores}
    for name, reason in result.not_audited:
        report.failures.append(f"online: {name} was not audited ({reason})")
    for vuln in result.vulns:
        if active & {vuln.id, *vuln.aliases}:
            report.info.append(f"online: {vuln.name} {vuln.version}: {vuln.id} (ignored)")
            continue
        fixed = ", ".join(vuln.fix_versions) or "no fixed version"
        report.failures.append(f"online: {vuln.name} {vuln.version}: {vuln.id} — fixed in {fixed}")
    if result.error:
        report.failures.append(f"online: {result.error}")
    if result.ok:
        report.info.append(f"online: pip-audit -s {service} --strict audited every pin: clean")


def index_checks(
    report: Report,
    pins: Sequence[Pin],
    found: Mapping[NormalizedName, Sequence[ProjectPage]],
    errors: Sequence[str],
    yanked: str,
    allow_unreachable: bool,
    indexes: Sequence[str],
) -> None:
    """Fold the simple-API results into the report."""
    report.info.append(
        f"index: {', '.join(indexes) or 'none configured'} (from pip's configuration)"
    )
    for error in errors:
        if allow_unreachable:
            report.warnings.append(f"{error} (ignored: --allow-unreachable-index)")
        else:
            report.failures.append(
                f"{error}; fix the network/pip configuration or pass --allow-unreachable-index"
            )
    if errors:
        return
    for pin in pins:
        verdict = check_index(pin, found.get(pin.name, ()), yanked)
        report.failures.extend(verdict.failures)
        report.warnings.extend(verdict.warnings)
    report.info.append(f"index: {len(pins)} pins checked for yanked releases and project status")
