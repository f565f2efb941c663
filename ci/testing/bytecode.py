"""Keep the test run's bytecode in its venv (a pytest plugin, ``-p ci.testing.bytecode``).

With ``PYTHONDONTWRITEBYTECODE=1`` (set on the project machines, to keep ``__pycache__``
out of the tree) and uv's venvs (installed without ``.pyc``), every pytest process
compiled every module it imported, and re-ran pytest's assertion rewrite of every test
module, on every run: about 7 of the 11 CPU-seconds that collecting the suite took, paid
again by each xdist worker. This plugin, loaded before the conftest files, writes that
bytecode under ``<venv>/pycache`` (``sys.pycache_prefix``) instead: never beside the
sources, dropped with the venv, checked against each source's mtime and size like any
``.pyc``. Only this process is affected; the environment its subprocesses inherit is not.
Outside a venv it does nothing (no cache is written into a system Python).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def cache_dir() -> Path | None:
    """Where this process keeps its bytecode: ``<venv>/pycache``, or None outside a venv."""
    if sys.prefix == sys.base_prefix:
        return None
    return Path(sys.prefix) / "pycache"


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Before the conftests (and the test modules) are imported: cache their bytecode."""
    target = cache_dir()
    if target is None or sys.pycache_prefix is not None:  # the caller chose a prefix already
        return
    target.mkdir(exist_ok=True)
    sys.pycache_prefix = str(target)
    sys.dont_write_bytecode = False
