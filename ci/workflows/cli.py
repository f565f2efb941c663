"""``python -m ci.workflows``: check the GitHub Actions workflows (``nox -s workflows``).

``check [PATHS]`` runs zizmor (offline), actionlint and the project check over
``.github/workflows`` (or PATHS) and prints one line per finding. ``python-version`` prints
``python=<version>`` from toolchain.lock for ``$GITHUB_OUTPUT``; it imports nothing
outside the standard library because it runs on the CI runner's bare ``python3``, before
the pinned interpreter exists. Exit 0 clean, 1 findings or bad input, 2 usage.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ci.compat import tomllib
from ci.errors import GateError, run_command

PROG = "python -m ci.workflows"
LOCK = "toolchain.lock"
PYTHON_VERSION_RE = re.compile(r"3\.\d{1,2}")


def _err(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _attempts(text: str) -> int:
    """--attempts: a whole number from 1 to 5."""
    if not text.isdigit() or not 1 <= int(text) <= 5:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 5, got {text!r}")
    return int(text)


def read_python_version(lock: Path) -> str:
    """``[python] version`` from toolchain.lock, checked to be ``3.N`` (safe for YAML outputs)."""
    try:
        data = tomllib.loads(lock.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GateError(
            f"cannot read {lock}: {exc.strerror}; run from the repository root"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise GateError(
            f"{lock} is not valid TOML ({exc}); regenerate it with scripts/gate -s lock"
        ) from None
    python = data.get("python")
    version = python.get("version") if isinstance(python, dict) else None
    if not isinstance(version, str) or not PYTHON_VERSION_RE.fullmatch(version):
        raise GateError(f'{lock}: [python] version must be a string like "3.11", got {version!r}')
    return version


def cmd_python_version(args: argparse.Namespace) -> int:
    """Print python=<version> from toolchain.lock (for $GITHUB_OUTPUT)."""
    print(f"python={read_python_version(Path(args.root) / args.lock)}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """zizmor --offline, actionlint and the project check; one line per finding."""
    # Imported here: python-version must run without PyYAML on the runner's bare python3.
    from ci.workflows import checks as workflows  # noqa: PLC0415

    root = Path(args.root).resolve()
    paths = [Path(p) for p in args.paths] or [root / ".github" / "workflows"]
    dependabot = root / ".github" / "dependabot.yml"
    extra = [dependabot] if not args.paths and dependabot.is_file() else []
    tools = workflows.Tools(
        args.zizmor or workflows.find_tool("zizmor"),
        args.actionlint or workflows.find_tool("actionlint"),
    )
    sessions = workflows.nox_sessions(Path(args.noxfile) if args.noxfile else root / "noxfile.py")
    findings = workflows.check(root, paths, sessions, tools, extra)
    for finding in findings:
        print(finding)
    if findings:
        _err(f"{len(findings)} finding(s) in the workflows")
        return 1
    print(
        f"workflows: {', '.join(str(p) for p in paths)} clean (zizmor, actionlint, project check)"
    )
    return 0


# The jobs `nox -s act` runs by default: every host job of this workflow, whose run: steps
# need nothing but the runner (the container jobs need a docker daemon and a local Debian
# image: name them, e.g. `-- ci.yml:dockerfile release.yml:build`).
DEFAULT_ACT_WORKFLOW = "ci.yml"


def _selection(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
    selection = []
    for spec in specs:
        workflow, sep, jobs = spec.partition(":")
        ids = [j for j in jobs.split(",") if j]
        if not sep or not ids or "/" in workflow or not workflow.endswith((".yml", ".yaml")):
            raise GateError(f"{spec!r}: expected WORKFLOW.yml:JOB[,JOB…], e.g. ci.yml:lint")
        selection.append((workflow, ids))
    return selection


def cmd_act(args: argparse.Namespace) -> int:
    """Run workflow jobs under act as a non-root runner user; print a table of results."""
    from ci.workflows import act  # noqa: PLC0415

    root = Path(args.root).resolve()
    if args.jobs:
        selection = _selection(args.jobs)
    else:
        selection = [(DEFAULT_ACT_WORKFLOW, act.host_jobs(root, DEFAULT_ACT_WORKFLOW))]
    found = Path(args.act) if args.act else act.find_act()
    results = act.run(root, selection, found, attempts=args.attempts or act.ATTEMPTS)
    if report := act.failure_report(results):
        print(report)
    print(act.table(results, act.not_run(Path(args.root).resolve(), selection)))
    failed = [r.job.job_id for r in results if not r.ok]
    for r in results:
        if r.missing:
            steps = ", ".join(r.missing)
            _err(f"{r.job.workflow} {r.job.job_id}: run: steps not successful: {steps}")
    if again := [r.job.job_id for r in results if r.ok and r.earlier is not None]:
        print(
            f"{PROG}: warning: green only on a second attempt: {', '.join(again)} "
            "(the failed attempt's last lines are above the table)",
            file=sys.stderr,
        )
    if failed:
        _err(f"{len(failed)} job(s) failed under act: {', '.join(failed)}")
        return 1
    return 0


def cmd_vendor(args: argparse.Namespace) -> int:
    """Vendor a pinned action's files (action.yml, dist/…) from a clone for act."""
    from ci.workflows import vendored  # noqa: PLC0415

    entry = vendored.vendor(Path(args.git_dir), args.pin, args.files)
    print(f"vendored {entry.pin} ({entry.tag}): {len(entry.files)} file(s) in {entry.archive}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser for the workflow commands."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check", help=cmd_check.__doc__)
    p.add_argument(
        "paths", nargs="*", help="workflow files or directories (default: .github/workflows)"
    )
    p.add_argument(
        "--noxfile", help="the noxfile whose sessions jobs may run (default: ROOT/noxfile.py)"
    )
    p.add_argument("--zizmor", help="zizmor executable (default: beside this python, or PATH)")
    p.add_argument(
        "--actionlint", help="actionlint executable (default: beside this python, or PATH)"
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("act", help=cmd_act.__doc__)
    p.add_argument(
        "jobs",
        nargs="*",
        metavar="WORKFLOW:JOB[,JOB…]",
        help=f"jobs to run (default: every host job of {DEFAULT_ACT_WORKFLOW})",
    )
    p.add_argument("--act", help="act executable (default: beside this python)")
    p.add_argument(
        "--attempts",
        type=_attempts,
        help="runs of a failed job before it fails the session, a container job in a fresh "
        "container each time (default: 2; 1: no second attempt)",
    )
    p.set_defaults(func=cmd_act)

    p = sub.add_parser("vendor", help=cmd_vendor.__doc__)
    p.add_argument("--git-dir", required=True, help="a clone (or bare mirror) of the action")
    p.add_argument("pin", metavar="OWNER/REPO@SHA", help="the pin, as the workflows write it")
    p.add_argument("files", nargs="+", metavar="FILE", help="paths in the repository at SHA")
    p.set_defaults(func=cmd_vendor)

    p = sub.add_parser("python-version", help=cmd_python_version.__doc__)
    p.add_argument("--lock", default=LOCK, help=f"relative to --root (default: {LOCK})")
    p.set_defaults(func=cmd_python_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; GateError becomes a one-line message and exit status 1."""
    args = build_parser().parse_args(argv)
    return run_command(args, _err)
