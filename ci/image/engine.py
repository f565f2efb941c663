"""The engine's own wheel, built reproducibly from a git revision.

The source is ``git archive`` of the revision (never the work tree, so the image is
exactly the commit its annotations name), built by hatchling with
``SOURCE_DATE_EPOCH`` set to the commit time: same commit → same wheel bytes.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ci.compat import tomllib
from ci.image.errors import ImageError
from ci.image.tarball import extract

SOURCES = ("pyproject.toml", "README.md", "LICENSE", "src")
# [project.urls] keys naming the public repository, in order of preference.
SOURCE_KEYS = ("repository", "source", "source code")


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


def git_show(root: Path, commit: str, path: str) -> str:
    """A file as committed (the lock a published image was built from)."""
    return _git(root, "show", f"{commit}:{path}").decode()


def resolve(root: Path, rev: str) -> Revision:
    """The full commit id, its commit time and the project's public repository URL."""
    commit = _git(root, "rev-parse", "--verify", f"{rev}^{{commit}}").decode().strip()
    epoch = int(_git(root, "log", "-1", "--format=%ct", commit).decode().strip())
    return Revision(commit, epoch, project_source(root, commit))


def project_source(root: Path, commit: str) -> str:
    """``[project.urls] Repository`` (or ``Source``) of the commit's pyproject.toml, or ""
    when it names none. Never the clone's ``git remote``: a clone of a fork, of a local
    path or with no remote must build the same image."""
    try:
        text = _git(root, "show", f"{commit}:pyproject.toml").decode()
        urls = tomllib.loads(text).get("project", {}).get("urls", {})
    except (ImageError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ImageError(
            f"pyproject.toml at {commit[:12]}: cannot read [project.urls] ({exc})"
        ) from None
    by_key = (
        {str(k).lower(): (str(k), v) for k, v in urls.items()} if isinstance(urls, dict) else {}
    )
    for wanted in SOURCE_KEYS:
        key, url = by_key.get(wanted, ("", None))
        if isinstance(url, str) and url:
            if not url.startswith("https://"):
                raise ImageError(
                    f"pyproject.toml: [project.urls] {key} must be an https:// URL, got {url!r}"
                )
            return url
    return ""


def export(root: Path, commit: str, dest: Path, paths: tuple[str, ...] = SOURCES) -> None:
    """Extract ``paths`` of a commit into ``dest`` (no escapes, no absolute links)."""
    present = [p for p in paths if _git(root, "ls-tree", "--name-only", commit, p).strip()]
    blob = _git(root, "archive", "--format=tar", commit, *present)
    extract(blob, dest, owners=False, absolute_links=False)


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
