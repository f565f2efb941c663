"""``python -m ci.image <command>``: lock, build, reproduce, smoke, sbom, scan.

Exit codes: 0 success, 1 a failed check or bad input (one line on stderr), 2 bad
usage, 3 a locked .deb was superseded upstream (``nox -s image-lock`` fixes it).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ci.errors import GateError, run_command
from ci.image import apt_index, lock_format, lock_resolve
from ci.image.errors import SupersededError
from ci.image.fetch import Cache, default_cache, find_pip

log = logging.getLogger(__name__)


def _err(message: str) -> None:
    print(f"ci.image: error: {message}", file=sys.stderr)


def _say(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)


def _cache(args: argparse.Namespace) -> Cache:
    return Cache(Path(args.cache) if args.cache else default_cache())


def _targets(args: argparse.Namespace, spec: lock_format.Spec) -> tuple[apt_index.IndexTarget, ...]:
    if getattr(args, "index", None):
        return apt_index.local_targets(args.index, spec.architecture, spec.codename)
    return apt_index.index_targets(spec.architecture, spec.codename)


def cmd_lock(args: argparse.Namespace) -> int:
    """Resolve ci/image/image.toml into image.lock."""
    root = Path(args.root).resolve()
    spec = lock_format.read_spec(root / lock_format.SPEC_FILE)
    archive = apt_index.load_archive(_targets(args, spec))
    fetcher = lock_resolve.WheelFetcher(_cache(args), find_pip(args.pip), spec)
    new = lock_resolve.make_lock(root, spec, archive, fetcher)
    path = root / lock_format.LOCK_FILE
    old = lock_format.read_lock(path) if path.exists() else None
    lock_format.write_lock(path, new)
    for line in lock_changes(old, new):
        print(line)
    print(f"wrote {lock_format.LOCK_FILE}: {len(new.debs)} debs, {len(new.wheels)} wheels")
    return 0


def lock_changes(old: lock_format.Lock | None, new: lock_format.Lock) -> list[str]:
    """One line per package added, removed or moved to another version."""
    if old is None:
        return []
    before = {("deb", d.name): d.version for d in old.debs} | {
        ("wheel", w.name): w.version for w in old.wheels
    }
    after = {("deb", d.name): d.version for d in new.debs} | {
        ("wheel", w.name): w.version for w in new.wheels
    }
    lines = []
    for key in sorted(before.keys() | after.keys()):
        kind, name = key
        if key not in after:
            lines.append(f"- {kind} {name} {before[key]}")
        elif key not in before:
            lines.append(f"+ {kind} {name} {after[key]}")
        elif before[key] != after[key]:
            lines.append(f"~ {kind} {name} {before[key]} -> {after[key]}")
    return lines


def prepare(args: argparse.Namespace, root: Path) -> None:
    """Fetch every input once; with --refresh-superseded, a pin that vanished upstream
    makes this run re-lock in place (CI does this in its clone) and report it."""
    from ci.image import build  # noqa: PLC0415

    cache, pip = _cache(args), find_pip(args.pip)
    try:
        build.gather(root, cache, pip, _say)
    except SupersededError as exc:
        if not args.refresh_superseded:
            raise
        print(f"::warning title=image.lock refreshed::{exc}", flush=True)
        _say(
            "refreshing image.lock in this checkout "
            "(commit the refreshed lock to make it permanent)"
        )
        cmd_lock(args)
        build.gather(root, cache, pip, _say)
        write_sbom(root, cache, check=False)  # the committed SBOM follows the refreshed lock


def cmd_build(args: argparse.Namespace) -> int:
    """Build the image once; print the manifest digest as the last line."""
    from ci.image import build  # noqa: PLC0415 - keeps `lock` importable without the build stack

    root = Path(args.root).resolve()
    if args.reuse:
        digest = build.reusable(root, Path(args.out), args.rev)
        if digest is not None:
            _say(f"{args.out} is complete and built from these inputs; reusing it")
            print(digest)
            return 0
    prepare(args, root)
    result = build.build(root, Path(args.out), _cache(args), find_pip(args.pip), args.rev, _say)
    _say(f"layout {result.layout}, archive {result.archive}")
    _say(
        f"{result.uncompressed / 1e6:.1f} MB uncompressed, "
        f"{sum(len(layer.blob) for layer in result.image.layers) / 1e6:.1f} MB gzip"
    )
    print(result.image.digest)
    return 0


def _common(args: argparse.Namespace) -> list[str]:
    # The cache always by absolute path: the child builds run with another $HOME.
    out = ["--cache", str(_cache(args).root.resolve())]
    if args.pip:
        out += ["--pip", args.pip]
    return out


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Build in two varied clones (or rebuild --commit and compare with --digest); print
    the digest. ``--out`` is replaced only by a complete copy, in one step."""
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from ci.image import output, reproduce  # noqa: PLC0415

    root = Path(args.root).resolve()
    # An empty --digest (a release job's missing hand-off) must not fall back to the
    # unchecked two-clone build; refused before anything is fetched.
    if args.digest is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", args.digest):
        raise GateError(f"--digest must look like sha256:<64 hex>, got {args.digest!r}")
    if args.from_ref:
        return _reproduce_from(args, root)
    prepare(args, root)
    with tempfile.TemporaryDirectory(prefix="bot4-reproduce-") as tmp:
        if args.digest is not None:
            digest = reproduce.confirm(
                root, Path(tmp), _common(args), args.commit, args.digest, _say
            )
        else:
            digest, built = reproduce.matrix(root, Path(tmp), _common(args), args.commit, _say)
            if args.out:
                out = Path(args.out)
                output.sweep(out.parent)
                staged = output.scratch(out.parent, "out")
                try:
                    shutil.copytree(built, staged, symlinks=True, dirs_exist_ok=True)
                    staged.chmod(0o755)
                    output.publish(staged, out)
                finally:
                    shutil.rmtree(staged, ignore_errors=True)
    print(digest)
    return 0


