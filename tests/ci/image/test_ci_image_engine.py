"""The engine wheel, built from a git revision with SOURCE_DATE_EPOCH = commit time."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from ci.image import engine
from ci.image.errors import ImageError


def test_wheel_is_reproducible_from_the_commit(
    tmp_path: Path, wheelhouse: Path, project_factory: Any
) -> None:
    root = project_factory(tmp_path / "repo", wheelhouse)
    rev = engine.resolve(root, "HEAD")
    assert len(rev.commit) == 40 and rev.epoch == 1767323045 and rev.source == ""
    (root / "src" / "bot4" / "uncommitted.py").write_text("X = 1\n", encoding="utf-8")
    one = engine.build_wheel(root, rev, tmp_path / "one")
    two = engine.build_wheel(root, rev, tmp_path / "two")
    assert one.name == "bot4-0.1.0-py3-none-any.whl"
    assert one.read_bytes() == two.read_bytes()
    import zipfile

    with zipfile.ZipFile(one) as zf:
        assert not any("uncommitted" in n for n in zf.namelist())  # the commit, not the work tree
    subprocess.run(
        ["git", "-C", str(root), "remote", "add", "origin", "https://example.invalid/bot4.git"],
        check=True,
    )
    assert engine.resolve(root, "HEAD").source == "https://example.invalid/bot4.git"


def test_errors(tmp_path: Path, wheelhouse: Path, project_factory: Any) -> None:
    root = project_factory(tmp_path / "repo", wheelhouse)
    with pytest.raises(ImageError, match="git rev-parse failed"):
        engine.resolve(root, "no-such-rev")
    (root / "pyproject.toml").write_text("[project]\nname = \n", encoding="utf-8")
    subprocess.run(["git", "-C", str(root), "commit", "-qam", "break"], check=True)
    with pytest.raises(ImageError, match="building the engine wheel failed"):
        engine.build_wheel(root, engine.resolve(root, "HEAD"), tmp_path / "w")


def test_no_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImageError, match="git not found"):
        engine.resolve(tmp_path, "HEAD")
