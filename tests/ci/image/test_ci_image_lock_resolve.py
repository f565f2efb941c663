"""Resolving image.toml into image.lock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ci.image import apt_index, lock_format, lock_resolve
from ci.image.errors import ImageError
from ci.image.fetch import Cache, find_pip


def test_upstream_version() -> None:
    assert lock_resolve.upstream_version("3.11.2-6+deb12u9") == "3.11.2"
    assert lock_resolve.upstream_version("1:1.2.13.dfsg-1") == "1.2.13.dfsg"
    assert lock_resolve.upstream_version("20250419") == "20250419"


def test_engine_requirements(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["numpy>=2"]\n'
        '[project.optional-dependencies]\nkms = ["boto3"]\n',
        encoding="utf-8",
    )
    assert lock_resolve.engine_requirements(pyproject, ["kms"]) == ("numpy>=2", "boto3")
    with pytest.raises(ImageError, match=r"bot4\[hsm\]"):
        lock_resolve.engine_requirements(pyproject, ["hsm"])


def test_unpinned_requirement_and_missing_python(
    locked: Any, tmp_path: Path, offline_pip: Path
) -> None:
    spec = lock_format.read_spec(locked.root / lock_format.SPEC_FILE)
    fetcher = lock_resolve.WheelFetcher(Cache(tmp_path / "cache"), find_pip(None), spec)
    with pytest.raises(ImageError, match="demo is needed in the image but not pinned"):
        lock_resolve.wheel_closure(["demo"], {}, fetcher, {})
    archive = apt_index.build_archive(
        apt_index.parse_packages(locked.packages.read_text(encoding="utf-8"), "bookworm")
    )
    no_python = lock_format.Spec(**{**vars(spec), "roots": ("tzdata",)})
    with pytest.raises(ImageError, match=r"python3\.11-minimal is not in the Debian closure"):
        lock_resolve.make_lock(locked.root, no_python, archive, fetcher)
    from ci.gate.requirements import parse_lock

    (pin,) = parse_lock(f"demodep==9.9 --hash=sha256:{'0' * 64}\n", "x")
    with pytest.raises(ImageError, match="pip download failed"):
        fetcher([pin])