def _reproduce_from(args: argparse.Namespace, root: Path) -> int:
    """Rebuild --commit from a release's inputs artifact alone (a fresh cache filled from
    it; no archive, no index) and confirm --digest."""
    import os  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from ci.image import engine, reproduce  # noqa: PLC0415
    from ci.release import inputs  # noqa: PLC0415 - the registry client, only for --from
    from ci.release.auth import credentials_from_env  # noqa: PLC0415
    from ci.release.errors import ReleaseError  # noqa: PLC0415
    from ci.release.reference import parse  # noqa: PLC0415
    from ci.release.registry import Registry  # noqa: PLC0415

    if not args.digest:
        raise GateError("--from needs --digest sha256:… (the published image to confirm)")
    try:
        ref = parse(args.from_ref)
    except ReleaseError as exc:
        raise GateError(f"--from: {exc}") from None
    commit = engine.resolve(root, args.commit).commit
    text = engine.git_show(root, commit, lock_format.LOCK_FILE)
    lock = lock_format.parse_lock(text, f"{commit}:{lock_format.LOCK_FILE}")
    with tempfile.TemporaryDirectory(prefix="bot4-reproduce-") as tmp:
        cache = Cache(Path(tmp) / "inputs")
        registry = Registry(ref.registry, credentials=credentials_from_env(os.environ))
        got = set(inputs.pull(registry, ref, cache))
        pins = [(d.name, d.sha256) for d in lock.debs] + [(w.name, w.sha256) for w in lock.wheels]
        lacking = [name for name, sha in pins if sha not in got]
        if lacking:
            raise GateError(f"{ref} lacks inputs {args.commit} locks: {', '.join(lacking)}")
        _say(f"{len(got)} inputs from {ref}; building with no archive or index")
        common = ["--cache", str(cache.root), *(["--pip", args.pip] if args.pip else [])]
        digest = reproduce.confirm(root, Path(tmp), common, args.commit, args.digest, _say)
    print(digest)
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    """Run the built image under runc: probe, bot4 doctor, and any --run commands."""
    import shlex  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from ci.image import smoke  # noqa: PLC0415

    extra = [shlex.split(cmd) for cmd in args.run]
    binds = []
    for spec in args.bind:
        host, sep, inside = spec.partition(":")
        if not sep or not host or not inside.startswith("/"):
            raise GateError(f"--bind expects HOST:/CONTAINER/PATH, got {spec!r}")
        binds.append((str(Path(host).resolve()), inside))
    with tempfile.TemporaryDirectory(prefix="bot4-smoke-") as tmp:
        for line in smoke.check(Path(args.layout), Path(tmp), extra, binds):
            print(line)
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """Run the engine's tests inside the image (its interpreter and libraries) under runc."""
    import tempfile  # noqa: PLC0415

    from ci.image import testrun  # noqa: PLC0415

    root = Path(args.root).resolve()
    pytest_args = args.pytest or list(testrun.DEFAULT_ARGS)
    if not args.pytest:
        for path, reason in testrun.IGNORED.items():
            _say(f"not run in the image: {path} ({reason})")
    with tempfile.TemporaryDirectory(prefix="bot4-tests-") as tmp:
        run, shared = testrun.run(
            root, Path(args.layout), Path(tmp), _cache(args), find_pip(args.pip), pytest_args
        )
    print(run.stdout.rstrip())
    if run.stderr.strip():
        print(run.stderr.rstrip(), file=sys.stderr)
    _say(f"test dependencies the image ships, used as shipped: {', '.join(shared) or 'none'}")
    if run.returncode != 0:
        _err(f"the engine's tests failed inside the image (pytest exit {run.returncode})")
        return 1
    return 0


