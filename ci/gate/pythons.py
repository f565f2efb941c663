"""Find an installed CPython of a given minor version (``nox -s toolkit-pythons``).

Standard library only: the noxfile loads it by path in the runner. Looked for, in order:
``python3.X`` on ``PATH``, then pyenv's installs (``$PYENV_ROOT/versions/3.X.*``, newest
patch first). A candidate counts only if it runs and says it is 3.X — a pyenv shim for
a version that is not selected exits non-zero and is passed over, not trusted.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

_ASK = "import sys; print('%d.%d' % sys.version_info[:2])"


def _patch(path: Path) -> tuple[int, ...]:
    """(3, 10, 13) from …/versions/3.10.13/bin/python3.10; non-numeric parts sort first."""
    return tuple(int(p) for p in re.findall(r"\d+", path.parents[1].name))


def candidates(version: str, path_env: str, pyenv_root: Path) -> list[Path]:
    """Every place a ``python<version>`` may be, in the order they are tried."""
    name = f"python{version}"
    on_path = [Path(d) / name for d in path_env.split(os.pathsep) if d]
    pyenv = sorted(pyenv_root.glob(f"versions/{version}.*/bin/{name}"), key=_patch, reverse=True)
    return [p for p in [*on_path, *pyenv] if p.is_file() and os.access(p, os.X_OK)]


def find(version: str, path_env: str, pyenv_root: Path) -> str | None:
    """The first candidate that runs and reports ``version``; None when there is none."""
    for path in candidates(version, path_env, pyenv_root):
        try:
            done = subprocess.run(  # noqa: S603  # nosec B603 - a candidate interpreter, no shell
                [str(path), "-I", "-c", _ASK],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip() == version:
            return str(path)
    return None


def absent_words(value: str) -> frozenset[str]:
    """``BOT4_ABSENT``'s words (as ci.testing.skips reads them): ``python3.10,runc``."""
    return frozenset(w.strip().lower() for w in value.split(",") if w.strip())


def resolve(
    versions: Sequence[str], path_env: str, pyenv_root: Path, absent: frozenset[str]
) -> tuple[dict[str, str], list[str], str | None]:
    """(version → interpreter found, versions declared absent, the failure line or None).

    No silent skip: a version neither found nor declared (``python3.X`` in BOT4_ABSENT)
    makes the failure line, which names both remedies."""
    found: dict[str, str] = {}
    declared: list[str] = []
    missing: list[str] = []
    for version in versions:
        python = find(version, path_env, pyenv_root)
        if python is not None:
            found[version] = python
        elif f"python{version}" in absent:
            declared.append(version)
        else:
            missing.append(version)
    if not missing:
        return found, declared, None
    names = [f"python{v}" for v in missing]
    return (
        found,
        declared,
        f"no interpreter for {', '.join(names)} (looked on PATH and in {pyenv_root}/versions): "
        f"install it, or declare it absent with BOT4_ABSENT={','.join(names)}",
    )
