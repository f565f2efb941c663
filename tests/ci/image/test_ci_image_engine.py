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
        ["git", "-C", str(root), "remote", "add", "origin", "https://example.invalid/fork.git"],
        check=True,
    )
    assert engine.resolve(root, "HEAD").source == ""  # never the clone's remote


def test_source_comes_from_the_commits_pyproject(
    tmp_path: Path, wheelhouse: Path, project_factory: Any
) -> None:
    root = project_factory(tmp_path / "repo", wheelhouse)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    url = "https://example.invalid/bot4"
    pyproject.write_text(text + f'\n[project.urls]\nRepository = "{url}"\n', encoding="utf-8")
    subprocess.run(["git", "-C", str(root), "commit", "-qam", "urls"], check=True)
    for remote in ("https://example.invalid/fork.git", str(tmp_path / "elsewhere")):
        subprocess.run(["git", "-C", str(root), "remote", "remove", "origin"], check=False)
        subprocess.run(["git", "-C", str(root), "remote", "add", "origin", remote], check=True)
        assert engine.resolve(root, "HEAD").source == url
    pyproject.write_text(text + f'\n[project.urls]\nSource = "{tmp_path}"\n', encoding="utf-8")
    subprocess.run(["git", "-C", str(root), "commit", "-qam", "path"], check=True)
    with pytest.raises(ImageError, match=r"Source must be an https:// URL"):
        engine.resolve(root, "HEAD")


def test_errors(tmp_path: Path, wheelhouse: Path, project_factory: Any) -> None:
    root = project_factory(tmp_path / "repo", wheelhouse)
    with pytest.raises(ImageError, match="git rev-parse failed"):
        engine.resolve(root, "no-such-rev")
    good = engine.resolve(root, "HEAD")
    (root / "pyproject.toml").write_text("[project]\nname = \n", encoding="utf-8")
    subprocess.run(["git", "-C", str(root), "commit", "-qam", "break"], check=True)
    with pytest.raises(ImageError, match=r"pyproject\.toml at [0-9a-f]{12}: cannot read"):
        engine.resolve(root, "HEAD")
    broken = engine.Revision(
        subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        good.epoch,
        "",
    )
    with pytest.raises(ImageError, match="building the engine wheel failed"):
        engine.build_wheel(root, broken, tmp_path / "w")


def test_no_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImageError, match="git not found"):
        engine.resolve(tmp_path, "HEAD")
