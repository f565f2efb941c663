"""ci.testing.bytecode: the test run's bytecode goes to its venv, never beside the sources."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from ci.testing import bytecode


def _in_venv(monkeypatch: pytest.MonkeyPatch, venv: Path) -> None:
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    monkeypatch.setattr(sys, "pycache_prefix", None)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)


def test_under_dont_write_bytecode_a_venv_run_caches_in_the_venv_and_not_in_the_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    _in_venv(monkeypatch, tmp_path / "venv")
    (tmp_path / "venv").mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "bytecode_probe_mod.py").write_text("VALUE = 41 + 1\n", encoding="utf-8")
    bytecode.pytest_load_initial_conftests(pytestconfig)
    assert sys.pycache_prefix == str(tmp_path / "venv" / "pycache")
    assert sys.dont_write_bytecode is False
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.delitem(sys.modules, "bytecode_probe_mod", raising=False)
    assert importlib.import_module("bytecode_probe_mod").VALUE == 42
    cached = list((tmp_path / "venv" / "pycache").rglob("bytecode_probe_mod.*.pyc"))
    assert [p.parent for p in cached] == [tmp_path / "venv" / "pycache" / src.relative_to("/")]
    assert not (src / "__pycache__").exists()  # the tree stays clean


def test_outside_a_venv_nothing_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    _in_venv(monkeypatch, tmp_path)
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path))  # a system Python: no cache there
    assert bytecode.cache_dir() is None
    bytecode.pytest_load_initial_conftests(pytestconfig)
    assert sys.pycache_prefix is None
    assert sys.dont_write_bytecode is True
    assert not (tmp_path / "pycache").exists()


def test_a_prefix_the_caller_chose_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    _in_venv(monkeypatch, tmp_path / "venv")
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "mine"))
    bytecode.pytest_load_initial_conftests(pytestconfig)
    assert sys.pycache_prefix == str(tmp_path / "mine")
    assert sys.dont_write_bytecode is True
    assert not (tmp_path / "venv").exists()


def test_the_plugin_and_its_package_load_on_their_own_with_an_early_hook() -> None:
    """`-p ci.testing.bytecode` imports this module and the ci package before coverage
    starts (that is its point); re-executing both here checks they load on their own, that
    the hook still runs first, and measures their module bodies like any other module's."""
    import ci

    assert importlib.reload(ci).__all__ == []
    module = importlib.reload(bytecode)
    assert module.pytest_load_initial_conftests.pytest_impl["tryfirst"] is True
    assert module.cache_dir() == bytecode.cache_dir()
