"""ci.gate.pythons: interpreters for nox -s toolkit-pythons are found, and verified by
running them — a shim or stub that is not the asked-for version is passed over."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ci.gate import pythons

THIS = f"{sys.version_info.major}.{sys.version_info.minor}"


def stub(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_this_interpreter_is_found_on_path(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / f"python{THIS}").symlink_to(sys.executable)
    found = pythons.find(THIS, str(bindir), tmp_path / "no-pyenv")
    assert found == str(bindir / f"python{THIS}")


def test_a_failing_shim_and_a_wrong_version_are_passed_over_for_pyenv(tmp_path: Path) -> None:
    """Attack: a pyenv shim that exits 127 and a stub that claims nothing useful come first
    on PATH; the real interpreter under $PYENV_ROOT/versions is the one chosen, newest patch
    first among the installs that run."""
    shims, liar = tmp_path / "shims", tmp_path / "liar"
    stub(shims / f"python{THIS}", "echo 'pyenv: command not found' >&2; exit 127")
    stub(liar / f"python{THIS}", "echo 2.7")
    root = tmp_path / "pyenv"
    good = root / "versions" / f"{THIS}.9" / "bin" / f"python{THIS}"
    good.parent.mkdir(parents=True)
    good.symlink_to(sys.executable)
    stub(root / "versions" / f"{THIS}.10" / "bin" / f"python{THIS}", "exit 1")  # broken newest
    path_env = os.pathsep.join([str(shims), str(liar)])
    assert [p.parent.parent.name for p in pythons.candidates(THIS, path_env, root)][2:] == [
        f"{THIS}.10",
        f"{THIS}.9",
    ]
    assert pythons.find(THIS, path_env, root) == str(good)


def test_nothing_found_is_none(tmp_path: Path) -> None:
    assert pythons.find("3.99", str(tmp_path), tmp_path) is None


def test_a_missing_version_fails_unless_declared_absent(tmp_path: Path) -> None:
    """No silent skip: 3.99 (never found) is the failure line naming both remedies; declared
    in BOT4_ABSENT it is reported as declared, and the found ones are still returned."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / f"python{THIS}").symlink_to(sys.executable)
    found, declared, failure = pythons.resolve([THIS, "3.99"], str(bindir), tmp_path, frozenset())
    assert found == {THIS: str(bindir / f"python{THIS}")} and declared == []
    assert failure == (
        f"no interpreter for python3.99 (looked on PATH and in {tmp_path}/versions): "
        "install it, or declare it absent with BOT4_ABSENT=python3.99"
    )
    absent = pythons.absent_words("runc, Python3.99 ,")
    assert absent == {"runc", "python3.99"}
    found, declared, failure = pythons.resolve([THIS, "3.99"], str(bindir), tmp_path, absent)
    assert list(found) == [THIS] and declared == ["3.99"] and failure is None
