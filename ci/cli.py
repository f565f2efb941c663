"""``python -m ci``: the toolkit's commands, one per gate concern; nox sessions call these.

Every command exits 0 on success, 1 when a check fails, 2 on bad usage; a failure is
reported as one line per problem, never as a traceback.
"""

from __future__ import annotations

import argparse
import platform
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from ci import coverage_gate, security_scan, toolchain
from ci.errors import GateError


def _err(message: str) -> None:
    print(f"ci: error: {message}", file=sys.stderr)


def cmd_coverage_gate(args: argparse.Namespace) -> int:
    """Enforce line and branch floors overall and per critical package."""
    table, failures, files = coverage_gate.run_gate(Path(args.report), Path(args.pyproject))
    print(table)
    if args.diff:
        changed = coverage_gate.parse_diff(coverage_gate.git_diff(args.diff, Path(args.root)))
        print(coverage_gate.render_diff(coverage_gate.diff_coverage(files, changed), args.diff))
    if failures:
        for failure in failures:
            _err(f"coverage below the floor: {failure}")
        return 1
    print("coverage gate: passed")
    return 0


def cmd_security_scan(args: argparse.Namespace) -> int:
    """Fail on IP literals and committed secrets."""
    root = Path(args.root).resolve()
    policy = security_scan.load_policy(Path(args.policy))
    findings = security_scan.scan(root, policy, args.paths or None)
    for finding in findings:
        print(finding)
    if findings:
        _err(f"security scan: {len(findings)} finding(s)")
        return 1
    print("security scan: no hard-coded IP addresses or secrets found")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    """Regenerate locks/*.txt and toolchain.lock with uv."""
    root = Path(args.root).resolve()
    data = toolchain.read_pyproject(root / "pyproject.toml")
    tc = toolchain.compile_locks(
        root,
        toolchain.find_uv(args.uv),
        toolchain.python_pin(data),
        toolchain.platform_pin(data),
        upgrade=args.upgrade,
        log=lambda msg: print(f"lock: {msg}", file=sys.stderr, flush=True),
    )
    for entry in tc.locks:
        print(f"{entry.path}  sha256:{entry.sha256}")
    print(f"wrote {toolchain.LOCK_FILE}")
    return 0


def _parse_env(spec: str) -> toolchain.Environment:
    role, sep, path = spec.partition("=")
    if not sep or not role or not path:
        raise GateError(f"--venv expects ROLE=PATH (e.g. session=.nox/tests), got {spec!r}")
    return toolchain.environment_from_venv(path, role, Path(path))


def cmd_toolchain(args: argparse.Namespace) -> int:
    """Check the interpreter, the lock files and each environment against toolchain.lock."""
    root = Path(args.root).resolve()
    envs = [_parse_env(spec) for spec in args.venv]
    if not args.no_self:
        envs.insert(
            0,
            toolchain.Environment(
                f"this environment ({sys.prefix})",
                args.role,
                Path(sysconfig.get_paths()["purelib"]),
                platform.python_version(),
            ),
        )
    problems = toolchain.check(root, envs)
    for problem in problems:
        _err(problem)
    if problems:
        return 1
    checked = ", ".join(env.label for env in envs) or "no environments"
    print(f"toolchain: interpreter, locks and {checked} match {toolchain.LOCK_FILE}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser for every toolkit command."""
    parser = argparse.ArgumentParser(prog="python -m ci", description=__doc__)
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("coverage-gate", help=cmd_coverage_gate.__doc__)
    p.add_argument("--report", default="reports/coverage.json", help="coverage JSON report")
    p.add_argument("--pyproject", default="pyproject.toml", help="holds [tool.bot4.coverage]")
    p.add_argument(
        "--diff", metavar="BASE", help="also report coverage of lines changed since BASE"
    )
    p.set_defaults(func=cmd_coverage_gate)

    p = sub.add_parser("security-scan", help=cmd_security_scan.__doc__)
    p.add_argument("--policy", default="ci/policy.toml", help="holds [security]")
    p.add_argument("paths", nargs="*", help="files to scan (default: every file git knows)")
    p.set_defaults(func=cmd_security_scan)

    p = sub.add_parser("lock", help=cmd_lock.__doc__)
    p.add_argument("--uv", help="uv executable (default: $UV, PATH, or beside this python)")
    p.add_argument("--upgrade", action="store_true", help="allow newer versions than the locks pin")
    p.set_defaults(func=cmd_lock)

    p = sub.add_parser("toolchain", help=cmd_toolchain.__doc__)
    p.add_argument(
        "--venv",
        action="append",
        default=[],
        metavar="ROLE=PATH",
        help="also check this virtualenv (role runner or session); repeatable",
    )
    p.add_argument("--role", default="session", help="role of this environment (default: session)")
    p.add_argument("--no-self", action="store_true", help="do not check this environment")
    p.set_defaults(func=cmd_toolchain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; GateError becomes a one-line message and exit status 1."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except GateError as exc:
        _err(str(exc))
        return exc.exit_code
    return code
