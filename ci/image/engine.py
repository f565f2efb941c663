"""The engine's own wheel, built reproducibly from a git revision.

The source is ``git archive`` of the revision (never the work tree, so the image is
exactly the commit its annotations name), built by hatchling with
``SOURCE_DATE_EPOCH`` set to the commit time: same commit → same wheel bytes.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ci.image.errors import ImageError

SOURCES = ("pyproject.toml", "README.md", "LICENSE", "src")


@dataclass(frozen=True)
class Revision:
    """A resolved commit and its commit time (the build's SOURCE_DATE_EPOCH)."""

    commit: str
    epoch: int
    source: str


def _git(root: Path, *args: str) -> bytes:
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603 B607
            ["git", "-C", str(root), *args],  # noqa: S607 - git from PATH, like every tool here
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise ImageError("git not found: the image is built from a git revision") from None
    if result.returncode != 0:
        detail = (result.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise ImageError(f"git {args[0]} failed: {detail}")
    return result.stdout


def resolve(root: Path, rev: str) -> Revision:
    """The full commit id, its commit time and the repository URL (origin, if any)."""
    commit = _git(root, "rev-parse", "--verify", f"{rev}^{{commit}}").decode().strip()
    epoch = int(_git(root, "log", "-1", "--format=%ct", commit).decode().strip())
    try:
        source = _git(root, "config", "--get", "remote.origin.url").decode().strip()
    except ImageError:
        source = ""
    return Revision(commit, epoch, source)


def export(root: Path, commit: str, dest: Path, paths: tuple[str, ...] = SOURCES) -> None:
    """Extract ``paths`` of a commit into ``dest`` (tarfile's ``data`` filter: no escapes)."""
    present = [p for p in paths if _git(root, "ls-tree", "--name-only", commit, p).strip()]
    blob = _git(root, "archive", "--format=tar", commit, *present)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")


def build_wheel(root: Path, revision: Revision, workdir: Path) -> Path:
    """Build the bot4 wheel of ``revision`` with hatchling; return its path."""
    src = workdir / "src-tree"
    out = workdir / "dist"
    src.mkdir(parents=True)
    export(root, revision.commit, src)
    env = {
        "SOURCE_DATE_EPOCH": str(revision.epoch),
        "PATH": "/usr/bin:/bin",
        "LC_ALL": "C.UTF-8",
        "HOME": str(workdir),
    }
    result = subprocess.run(  # noqa: S603  # nosec B603
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=src,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImageError(f"building the engine wheel failed: {detail}")
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise ImageError(f"hatchling produced {len(wheels)} wheels, expected one")
    return wheels[0]
