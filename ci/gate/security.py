"""``python -m ci.gate.security``: bandit, the IP-literal scan and the secret scan — all of them.

The ``security`` session used to stop at bandit's failure, so the project's own scans
never ran and their findings were never shown. Here every scanner runs, each finding is
printed on one line, and the exit code is 1 if any scanner found something (2 if one
could not run). bandit runs once: its JSON report (kept in reports/) is also the
source of the human-readable lines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ci.errors import GateError
from ci.gate import source_scan as security_scan

BANDIT_TARGETS = ("src", "ci")


@dataclass
class Outcome:
    """One scanner's findings (one line each) or the reason it could not run."""

    name: str
    findings: list[str] = field(default_factory=list)
    error: str | None = None


def run_bandit(root: Path, bandit: str, report: Path) -> Outcome:
    """bandit once over src and ci: JSON to ``report``, findings as lines."""
    outcome = Outcome("bandit")
    report.parent.mkdir(parents=True, exist_ok=True)
    argv = [bandit, "-q", "-c", "pyproject.toml", "-r", *BANDIT_TARGETS, "-f", "json"]
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603 - fixed argv, our own tool
            [*argv, "-o", str(report)], cwd=root, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        outcome.error = f"cannot run {bandit} ({exc.strerror}); install the lock (scripts/gate)"
        return outcome
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        outcome.error = f"bandit exited {result.returncode} without a report: {detail}"
        return outcome
    for issue in data.get("results", []):
        outcome.findings.append(
            f"{issue['filename']}:{issue['line_number']}: {issue['test_id']} "
            f"[{issue['issue_severity']}/{issue['issue_confidence']}] {issue['issue_text']}"
        )
    for error in data.get("errors", []):
        outcome.findings.append(
            f"{error.get('filename', '?')}:1: bandit error: {error.get('reason')}"
        )
    return outcome


def run_project_scans(root: Path, policy: Path) -> list[Outcome]:
    """The IP-literal and the secret scan, each reported on its own."""
    ips, secrets = Outcome("ip-literals"), Outcome("secrets")
    try:
        findings = security_scan.scan(root, security_scan.load_policy(policy))
    except GateError as exc:
        ips.error = secrets.error = str(exc)
        return [ips, secrets]
    for finding in findings:
        (secrets if finding.kind == "possible secret" else ips).findings.append(str(finding))
    return [ips, secrets]


def main(argv: Sequence[str] | None = None) -> int:
    """Run every scanner, print every finding, then one summary line."""
    parser = argparse.ArgumentParser(prog="python -m ci.gate.security", description=__doc__)
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    parser.add_argument("--policy", default="ci/policy.toml", help="scan policy ([security])")
    beside = Path(sys.executable).parent / "bandit"  # this venv's, from the lock
    parser.add_argument(
        "--bandit", default=str(beside) if beside.exists() else "bandit", help="bandit to run"
    )
    parser.add_argument("--report", default="reports/bandit.json", help="bandit's JSON report")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    outcomes = [run_bandit(root, args.bandit, root / args.report)]
    outcomes += run_project_scans(root, root / args.policy)
    for outcome in outcomes:
        for line in outcome.findings:
            print(line)
        if outcome.error:
            print(f"security: error: {outcome.name}: {outcome.error}", file=sys.stderr)
    summary = ", ".join(
        f"{o.name} {'could not run' if o.error else f'{len(o.findings)} finding(s)'}"
        for o in outcomes
    )
    failed = any(o.error or o.findings for o in outcomes)
    print(f"security: {'failed' if failed else 'passed'} ({summary})")
    if any(o.error for o in outcomes):
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
