"""ci.gate.venvs: a virtualenv read from disk without running it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci.errors import GateError
from ci.gate import venvs


def test_a_virtualenv_is_described_by_its_site_packages_and_version(tmp_path: Path) -> None:
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (tmp_path / "pyvenv.cfg").write_text("home = /usr\nversion_info = 3.11.7\n", "utf-8")
    env = venvs.environment_from_venv("v", "session", tmp_path)
    assert env == venvs.Environment("v", "session", site, "3.11.7")


def test_not_a_venv(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="no lib/python3"):
        venvs.environment_from_venv("x", "session", tmp_path)
    (tmp_path / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    with pytest.raises(GateError, match=r"no pyvenv\.cfg"):
        venvs.environment_from_venv("x", "session", tmp_path)
    (tmp_path / "pyvenv.cfg").write_text("home = /usr\n", encoding="utf-8")
    with pytest.raises(GateError, match="no version line"):
        venvs.environment_from_venv("x", "session", tmp_path)
