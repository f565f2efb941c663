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


@pytest.mark.e2e
def test_the_lock_is_what_dpkg_reports_here() -> None:
    # the machine the gate runs on installed these (scripts/gate); the lock records them
    assert shutil.which("dpkg-query"), "needs dpkg-query (Debian)"
    pins = debian.read_lock(ROOT / debian.LOCK_FILE)
    problems, missing, superseded = debian.drift(ROOT)
    assert (problems, missing) == ([], [])
    # a pin Debian has since superseded is installed at the newer version, and said so
    for note in superseded:
        assert "an upstream update: re-lock with scripts/gate -s lock" in note
    current = {name: v for name, v in pins.items() if debian.pin_obtainable(name, v)}
    assert debian.resolve(sorted(current)) == current


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
    problems, missing, superseded = debian.drift(
        root, {"git": "1:2.0-2"}.get, lambda name, version: True
    )
    assert problems == [
        "Debian package git 1:2.0-2 installed, debian-tools.lock pins 1:2.0-1 "
        "(re-lock with scripts/gate -s lock)"
    ]
    assert (missing, superseded) == (["runc"], [])
    # the archive dropped the pinned version (a Debian update): a warning, not a problem
    problems, missing, superseded = debian.drift(
        root, {"git": "1:2.0-2"}.get, lambda name, version: False
    )
    assert (problems, missing) == ([], ["runc"])
    assert superseded == [
        "Debian package git: the archive no longer has 1:2.0-1 (debian-tools.lock); "
        "1:2.0-2 is installed — an upstream update: re-lock with scripts/gate -s lock"
    ]
    stale = _project(tmp_path, "git=1:2.0-1\n")
    assert debian.drift(stale, {"git": "1:2.0-1"}.get)[0] == [
        "debian-tools.lock does not list exactly [tool.bot4.debian] packages — "
        "run scripts/gate -s lock"
    ]


def _toolchain_copy(tmp_path: Path, git_pin: str) -> Path:
    for rel in ("toolchain.lock", "pyproject.toml", "locks", "ci/pyproject.toml"):
        src, dest = ROOT / rel, tmp_path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest)
    pins = debian.read_lock(ROOT / debian.LOCK_FILE)
    pins["git"] = git_pin
    (tmp_path / debian.LOCK_FILE).write_text(debian.render(pins), encoding="utf-8")
    return tmp_path


def test_toolchain_command_fails_on_debian_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _toolchain_copy(tmp_path, "1:0.0-0")
    # the archive still offers the pinned version, yet another one is installed
    monkeypatch.setattr(debian, "pin_obtainable", lambda name, version: True)
    code = cli.main(["--root", str(root), "toolchain", "--no-self"])
    err = capsys.readouterr().err
    assert code == 1
    assert "debian-tools.lock pins 1:0.0-0 (re-lock with scripts/gate -s lock)" in err


