"""The online half of the audit: pip-audit against the hashed locks, always ``--strict``.

pip-audit asks a vulnerability service (PyPI's JSON API or OSV) about each pin. When the
service cannot answer for a package, pip-audit *skips* it and, without ``--strict``,
still says "No known vulnerabilities found" — a false pass. Here a skipped package is a
failure: with ``--strict`` pip-audit exits 1 and names each one ("… could not be
audited"), and this module turns those lines into ``NotAudited`` results.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.errors import GateError
from ci.supply_chain import advisories

SERVICES = advisories.SERVICES
_NOT_AUDITED = re.compile(r"(?P<name>[A-Za-z0-9._-]+): (?P<reason>.*could not be audited.*)$")


@dataclass(frozen=True)
class OnlineVuln:
    """One vulnerability pip-audit reported."""

    name: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]


@dataclass(frozen=True)
class OnlineResult:
    """pip-audit's verdict, read strictly: audited nothing is not a pass."""

    service: str
    returncode: int
    vulns: tuple[OnlineVuln, ...]
    not_audited: tuple[tuple[str, str], ...]
    error: str | None

    @property
    def ok(self) -> bool:
        """Audited every package and found nothing."""
        return self.returncode == 0 and not self.vulns and not self.not_audited and not self.error


def command(pip_audit: str, locks: Sequence[Path], service: str, output: Path) -> list[str]:
    """The pip-audit invocation: hashed locks, no pip resolution, strict, JSON out."""
    argv = [pip_audit, "--strict", "--require-hashes", "--disable-pip", "--progress-spinner", "off"]
    for lock in locks:
        argv += ["-r", str(lock)]
    return [*argv, "-s", service, "-f", "json", "-o", str(output)]


def interpret(service: str, returncode: int, stderr: str, report: str | None) -> OnlineResult:
    """Read pip-audit's exit code, stderr and JSON report (absent when it aborted)."""
    not_audited: list[tuple[str, str]] = []
    for line in stderr.splitlines():
        match = _NOT_AUDITED.search(line)
        if match:
            not_audited.append((match["name"], match["reason"]))
    vulns: list[OnlineVuln] = []
    error: str | None = None
    if report:
        try:
            data = json.loads(report)
            for dep in data["dependencies"]:
                if "skip_reason" in dep:
                    not_audited.append((dep["name"], dep["skip_reason"]))
                    continue
                vulns.extend(
                    OnlineVuln(
                        dep["name"],
                        dep["version"],
                        v["id"],
                        tuple(v.get("aliases", [])),
                        tuple(v.get("fix_versions", [])),
                    )
                    for v in dep.get("vulns", [])
                )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            error = f"unreadable pip-audit report ({exc})"
    if returncode != 0 and not not_audited and not vulns and error is None:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        error = f"pip-audit failed (exit {returncode}): {lines[-1] if lines else 'no output'}"
    return OnlineResult(service, returncode, tuple(vulns), tuple(dict.fromkeys(not_audited)), error)


def run(
    pip_audit: str, locks: Sequence[Path], service: str, timeout: float = 600.0
) -> OnlineResult:
    """Run pip-audit once and interpret it; a crash or timeout is an error, not a pass."""
    if service not in SERVICES:
        raise GateError(
            f"unknown pip-audit service {service!r} (choose from {', '.join(SERVICES)})"
        )
    with tempfile.TemporaryDirectory(prefix="bot4-pip-audit-") as tmp:
        output = Path(tmp) / "report.json"
        try:
            proc = subprocess.run(  # noqa: S603  # nosec B603
                command(pip_audit, locks, service, output),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return OnlineResult(service, -1, (), (), f"pip-audit timed out after {timeout:.0f} s")
        except OSError as exc:
            raise GateError(f"cannot run pip-audit ({pip_audit}): {exc}") from None
        report = output.read_text(encoding="utf-8") if output.is_file() else None
    return interpret(service, proc.returncode, proc.stderr, report)
