"""Reproducibility: build twice in different directories under a different umask, time
zone and locale, and demand the same manifest digest; or rebuild a given commit and
compare with a published digest. On a mismatch, diffoscope (when installed) shows where
the two archives differ.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.image.errors import ImageError

DIFF_LINES = 80


@dataclass(frozen=True)
class Variant:
    """The host conditions one build runs under."""

    name: str
    umask: int
    tz: str
    locale: str


VARIANTS = (
    Variant("a", 0o022, "UTC", "C.UTF-8"),
    Variant("b", 0o077, "Pacific/Kiritimati", "C"),
)

Log = Callable[[str], None]


def build_once(root: Path, out: Path, variant: Variant, common: Sequence[str], rev: str) -> str:
    """Run one build in a child process under ``variant``; return its manifest digest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env.update({"TZ": variant.tz, "LC_ALL": variant.locale, "LANG": variant.locale})
    argv = [
        sys.executable,
        "-m",
        "ci.image",
        "--root",
        str(root),
        *common,
        "build",
        "--out",
        str(out),
        "--rev",
        rev,
    ]
    result = subprocess.run(  # noqa: S603  # nosec B603
        argv, capture_output=True, text=True, env=env, umask=variant.umask, check=False
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


def twice(root: Path, workdir: Path, common: Sequence[str], rev: str, say: Log) -> str:
    """Two builds under different conditions; their common digest, or an error."""
    digests = []
    for variant in VARIANTS:
        out = workdir / f"build-{variant.name}"
        digest = build_once(root, out, variant, common, rev)
        say(
            f"build {variant.name} (umask {variant.umask:03o}, TZ={variant.tz}, "
            f"LC_ALL={variant.locale}): {digest}"
        )
        digests.append(digest)
    if digests[0] != digests[1]:
        report = diffoscope(
            workdir / "build-a" / "bot4-image.tar", workdir / "build-b" / "bot4-image.tar"
        )
        say(report)
        raise ImageError(
            f"the image is not reproducible: {digests[0]} != {digests[1]} (diffoscope output above)"
        )
    return digests[0]


def confirm(
    root: Path, workdir: Path, common: Sequence[str], commit: str, expected: str, say: Log
) -> str:
    """Rebuild ``commit`` and compare with a published digest."""
    if not expected.startswith("sha256:") or len(expected) != 71:
        raise ImageError(f"--digest must look like sha256:<64 hex>, got {expected!r}")
    digest = build_once(root, workdir / "rebuild", VARIANTS[0], common, commit)
    if digest != expected:
        raise ImageError(
            f"rebuilding {commit} gave {digest}, not {expected}: "
            "the published image does not come from this commit and lock"
        )
    say(f"rebuilt {commit}: digest matches")
    return digest