def write_sbom(root: Path, cache: Cache, check: bool) -> int:
    """Write sbom/bot4-image.cdx.json, or with ``check`` compare and report drift."""
    from ci.files import atomic_write  # noqa: PLC0415
    from ci.image import sbom  # noqa: PLC0415
    from ci.supply_chain.sbom import diff_summary  # noqa: PLC0415

    spec = lock_format.read_spec(root / lock_format.SPEC_FILE)
    lock = lock_format.read_lock(root / lock_format.LOCK_FILE)
    debs, wheels = sbom.collect_licenses(lock, cache)
    engine = sbom.Engine("bot4", sbom.engine_version(root / "pyproject.toml"))
    text = sbom.render(sbom.build_bom(lock, spec.release, debs, wheels, engine))
    path = root / sbom.SBOM_FILE
    if check:
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if old != text:
            for line in diff_summary(old, text):
                print(line)
            _err(f"{sbom.SBOM_FILE} is out of date; run scripts/gate -s image-sbom and commit it")
            return 1
        print(f"{sbom.SBOM_FILE}: up to date ({len(lock.debs)} debs, {len(lock.wheels)} wheels)")
        return 0
    atomic_write(path, text)
    print(f"wrote {sbom.SBOM_FILE}: {len(lock.debs) + len(lock.wheels) + 1} components")
    return 0


def cmd_sbom(args: argparse.Namespace) -> int:
    """Write (or --check) sbom/bot4-image.cdx.json from image.lock and the cache."""
    return write_sbom(Path(args.root).resolve(), _cache(args), args.check)


