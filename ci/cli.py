"""``python -m ci``: the toolkit's commands, one per gate concern; nox sessions call these.

Every command exits 0 on success, 1 when a check fails, 2 on bad usage; a failure is
reported as one line per problem, never as a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci.errors import GateError, run_command
from ci.gate.requirements import Pin, read_lock
from ci.gate.venvs import Environment, environment_from_venv
from ci.supply_chain import DEFAULT_POLICY, licenses, sources
from ci.supply_chain.advisories import DB_ENV, ONLINE_MODES, SERVICES

if TYPE_CHECKING:
    from ci.supply_chain.advisories import audit

# _COMMAND_IMPORTS: a module only one command uses is imported by that command, so each
# `python -m ci COMMAND` pays for its own imports only (coverage, debian, lock, source_scan,
# sbom, the toolchain lock, the audit and the file writer cost `licenses` ~25 ms of CPU,
# benchmarks/supply_chain/bench_peers.py). The parser's choices come from light modules.


def _err(message: str) -> None:
    print(f"ci: error: {message}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"ci: warning: {message}", file=sys.stderr)


def _today(value: str | None) -> dt.date:
    if value is None:
        return dt.datetime.now(dt.timezone.utc).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise GateError(f"--today expects YYYY-MM-DD, got {value!r}") from None


def _beside_python(tool: str) -> str:
    import shutil  # noqa: PLC0415 - see _COMMAND_IMPORTS

    candidate = Path(sys.executable).parent / tool
    found = str(candidate) if candidate.exists() else shutil.which(tool)
    if found is None:
        raise GateError(f"{tool} not found beside {sys.executable} or on PATH; install the lock")
    return found


def cmd_coverage_gate(args: argparse.Namespace) -> int:
    """Enforce line and branch floors overall and per critical package."""
    from ci.gate import coverage as coverage_gate  # noqa: PLC0415 - see _COMMAND_IMPORTS

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
    from ci.gate import source_scan as security_scan  # noqa: PLC0415 - see _COMMAND_IMPORTS

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
    """Regenerate locks/*.txt and toolchain.lock with uv, and ci/pyproject.toml's dependencies."""
    from ci.gate import lock as gate_lock  # noqa: PLC0415 - see _COMMAND_IMPORTS

    return gate_lock.lock(args)


def _parse_env(spec: str) -> Environment:
    role, sep, path = spec.partition("=")
    if not sep or not role or not path:
        raise GateError(f"--venv expects ROLE=PATH (e.g. session=.nox/tests), got {spec!r}")
    return environment_from_venv(path, role, Path(path))


def cmd_toolchain(args: argparse.Namespace) -> int:
    """Check the interpreter, the lock files and each environment against toolchain.lock."""
    import platform  # noqa: PLC0415 - see _COMMAND_IMPORTS
    import sysconfig  # noqa: PLC0415

    from ci.gate import debian, toolchain  # noqa: PLC0415

    root = Path(args.root).resolve()
    envs = [_parse_env(spec) for spec in args.venv]
    if not args.no_self:
        envs.insert(
            0,
            Environment(
                f"this environment ({sys.prefix})",
                args.role,
                Path(sysconfig.get_paths()["purelib"]),
                platform.python_version(),
            ),
        )
    problems = toolchain.check(root, envs)
    deb_problems, deb_missing, deb_superseded = debian.drift(root)
    problems += deb_problems
    for note in deb_superseded:
        _err(f"warning: {note}")
    for problem in problems:
        _err(problem)
    if problems:
        return 1
    checked = ", ".join(env.label for env in envs) or "no environments"
    print(f"toolchain: interpreter, locks and {checked} match {toolchain.LOCK_FILE}")
    if not (root / debian.LOCK_FILE).exists():
        pass  # a project that pins no Debian packages
    elif deb_missing:
        print(
            f"toolchain: Debian packages not installed (scripts/gate installs them as root): "
            f"{', '.join(deb_missing)}"
        )
    else:
        print(f"toolchain: Debian packages match {debian.LOCK_FILE}")
    return 0


def _paths(root: Path, values: Sequence[str] | None) -> list[Path]:
    """Command-line paths, relative to --root (default: the current directory)."""
    return [root / v for v in values or ()]


def _locks(root: Path, values: Sequence[str] | None) -> list[Path]:
    """--lock files, each of which must exist (checked before anything reads them)."""
    paths = _paths(root, values)
    for path in paths:
        if not path.is_file():
            raise GateError(f"{path}: lock file not found")
    return paths


def _policy(root: Path, value: str | None) -> Path:
    """--policy, or the toolkit's neutral default policy."""
    return root / value if value else DEFAULT_POLICY


def _shown(root: Path, path: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _installers(
    root: Path, venv_args: Sequence[str] | None, pins: Sequence[Pin], report: audit.Report
) -> list[audit.Installers]:
    """Each --venv's installer packages (reported), or the scope note saying they are not
    audited."""
    from ci.supply_chain.advisories import audit  # noqa: PLC0415 - see _COMMAND_IMPORTS

    if not venv_args:
        report.info.append(audit.SCOPE_NOTE)
        return []
    found: list[audit.Installers] = []
    for venv_arg in dict.fromkeys(venv_args):
        venv = root / venv_arg
        found.append(audit.installer_pins(venv, _shown(root, venv), (p.name for p in pins)))
    report.info.append(audit.SCOPE_NOTE_VENV.format(venv=", ".join(v.venv for v in found)))
    for each in found:
        names = ", ".join(f"{p.name} {p.version}" for p in each.pins) or "none unlocked"
        report.info.append(
            f"installer packages in {each.venv}: {names} (offline DB only: they have no "
            "lock hashes, so neither pip-audit nor the index check sees them)"
        )
    return found


def cmd_audit(args: argparse.Namespace) -> int:
    """Audit every locked pin: advisories (offline DB + strict pip-audit), yanked, status."""
    # Imported here: the DB loader (yaml, cvss) and the index client are the audit's alone,
    # and every other command would pay their import time.
    import tempfile  # noqa: PLC0415

    from ci.supply_chain import index  # noqa: PLC0415
    from ci.supply_chain.advisories import audit  # noqa: PLC0415
    from ci.supply_chain.advisories import database as advisories  # noqa: PLC0415

    root = Path(args.root).resolve()
    pol = audit.load_policy(_policy(root, args.policy))
    locks = audit.lock_paths(_locks(root, args.lock), pol.locks)
    pins = list(audit.collect_pins(locks).values())
    if not pins:
        raise GateError("no pins found in the locks; nothing to audit")
    today = _today(args.today)
    report = audit.Report()
    names = [_shown(root, p) for p in locks]
    report.info.append(f"auditing {len(pins)} pins from {', '.join(names)}")
    installers = _installers(root, args.venv, pins, report)
    db = advisories.load_db(audit.db_path(root, args.db, pol.db, os.environ))
    audit.offline(report, pins, db, pol, today, installers)
    if args.online != "never":
        with tempfile.TemporaryDirectory(prefix="bot4-audit-") as tmp:
            audit.online(
                report, args.online, args.pip_audit or _beside_python("pip-audit"), locks,
                pins[0], args.service, pol.ignores, Path(tmp),
            )  # fmt: skip
    else:
        report.info.append("online: skipped (--online never)")
    if args.index_check:
        config = index.index_config(index.read_pip_config())
        found, errors = index.pages(config, [p.name for p in pins])
        audit.index_checks(
            report, pins, found, errors, pol.yanked, args.allow_unreachable_index, config.indexes
        )
    else:
        report.warnings.append("index: yanked/status check skipped (--no-index-check)")
    audit.acknowledge(report, pol.acknowledged, today)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        for line in report.info:
            print(line)
    for line in report.warnings:
        _warn(line)
    for line in report.failures:
        _err(line)
    if report.failures:
        _err(f"audit: {len(report.failures)} problem(s)")
        return 1
    print("audit: passed", file=sys.stderr if args.json else sys.stdout)  # --json: stdout is JSON
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    """Source policy over the locks: name==version with sha256 hashes, nothing else."""
    root = Path(args.root).resolve()
    locks = _paths(root, args.lock)
    problems = sources.check_locks(locks)
    for problem in problems:
        _err(f"source: {problem}")
    if problems:
        return 1
    print(f"sources: {len(locks)} locks clean")
    return 0


def cmd_licenses(args: argparse.Namespace) -> int:
    """Licence policy over an installed environment, and source policy over the locks."""
    root = Path(args.root).resolve()
    policy_path = _policy(root, args.policy)
    pol = licenses.load_policy(policy_path)
    venv = root / args.venv if args.venv else Path(sys.prefix)
    site = environment_from_venv(str(venv), "session", venv).site_packages
    locks = _paths(root, args.lock)
    problems = sources.check_locks(locks)
    runtime: set[str] | None = None
    if args.runtime_lock:
        runtime = set()
        for lock in _locks(root, args.runtime_lock):
            try:
                runtime |= {str(p.name) for p in read_lock(lock)}
            except GateError:
                if not problems:
                    raise
                # a bad runtime lock is already reported by the source check
    rows, warnings = licenses.check_environment(site, pol, runtime, policy_path)
    if not rows:
        raise GateError(f"{venv}: no installed distributions found; is it a venv from the lock?")
    denied = [r for r in rows if r.verdict == "deny"]
    if args.json:
        payload = dict(licenses.rows_json(rows, warnings))
        payload["sources"] = problems
        print(json.dumps(payload, indent=2))
    else:
        print(licenses.render(rows))
    for line in warnings:
        _warn(line)
    for row in denied:
        _err(f"licence: {row.package} {row.version}: {row.reason}")
    for problem in problems:
        _err(f"source: {problem}")
    if denied or problems:
        return 1
    checked = f"{len(locks)} locks clean" if locks else "not checked (no --lock given)"
    summary = f"licenses: {len(rows)} distributions allowed; sources: {checked}"
    print(summary, file=sys.stderr if args.json else sys.stdout)  # --json: stdout is JSON
    return 0


def cmd_sbom(args: argparse.Namespace) -> int:
    """Write the CycloneDX SBOM of the locks; --check fails when the file is stale."""
    import shlex  # noqa: PLC0415 - see _COMMAND_IMPORTS

    from ci.files import atomic_write  # noqa: PLC0415
    from ci.gate import toolchain  # noqa: PLC0415
    from ci.supply_chain import sbom  # noqa: PLC0415

    root = Path(args.root).resolve()
    if args.check and not args.output:
        raise GateError("--check needs --output FILE (the committed SBOM to compare)")
    locks = _locks(root, args.lock)
    for lock in locks:  # refuse a bad lock before looking for uv or installing anything
        read_lock(lock)
    built = sbom.generate(
        root,
        None if args.venv else toolchain.find_uv(args.uv),
        locks,
        root / args.pyproject if args.pyproject else None,
        venv=root / args.venv if args.venv else None,
    )
    text, skipped = built.text, built.not_installed
    what = ", ".join(_shown(root, lock) for lock in locks)
    if skipped:  # on stderr: without --output, stdout is the SBOM itself
        print(f"sbom: not installed here (environment markers): {', '.join(skipped)}",
              file=sys.stderr)  # fmt: skip
    if not args.output:
        sys.stdout.write(text)
        return 0
    output = root / args.output
    if args.check:
        write = args.remedy or shlex.join(
            ["python", "-m", "ci", "--root", args.root, "sbom"]
            + [a for lock in args.lock for a in ("--lock", lock)]
            + [a for opt in ("venv", "pyproject", "output") if getattr(args, opt)
               for a in (f"--{opt}", getattr(args, opt))]
        )  # fmt: skip
        try:
            committed = output.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise GateError(f"{args.output} does not exist; generate it with {write}") from None
        if committed != text:
            for line in sbom.diff_summary(committed, text):
                print(f"  {line}")
            _err(f"{args.output} is stale; regenerate it with {write} and commit it")
            return 1
        print(f"sbom: {args.output} is up to date ({what}, CycloneDX {sbom.SPEC}, valid)")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, text)
    print(f"sbom: wrote {args.output} ({what}, CycloneDX {sbom.SPEC}, valid)")
    return 0


def cmd_advisories_update(args: argparse.Namespace) -> int:
    """Rebuild the advisory DB snapshot from a local copy of the PyPA advisory database."""
    from ci.supply_chain.advisories import database as advisories  # noqa: PLC0415 - see audit

    root = Path(args.root).resolve()
    try:
        date = dt.date.fromisoformat(args.date) if args.date else None
    except ValueError:
        raise GateError(f"--date expects YYYY-MM-DD, got {args.date!r}") from None
    snapshot, warnings = advisories.update_snapshot(
        Path(args.source), root / args.out, date, args.commit
    )
    for line in warnings:
        _warn(line)
    print(
        f"advisories: {snapshot.records} records from {snapshot.source} commit "
        f"{snapshot.commit} ({snapshot.date}) → {args.out}/{snapshot.archive}"
    )
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    """Pass through to ``python -m ci.image`` (e.g. ``image reproduce --commit REV --digest D``)."""
    from ci.image import cli as image_cli  # noqa: PLC0415 - only loaded for this command

    return image_cli.main(args.rest)


def _add_supply_chain(sub: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """The supply-chain commands: audit, licenses, sbom, image, advisories-update."""
    policy_help = "policy file (default: the toolkit's neutral default-policy.toml)"
    lock_help = "a hashed requirements lock (repeatable)"
    p = sub.add_parser("audit", help=cmd_audit.__doc__)
    p.add_argument("--lock", action="append", metavar="FILE", help=lock_help + " to audit")
    p.add_argument("--policy", help=policy_help + "; holds [advisories]")
    p.add_argument(
        "--venv",
        action="append",
        help="also audit the installer packages (pip, setuptools, wheel) found in this venv "
        "(repeatable)",
    )
    p.add_argument("--db", help=f"OSV database dir or zip (default: ${DB_ENV}, then the policy's)")
    p.add_argument(
        "--online",
        choices=ONLINE_MODES,
        default="auto",
        help="pip-audit: auto = when its service answers, require = always, never",
    )
    p.add_argument("--service", choices=SERVICES, default="pypi", help="pip-audit service")
    p.add_argument("--pip-audit", help="pip-audit executable (default: beside this python)")
    p.add_argument(
        "--no-index-check",
        dest="index_check",
        action="store_false",
        help="skip the yanked/project-status check against the configured index",
    )
    p.add_argument(
        "--allow-unreachable-index",
        action="store_true",
        help="an index that cannot be read is a warning, not a failure",
    )
    p.add_argument("--today", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("sources", help=cmd_sources.__doc__)
    p.add_argument("--lock", action="append", metavar="FILE", required=True, help=lock_help)
    p.set_defaults(func=cmd_sources)

    p = sub.add_parser("licenses", help=cmd_licenses.__doc__)
    p.add_argument("--policy", help=policy_help + "; holds [licenses]")
    p.add_argument("--venv", help="virtualenv installed from the lock (default: this one)")
    p.add_argument(
        "--lock", action="append", metavar="FILE", help=lock_help + "; source policy over it"
    )
    p.add_argument(
        "--runtime-lock",
        action="append",
        metavar="FILE",
        help="marks shipped packages (repeatable); without it every package counts as shipped",
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=cmd_licenses)

    p = sub.add_parser("sbom", help=cmd_sbom.__doc__)
    p.add_argument(
        "--lock", action="append", metavar="FILE", required=True, help=lock_help + " to describe"
    )
    p.add_argument(
        "--venv", help="describe this venv (must hold exactly the lock's pins) instead of "
        "installing the locks into a throwaway one"
    )  # fmt: skip
    p.add_argument("--pyproject", help="pyproject.toml of the root component (default: none)")
    p.add_argument("--output", help="the SBOM file (default: print it)")
    p.add_argument("--uv", help="uv executable (default: $UV, PATH, or beside this python)")
    p.add_argument("--check", action="store_true", help="compare with --output instead of writing")
    p.add_argument(
        "--remedy",
        help="the command a stale --check names (default: this command without --check; "
        "a project's gate passes its own, e.g. scripts/gate -s sbom -- --write)",
    )
    p.set_defaults(func=cmd_sbom)

    p = sub.add_parser(
        "image",
        help="the hermetic engine image: lock, build, reproduce, smoke, sbom, scan (ci.image)",
        add_help=False,
    )
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for python -m ci.image")
    p.set_defaults(func=cmd_image)

    p = sub.add_parser("deploy", help=cmd_deploy.__doc__, add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for ci.release deploy")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("advisories-update", help=cmd_advisories_update.__doc__)
    p.add_argument(
        "--from", dest="source", required=True,
        help="a clone, bare git dir, directory or zip of github.com/pypa/advisory-database",
    )  # fmt: skip
    p.add_argument("--out", default="ci/advisories", help="snapshot directory")
    p.add_argument("--date", help="YYYY-MM-DD of the upstream commit (plain directory or zip)")
    p.add_argument("--commit", help="the upstream commit a plain directory or zip came from")
    p.set_defaults(func=cmd_advisories_update)


def cmd_deploy(args: argparse.Namespace) -> int:
    """Verify a signed image by digest, then run it hardened (``ci.release deploy``)."""
    from ci.release import cli as release_cli  # noqa: PLC0415 - only loaded for this command

    return release_cli.main(["deploy", *args.rest])


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

    _add_supply_chain(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; GateError becomes a one-line message and exit status 1."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["image"]:  # everything after `image` belongs to python -m ci.image
        return cmd_image(argparse.Namespace(rest=raw[1:]))
    if raw[:1] == ["deploy"]:  # python -m ci deploy REF … = python -m ci.release deploy REF …
        return cmd_deploy(argparse.Namespace(rest=raw[1:]))
    args = build_parser().parse_args(raw)
    return run_command(args, _err)
