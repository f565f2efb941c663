"""A virtualenv on disk, read without running it: its site-packages and Python version.

Its own module, standard library only, so that ``python -m ci licenses --venv`` reads the
venv without importing the toolchain lock's machinery (which uses it for the drift
check)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ci.errors import GateError


@dataclass(frozen=True)
class Environment:
    """An environment to check: a role (runner/session) and its site-packages."""

    label: str
    role: str
    site_packages: Path
    python_version: str


def _site_packages(venv: Path) -> Path:
    candidates = sorted(venv.glob("lib/python3*/site-packages"))
    if not candidates:
        raise GateError(f"{venv}: no lib/python3*/site-packages; is it a virtualenv?")
    return candidates[0]


def _venv_python_version(venv: Path) -> str:
    cfg = venv / "pyvenv.cfg"
    try:
        text = cfg.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GateError(f"{venv}: no pyvenv.cfg; is it a virtualenv?") from None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in {"version_info", "version"}:
            return value.strip()
    raise GateError(f"{cfg}: no version line")


def environment_from_venv(label: str, role: str, venv: Path) -> Environment:
    """Describe a virtualenv on disk for checking."""
    return Environment(label, role, _site_packages(venv), _venv_python_version(venv))
