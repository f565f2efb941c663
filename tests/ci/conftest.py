"""Fixtures for the toolkit's tests: throwaway repositories and virtualenv layouts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def make_dist(site: Path, name: str, version: str) -> None:
    """Write a minimal, real .dist-info that importlib.metadata reads as installed."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )


def make_venv(root: Path, packages: dict[str, str], version: str = "3.11.7") -> Path:
    """A directory laid out like a virtualenv with the given distributions installed."""
    site = root / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (root / "pyvenv.cfg").write_text(
        f"home = /usr/bin\nversion_info = {version}\n", encoding="utf-8"
    )
    for name, ver in packages.items():
        make_dist(site, name, ver)
    return root


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """An empty git work tree."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "config", "user.email", "t@example.invalid"], check=True
    )
    subprocess.run(["git", "-C", str(tmp_path), "config", "user.name", "t"], check=True)
    return tmp_path


VenvFactory = type(make_venv)


@pytest.fixture
def venv_factory() -> object:
    """``make_venv`` as a fixture (test modules cannot import conftest in importlib mode)."""
    return make_venv
