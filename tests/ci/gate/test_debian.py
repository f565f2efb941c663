"""debian-tools.lock: written by the lock session, read by scripts/gate, checked by toolchain."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ci import cli
from ci.errors import GateError
from ci.gate import debian

ROOT = Path(__file__).resolve().parents[3]


def test_the_committed_lock_lists_exactly_the_configured_packages() -> None:
    pins = debian.read_lock(ROOT / debian.LOCK_FILE)
    assert sorted(pins) == debian.wanted(ROOT / "pyproject.toml")
    assert {"runc", "softhsm2", "skopeo", "prometheus"} <= set(pins)


def test_the_lock_is_what_dpkg_reports_here() -> None:
    # the machine the gate runs on installed these (scripts/gate); the lock records them
    assert shutil.which("dpkg-query"), "needs dpkg-query (Debian)"
    pins = debian.read_lock(ROOT / debian.LOCK_FILE)
    assert debian.resolve(sorted(pins)) == pins
    assert debian.drift(ROOT) == ([], [])


@pytest.mark.parametrize(
    "line",
    ["git", "git=", "-oAPT::Get::AllowUnauthenticated=1", "git=1.0 extra", "GIT=1.0", "git=$(id)"],
)
def test_a_malformed_lock_line_is_refused(tmp_path: Path, line: str) -> None:
    lock = tmp_path / debian.LOCK_FILE
    lock.write_text(f"# header\n{line}\n", encoding="utf-8")
    with pytest.raises(GateError, match=r"debian-tools.lock:2: expected NAME=VERSION"):
        debian.read_lock(lock)


def test_resolve_prefers_installed_then_candidate_and_renders_sorted() -> None:
    installed = {"b": "2.0-1"}.get
    candidate = {"a": "1:1.0+deb12u1", "b": "9"}.get
    pins = debian.resolve(["b", "a"], installed, candidate)
    assert pins == {"a": "1:1.0+deb12u1", "b": "2.0-1"}
    assert debian.render(pins).endswith("a=1:1.0+deb12u1\nb=2.0-1\n")
    with pytest.raises(GateError, match="zz: neither installed nor in apt's index"):
        debian.resolve(["zz"], installed, candidate)


def _project(tmp_path: Path, pins: str, packages: str = '"git", "runc"') -> Path:
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.bot4.debian]\npackages = [{packages}]\n", encoding="utf-8"
    )
    (tmp_path / debian.LOCK_FILE).write_text(pins, encoding="utf-8")
    return tmp_path


def test_drift_names_the_package_both_versions_and_the_remedy(tmp_path: Path) -> None:
    root = _project(tmp_path, "git=1:2.0-1\nrunc=1.1\n")
    problems, missing = debian.drift(root, {"git": "1:2.0-2"}.get)
    assert problems == [
        "Debian package git 1:2.0-2 installed, debian-tools.lock pins 1:2.0-1 "
        "(re-lock with scripts/gate -s lock)"
    ]
    assert missing == ["runc"]
    stale = _project(tmp_path, "git=1:2.0-1\n")
    assert debian.drift(stale, {"git": "1:2.0-1"}.get)[0] == [
        "debian-tools.lock does not list exactly [tool.bot4.debian] packages — run nox -s lock"
    ]


def test_toolchain_command_fails_on_debian_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for rel in ("toolchain.lock", "pyproject.toml", "locks", "ci/pyproject.toml"):
        src, dest = ROOT / rel, tmp_path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest)
    pins = debian.read_lock(ROOT / debian.LOCK_FILE)
    pins["git"] = "1:0.0-0"  # what an older lock would say after a Debian update
    (tmp_path / debian.LOCK_FILE).write_text(debian.render(pins), encoding="utf-8")
    code = cli.main(["--root", str(tmp_path), "toolchain", "--no-self"])
    err = capsys.readouterr().err
    assert code == 1
    assert "debian-tools.lock pins 1:0.0-0 (re-lock with scripts/gate -s lock)" in err


def test_scripts_gate_refuses_a_hostile_lock_line_before_apt_or_pip(tmp_path: Path) -> None:
    for rel in ("scripts", "ci", "locks", "toolchain.lock", "pyproject.toml"):
        src, dest = ROOT / rel, tmp_path / rel
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest)
    (tmp_path / debian.LOCK_FILE).write_text(
        "git=1:2.39.5-0+deb12u3\n-o=APT::Get::AllowUnauthenticated=true\n", encoding="utf-8"
    )
    env = {**os.environ, "BOT4_SKIP_DEBS": "0"}  # the lock is read only when apt may run
    run = subprocess.run(
        ["scripts/gate", "-l"], cwd=tmp_path, env=env, capture_output=True, text=True,
        check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "gate: error: debian-tools.lock: expected NAME=VERSION, got: "
        "-o=APT::Get::AllowUnauthenticated=true"
    )
    assert not (tmp_path / ".venv-gate").exists()  # nothing bootstrapped