@pytest.mark.e2e
def test_toolchain_command_warns_when_debian_superseded_a_pin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # what an older lock says after a Debian update: the real archive has no 1:0.0-0
    root = _toolchain_copy(tmp_path, "1:0.0-0")
    code = cli.main(["--root", str(root), "toolchain", "--no-self"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "warning: Debian package git: the archive no longer has 1:0.0-0" in err
    assert "re-lock with scripts/gate -s lock" in err


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


APT_GET_SHIM = """#!/bin/sh
# records what scripts/gate asks apt-get for; 'install' then stops the gate (set -e)
echo "$*" >> "{log}"
case "$1" in update) exit 0 ;; esac
exit 100
"""
DPKG_QUERY_SHIM = "#!/bin/sh\nexit 1\n"  # every pinned package reads as not installed
# every pinned package reads as installed at an old build (as a machine image's own systemd);
# each query is recorded beside the shim (bin/dpkg-query.log)
DPKG_QUERY_OLD_SHIM = """#!/bin/sh
echo "$*" >> "$0.log"
case "$*" in *Status*) printf 'install ok installed 1:0.1-1' ;; *) printf '1:0.1-1' ;; esac
"""


def _gate_with_apt_shims(
    tmp_path: Path, lock: str, dpkg_query: str = DPKG_QUERY_SHIM, *, apt_stops: bool = True
) -> tuple[subprocess.CompletedProcess[str], str]:
    """scripts/gate on a copy of the repo whose packages read as missing (or as ``dpkg_query``
    says): the real apt-cache decides pinned vs superseded against this machine's archive
    index; apt-get is recorded (and its ``install`` stops the gate, when ``apt_stops``)."""
    if os.geteuid() != 0 or shutil.which("apt-cache") is None:
        pytest.fail("needs root and apt-cache (Debian): scripts/gate installs packages as root")
    repo = tmp_path / "repo"
    for rel in ("scripts", "ci", "locks", "toolchain.lock", "pyproject.toml"):
        src, dest = ROOT / rel, repo / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest)
    (repo / debian.LOCK_FILE).write_text(lock, encoding="utf-8")
    shims = tmp_path / "bin"
    shims.mkdir()
    log = tmp_path / "apt-get.log"
    for name, text in (("apt-get", APT_GET_SHIM.format(log=log)), ("dpkg-query", dpkg_query)):
        (shims / name).write_text(text, encoding="utf-8")
        (shims / name).chmod(0o755)
    env = {**os.environ, "BOT4_SKIP_DEBS": "0", "PATH": f"{shims}:{os.environ['PATH']}"}
    run = subprocess.run(
        ["scripts/gate", "-l"], cwd=repo, env=env, capture_output=True, text=True,
        check=False, timeout=300,
    )  # fmt: skip
    if apt_stops:
        assert not (repo / ".venv-gate").exists()  # stopped at apt: nothing bootstrapped
    return run, log.read_text(encoding="utf-8") if log.exists() else ""


@pytest.mark.e2e
def test_scripts_gate_installs_the_pinned_version_when_the_archive_has_it(
    tmp_path: Path,
) -> None:
    current = debian.candidate_version("git")
    assert current is not None, "apt has no index for git here (apt-get update)"
    run, apt = _gate_with_apt_shims(tmp_path, f"git={current}\n")
    assert apt.splitlines() == [
        "update -qq",
        f"install -y -qq --no-install-recommends --allow-downgrades git={current}",
    ], run.stderr
    assert "drift" not in run.stderr


@pytest.mark.e2e
def test_scripts_gate_brings_a_package_installed_at_another_version_to_its_pin(
    tmp_path: Path,
) -> None:
    """A machine image's own older build (this machine's systemd was one) is not "missing":
    the gate installs the pin over it, without refreshing apt's index, and says so."""
    current = debian.candidate_version("git")
    assert current is not None, "apt has no index for git here (apt-get update)"
    run, apt = _gate_with_apt_shims(tmp_path, f"git={current}\n", DPKG_QUERY_OLD_SHIM)
    assert apt.splitlines() == [
        f"install -y -qq --no-install-recommends --allow-downgrades git={current}",
    ], run.stderr
    assert f"gate: installing git {current} (debian-tools.lock) over the installed 1:0.1-1" in (
        run.stderr.splitlines()
    )
    # one read of the installed version per package: the message reuses the status query's
    queries = (tmp_path / "bin" / "dpkg-query.log").read_text(encoding="utf-8").splitlines()
    assert queries == ["-W -f=${Status} ${Version} git"]


@pytest.mark.e2e
def test_scripts_gate_leaves_a_package_at_another_version_when_its_pin_is_gone(
    tmp_path: Path,
) -> None:
    """A pin the archive no longer holds cannot be installed: nothing is asked of apt (the
    toolchain session warns and names the re-lock)."""
    run, apt = _gate_with_apt_shims(
        tmp_path, "git=1:2.0.0-1\n", DPKG_QUERY_OLD_SHIM, apt_stops=False
    )
    assert apt == "", run.stderr
    assert "gate: bootstrapping nox and uv" in run.stderr  # went on past apt
    assert "gate: installing git" not in run.stderr


@pytest.mark.e2e
def test_scripts_gate_on_a_superseded_pin_warns_in_one_line_and_installs_the_newest(
    tmp_path: Path,
) -> None:
    current = debian.candidate_version("git")
    assert current is not None, "apt has no index for git here (apt-get update)"
    gone = "1:2.0.0-1"  # Debian keeps only the newest build: an old pin cannot be fetched
    run, apt = _gate_with_apt_shims(tmp_path, f"git={gone}\n")
    warnings = [line for line in run.stderr.splitlines() if "drift" in line]
    assert warnings == [
        f"gate: warning: drift: git {gone} (debian-tools.lock) is no longer in the archive; "
        f"installing {current}; re-lock with scripts/gate -s lock"
    ]
    assert apt.splitlines() == [
        "update -qq",
        "install -y -qq --no-install-recommends --allow-downgrades git",
    ]