def cmd_scan(args: argparse.Namespace) -> int:
    """Advisories, pending security updates and hygiene of a built image."""
    import datetime as dt  # noqa: PLC0415
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415

    from ci.files import atomic_write  # noqa: PLC0415
    from ci.image import scan  # noqa: PLC0415

    root = Path(args.root).resolve()
    layout = Path(args.layout)
    sbom_path = Path(args.sbom) if args.sbom else layout.parent / "sbom.cdx.json"
    try:
        bom = json.loads(sbom_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GateError(
            f"{sbom_path}: cannot read the image SBOM ({exc}); build the image first"
        ) from None
    today = dt.date.fromisoformat(args.today) if args.today else dt.date.today()
    report = scan.scan_image(
        root, layout, bom, today, environ=os.environ, dbs=[Path(d) for d in args.db],
        policy_file=Path(args.policy) if args.policy else None, index=args.index,
        pending=not args.no_pending,
    )  # fmt: skip
    print(scan.table(report.findings, report.threshold))
    if args.json:
        atomic_write(Path(args.json), scan.to_json(report.findings, report.threshold))
    if args.sarif:
        atomic_write(Path(args.sarif), scan.to_sarif(report.findings, str(sbom_path)))
    for problem in report.problems:
        _err(problem)
    if not report.passed:
        _err(f"image scan: {len(report.failing)} finding(s) at or above {report.threshold}")
        return 1
    print(report.summary())
    return 0


def cmd_refresh_report(args: argparse.Namespace) -> int:
    """The scheduled refresh's pull-request body: lock diff and scan delta."""
    from ci.files import atomic_write  # noqa: PLC0415
    from ci.image import refresh  # noqa: PLC0415

    text = refresh.report(
        Path(args.old_lock), Path(args.new_lock), Path(args.before), Path(args.after)
    )
    if args.out:
        atomic_write(Path(args.out), text)
    sys.stdout.write(text)
    return 0


def cmd_refresh_pr(args: argparse.Namespace) -> int:
    """Branch, commit, push and open the refresh pull request (git and gh; GitHub only)."""
    import datetime as dt  # noqa: PLC0415

    from ci.image import refresh  # noqa: PLC0415

    print(refresh.open_pr(Path(args.dir), dt.datetime.now(dt.timezone.utc).date()))
    return 0


SubParsers = Any  # argparse's _SubParsersAction is private


def _refresh_commands(sub: SubParsers) -> None:
    p = sub.add_parser("refresh-report", help="lock diff + scan delta as a pull-request body")
    p.add_argument("--old-lock", required=True, help="image.lock before the re-lock")
    p.add_argument("--new-lock", default="image.lock", help="image.lock after (default: it)")
    p.add_argument("--before", required=True, help="scan --json report before")
    p.add_argument("--after", required=True, help="scan --json report after")
    p.add_argument("--out", help="also write the body here")
    p.set_defaults(func=cmd_refresh_report)
    p = sub.add_parser("refresh-pr", help="open the refresh pull request (git + gh, GitHub only)")
    p.add_argument("--dir", default="reports/refresh", help="the refresh session's output")
    p.set_defaults(func=cmd_refresh_pr)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="python -m ci.image", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    parser.add_argument(
        "--cache",
        help="content-addressed download cache (default: $BOT4_IMAGE_CACHE or ~/.cache/bot4/image)",
    )
    parser.add_argument(
        "--pip",
        help="pip executable used to download wheels (default: this interpreter's pip, or pip3)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    parser.add_argument(
        "--refresh-superseded",
        action="store_true",
        help="when a locked .deb was superseded upstream, re-lock in place and go on (CI)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    index_help = "SUITE=PATH of a Packages file to use instead of apt's indexes (repeatable)"
    p = sub.add_parser("lock", help="resolve ci/image/image.toml into image.lock")
    p.add_argument("--index", action="append", default=[], help=index_help)
    p.set_defaults(func=cmd_lock)
    p = sub.add_parser("build", help="build the image once; print its manifest digest")
    p.add_argument("--out", default="build/image", help="output directory (default: build/image)")
    p.add_argument("--rev", default="HEAD", help="git revision to build (default: HEAD)")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep --out if it is complete and built from the same commit, locks and toolkit",
    )
    p.set_defaults(func=cmd_build)
    p = sub.add_parser(
        "reproduce",
        help="build in two clones under different path/remote/umask/TZ/locale/hostname/user "
        "and compare digests, "
        "or rebuild --commit and compare with --digest",
    )
    p.add_argument("--commit", default="HEAD", help="git revision (default: HEAD)")
    p.add_argument("--digest", help="expected manifest digest (sha256:…) of --commit")
    p.add_argument("--out", help="keep the first build's output here")
    p.add_argument(
        "--from",
        dest="from_ref",
        help="REF@sha256:… of a release's inputs artifact: rebuild from it alone",
    )
    p.set_defaults(func=cmd_reproduce)
    p = sub.add_parser(
        "smoke", help="run the image under runc (uid 65532, no network, read-only rootfs)"
    )
    p.add_argument(
        "--layout", default="build/image/oci", help="OCI layout (default: build/image/oci)"
    )
    p.add_argument(
        "--run",
        action="append",
        default=[],
        help="extra bot4 arguments to run, e.g. 'simulate --help'",
    )
    p.add_argument(
        "--bind",
        action="append",
        default=[],
        help="HOST:/PATH read-only bind mount, e.g. examples:/examples (repeatable)",
    )
    p.set_defaults(func=cmd_smoke)
    p = sub.add_parser(
        "test", help="run tests/bot4 with the image's interpreter and libraries under runc"
    )
    p.add_argument(
        "--layout", default="build/image/oci", help="OCI layout (default: build/image/oci)"
    )
    p.add_argument(
        "pytest",
        nargs="*",
        default=[],
        help="pytest arguments after -- (default: -q tests/bot4, less the modules of "
        "extras the image does not ship)",
    )
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("sbom", help="write or --check sbom/bot4-image.cdx.json")
    p.add_argument("--check", action="store_true", help="fail if the committed SBOM differs")
    p.set_defaults(func=cmd_sbom)
    p = sub.add_parser(
        "scan", help="advisories, pending security updates and hygiene of a built image"
    )
    p.add_argument(
        "--layout", default="build/image/oci", help="OCI layout (default: build/image/oci)"
    )
    p.add_argument("--sbom", help="image SBOM (default: sbom.cdx.json next to the layout)")
    p.add_argument(
        "--db",
        action="append",
        default=[],
        help="OSV database (dir or zip; repeatable); default: $BOT4_ADVISORY_DB, PyPA snapshot",
    )
    p.add_argument("--index", action="append", default=[], help=index_help)
    p.add_argument(
        "--no-pending",
        action="store_true",
        help="skip the pending-security-update check (needs apt indexes)",
    )
    p.add_argument("--policy", help=f"scan policy (default: {'ci/image/scan.toml'})")
    p.add_argument("--json", help="write findings as JSON here")
    p.add_argument("--sarif", help="write SARIF 2.1.0 here")
    p.add_argument("--today", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_scan)
    _refresh_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; GateError → one line on stderr and its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    from ci.image.output import run_scratch  # noqa: PLC0415

    with run_scratch():  # $TMPDIR for this run and its children; a killed run's is swept
        return run_command(args, _err)
