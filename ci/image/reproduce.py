"""Reproducibility, reprotest-style: the image is built from two fresh clones of the
commit that differ in everything a build host can differ in — clone path, ``origin``
remote, umask, time zone, locale, hostname, user, ``SOURCE_DATE_EPOCH`` in the
environment and wall-clock time — and both manifest digests must match. Or rebuild a
given commit in a fresh clone and compare with a published digest. On a mismatch,
diffoscope (Debian's ``diffoscope-minimal``) shows where the two archives differ.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.image.errors import ImageError

DIFF_LINES = 80
# The work-tree files a build reads besides the commit itself (``--refresh-superseded``
# may have re-locked image.lock in this checkout); copied into each clone.
INPUT_FILES = ("image.lock", "ci/image/image.toml", "locks/runtime.txt")


@dataclass(frozen=True)
class Variant:
    """The host conditions one build runs under."""

    name: str
    clone: str  # the clone's path under the work directory
    remote: str | None  # origin URL of the clone; None: no remote at all
    umask: int
    tz: str
    locale: str
    hostname: str | None  # a new UTS namespace with this hostname; None: the host's
    uid: int | None  # a user namespace mapping this uid onto the caller; None: unchanged
    epoch_env: str | None  # SOURCE_DATE_EPOCH in the environment (the build must ignore it)


VARIANTS = (
    Variant("control", "a/bot4", None, 0o022, "UTC", "C.UTF-8", None, None, None),
    Variant(
        "experiment",
        "b/a longer path/clone-of-bot4",
        "https://example.invalid/someone/fork-of-bot4.git",
        0o077,
        "Pacific/Kiritimati",
        "C",
        "bot4-reprotest",
        1000,
        "4102444800",
    ),
)

Log = Callable[[str], None]


def _git(*args: str) -> None:
    result = subprocess.run(  # noqa: S603  # nosec B603 B607
        ["git", *args],  # noqa: S607 - git from PATH, like every tool here
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImageError(f"git {args[0]} failed: {detail}")


def clone(root: Path, dest: Path, rev: str, remote: str | None) -> None:
    """A fresh clone of ``root`` at ``rev`` (detached) with ``remote`` as its only
    remote (none when ``None``), plus the work tree's lock and spec files."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    _git("clone", "-q", "--no-checkout", str(root), str(dest))
    _git("-C", str(dest), "checkout", "-q", "--detach", rev)
    _git("-C", str(dest), "remote", "remove", "origin")
    if remote is not None:
        _git("-C", str(dest), "remote", "add", "origin", remote)
    for name in INPUT_FILES:
        source = root / name
        if source.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest / name)


def _wrap(variant: Variant, argv: list[str]) -> list[str]:
    """``argv`` inside the variant's namespaces (hostname, then user), via unshare(1)."""
    if variant.hostname is None and variant.uid is None:
        return argv
    unshare = shutil.which("unshare")
    if unshare is None:
        raise ImageError("unshare (util-linux) is required for the hostname/user variations")
    inner = argv
    if variant.uid is not None:
        inner = [unshare, "--user", f"--map-user={variant.uid}", f"--map-group={variant.uid}"]
        inner += ["--", *argv]
    script = 'hostname "$1" && shift && exec "$@"'
    outer = [unshare, "--user", "--map-root-user", "--uts", "--", "sh", "-c", script, "sh"]
    return [*outer, variant.hostname or "bot4-build", *inner]


def build_once(
    root: Path, out: Path, variant: Variant, common: Sequence[str], rev: str, home: Path
) -> str:
    """Run one build of the clone at ``root`` in a child process under ``variant``;
    return its manifest digest."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LC_", "LANG", "SOURCE_DATE_EPOCH", "HOSTNAME"))
    }
    env.update({"TZ": variant.tz, "LC_ALL": variant.locale, "LANG": variant.locale})
    env.update({"HOME": str(home), "USER": f"builder-{variant.name}", "LOGNAME": variant.name})
    if variant.epoch_env is not None:
        env["SOURCE_DATE_EPOCH"] = variant.epoch_env
    home.mkdir(parents=True, exist_ok=True)
    # -P: the toolkit is the one installed here, never a module from the current directory.
    argv = [sys.executable, "-P", "-m", "ci.image", "--root", str(root), *common]
    argv += ["build", "--out", str(out), "--rev", rev]
    result = subprocess.run(  # noqa: S603  # nosec B603
        _wrap(variant, argv),
        capture_output=True,
        text=True,
        env=env,
        umask=variant.umask,
        cwd=home,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImageError(f"build {variant.name} failed: {detail}")
    return result.stdout.strip().splitlines()[-1]


def diffoscope(a: Path, b: Path) -> str:
    """diffoscope's text report on two files, trimmed; a hint when it is not installed."""
    tool = shutil.which("diffoscope")
    if tool is None:
        return (
            "diffoscope is not installed (apt-get install diffoscope-minimal) — "
            "compare the two layouts by hand"
        )
    result = subprocess.run(  # noqa: S603  # nosec B603
        [tool, "--text", "-", str(a), str(b)], capture_output=True, text=True, check=False
    )
    lines = result.stdout.splitlines()
    more = f"\n… {len(lines) - DIFF_LINES} more lines" if len(lines) > DIFF_LINES else ""
    return "\n".join(lines[:DIFF_LINES]) + more


def describe(variant: Variant, workdir: Path, started: str, digest: str) -> dict[str, str]:
    """One column of the variation table."""
    return {
        "clone path": str(workdir / variant.clone),
        "git remote": variant.remote or "none",
        "umask": f"{variant.umask:03o}",
        "TZ": variant.tz,
        "LC_ALL": variant.locale,
        "hostname": f"{variant.hostname} (unshare -u)" if variant.hostname else "the host's",
        "user": f"uid {variant.uid} (user namespace)" if variant.uid is not None else "the caller",
        "SOURCE_DATE_EPOCH": variant.epoch_env or "unset",
        "started": started,
        "digest": digest,
    }


def table(columns: Sequence[tuple[str, dict[str, str]]]) -> str:
    """The variation → value table with a digest row, one column per build."""
    rows = list(columns[0][1])
    width = max(len(r) for r in rows) + 2
    head = "variation".ljust(width) + "  ".join(name.ljust(40) for name, _ in columns)
    lines = [head.rstrip()]
    for row in rows:
        cells = "  ".join(col[row].ljust(40) for _, col in columns)
        lines.append((row.ljust(width) + cells).rstrip())
    return "\n".join(lines)


def matrix(
    root: Path, workdir: Path, common: Sequence[str], rev: str, say: Log
) -> tuple[str, Path]:
    """Build in two fresh clones under every variation; the common digest and the
    control build's output directory, or an error with diffoscope's report."""
    columns: list[tuple[str, dict[str, str]]] = []
    digests = []
    for variant in VARIANTS:
        source = workdir / variant.clone
        clone(root, source, rev, variant.remote)
        started = dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S")
        out = workdir / f"build-{variant.name}"
        digest = build_once(source, out, variant, common, rev, workdir / f"home-{variant.name}")
        digests.append(digest)
        columns.append((variant.name, describe(variant, workdir, started, digest)))
    say("reproducibility matrix:\n" + table(columns))
    if len(set(digests)) != 1:
        report = diffoscope(
            workdir / f"build-{VARIANTS[0].name}" / "bot4-image.tar",
            workdir / f"build-{VARIANTS[1].name}" / "bot4-image.tar",
        )
        say(report)
        raise ImageError(
            f"the image is not reproducible: {digests[0]} != {digests[1]} (diffoscope output above)"
        )
    return digests[0], workdir / f"build-{VARIANTS[0].name}"


def confirm(
    root: Path, workdir: Path, common: Sequence[str], commit: str, expected: str, say: Log
) -> str:
    """Rebuild ``commit`` in a fresh clone (no remote) and compare with a published digest."""
    if not expected.startswith("sha256:") or len(expected) != 71:
        raise ImageError(f"--digest must look like sha256:<64 hex>, got {expected!r}")
    variant = VARIANTS[0]
    source = workdir / variant.clone
    clone(root, source, commit, None)
    digest = build_once(source, workdir / "rebuild", variant, common, commit, workdir / "home")
    if digest != expected:
        raise ImageError(
            f"rebuilding {commit} gave {digest}, not {expected}: "
            "the published image does not come from this commit and lock"
        )
    say(f"rebuilt {commit}: digest matches")
    return digest
