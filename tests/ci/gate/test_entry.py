"""Hostile locks through the real entry point: `scripts/gate -s …` in a throwaway clone.

The attacker controls the pull request: a lock *and* its sha256 in toolchain.lock. Each
case asserts a one-line refusal, a non-zero exit, no session venv created, the marker
never written (no package code ran) and zero requests to the attacker's index.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TOOLCHAIN = "locks/toolchain.txt"
BOOTSTRAP = "locks/bootstrap.txt"
AIOLIMITER_WHEEL = (
    "c0c16c377049fb2e40cc3373770e29c063de32aa25d84e5db168c854da6462b7"  # pragma: allowlist secret
)

# End to end: each case runs scripts/gate in a fresh clone (venvs built from the locks);
# `nox -s e2e` runs these, not `tests`.
pytestmark = pytest.mark.e2e


def consistent(clone: Path, lock: str) -> None:
    """Re-record ``lock``'s sha256 in toolchain.lock, as a PR that edits both would."""
    index = clone / "toolchain.lock"
    text = index.read_text(encoding="utf-8")
    name = Path(lock).stem
    block = re.search(rf"\[locks\.{name}\]\npath = \"[^\"]+\"\nsha256 = \"([0-9a-f]+)\"", text)
    assert block is not None
    digest = hashlib.sha256((clone / lock).read_bytes()).hexdigest()
    index.write_text(text.replace(block[1], digest), encoding="utf-8")


def append(clone: Path, lock: str, *lines: str) -> None:
    with (clone / lock).open("a", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def assert_refused(
    result: subprocess.CompletedProcess[str], clone: Path, expected: str, marker: Path
) -> str:
    """One `gate: refused:` line naming ``expected``; nothing created, nothing ran."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gate: refused: "), lines
    assert expected in lines[0], lines
    assert " — " in lines[0]  # names its remedy
    assert not (clone / ".nox").exists()
    assert not marker.exists()
    return lines[0]


Edit = Callable[[Path, Any, Path], str]


def unpinned(clone: Path, _index: Any, _marker: Path) -> str:
    lock = clone / TOOLCHAIN
    lock.write_text(lock.read_text().replace("aiolimiter==1.3.0 \\", "aiolimiter>=1.0 \\"))
    return "'aiolimiter>=1.0' is not pinned as name==version"


def unhashed(clone: Path, _index: Any, _marker: Path) -> str:
    append(clone, TOOLCHAIN, "bot4marker==1.0")
    return "bot4marker==1.0 has no --hash=sha256:"


def extra_index(clone: Path, index: Any, _marker: Path) -> str:
    append(clone, TOOLCHAIN, f"--extra-index-url {index.url}/simple")
    return "option --extra-index-url adds a package index"


def git_url(clone: Path, index: Any, _marker: Path) -> str:
    append(clone, TOOLCHAIN, f"bot4marker @ git+{index.url}/bot4marker.git")
    return "is a URL, VCS or path requirement"


@pytest.mark.parametrize(
    "edit", [unpinned, unhashed, extra_index, git_url], ids=lambda f: f.__name__
)
def test_hostile_toolchain_lock_is_refused_before_any_venv(
    edit: Edit, clone: Any, run_gate: Any, recording_index: Any, tmp_path: Path
) -> None:
    where = clone()
    marker = tmp_path / "MARKER"
    expected = edit(where, recording_index, marker)
    consistent(where, TOOLCHAIN)
    assert_refused(run_gate(where, "-s", "lint"), where, expected, marker)
    assert recording_index.requests == []


def test_find_links_to_a_marker_wheel_is_refused(
    clone: Any, run_gate: Any, marker_wheel: Any, tmp_path: Path
) -> None:
    where = clone()
    marker = tmp_path / "MARKER"
    wheels = tmp_path / "wheels"
    _, digest = marker_wheel(wheels, marker)
    append(where, TOOLCHAIN, f"--find-links {wheels}", f"bot4marker==1.0 --hash=sha256:{digest}")
    consistent(where, TOOLCHAIN)
    assert_refused(run_gate(where, "-s", "licenses"), where, "option --find-links", marker)


def test_path_requirement_is_refused(
    clone: Any, run_gate: Any, marker_wheel: Any, tmp_path: Path
) -> None:
    where = clone()
    marker = tmp_path / "MARKER"
    wheel, digest = marker_wheel(where / "w", marker)
    append(where, TOOLCHAIN, f"./w/{wheel.name} --hash=sha256:{digest}")
    consistent(where, TOOLCHAIN)
    assert_refused(run_gate(where, "-s", "tests"), where, "URL, VCS or path requirement", marker)


def test_lock_edited_without_toolchain_lock_is_refused_and_the_remedy_works(
    clone: Any, run_gate: Any, tmp_path: Path
) -> None:
    where = clone()
    lock = where / TOOLCHAIN
    lock.write_text(lock.read_text().replace(AIOLIMITER_WHEEL, "8" + AIOLIMITER_WHEEL[1:]))
    line = assert_refused(
        run_gate(where, "-s", "audit"), where, f"{TOOLCHAIN}:1: sha256 differs", tmp_path / "M"
    )
    remedy = re.search(r"restore it \((git checkout [^)]+)\)", line)
    assert remedy is not None
    subprocess.run(shlex.split(remedy[1]), cwd=where, check=True)
    again = subprocess.run(
        ["python3", "-I", "ci/gate/preinstall.py"],
        cwd=where, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (again.returncode, again.stderr) == (0, "")


def test_hostile_bootstrap_lock_is_refused_before_pip(
    clone: Any, run_gate: Any, recording_index: Any, tmp_path: Path
) -> None:
    where = clone(with_gate_venv=False)
    append(where, BOOTSTRAP, f"--index-url {recording_index.url}/simple")
    consistent(where, BOOTSTRAP)
    line = assert_refused(
        run_gate(where, "-l"), where, "option --index-url names a package index", tmp_path / "M"
    )
    assert "git checkout HEAD -- locks/bootstrap.txt toolchain.lock" in line
    assert not (where / ".venv-gate").exists()
    assert recording_index.requests == []


def test_listing_and_lock_still_run_with_a_refused_toolchain_lock(
    clone: Any, run_gate: Any
) -> None:
    """`scripts/gate -s lock` (the printed remedy) must not be blocked by what it repairs."""
    where = clone()
    append(where, TOOLCHAIN, "--extra-index-url http://127.0.0.1:9/simple")  # bot4: allow-ip
    consistent(where, TOOLCHAIN)
    listed = run_gate(where, "-l")
    assert listed.returncode == 0, listed.stderr
    assert "lock" in listed.stdout
    refused = run_gate(where, "-s", "lock", "lint")  # lock with another session: verified
    assert refused.returncode == 1
    assert "gate: refused:" in refused.stderr


@pytest.mark.slow
def test_wrong_hash_is_refused_by_the_installer_never_built_from_sdist(
    clone: Any, run_gate: Any, tmp_path: Path
) -> None:
    """A PR that flips the wheel hash and re-records toolchain.lock passes the verifier
    (it cannot know the real hash); uv, wheels only, refuses it instead of building the
    sdist whose hash is still listed."""
    where = clone()
    lock = where / TOOLCHAIN
    lock.write_text(lock.read_text().replace(AIOLIMITER_WHEEL, "8" + AIOLIMITER_WHEEL[1:]))
    consistent(where, TOOLCHAIN)
    result = run_gate(where, "-s", "toolchain", timeout=600)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "aiolimiter" in output and "hash" in output.lower(), output[-2000:]
    assert "Building" not in output and "Built " not in output, output[-2000:]
    site = next((where / ".nox" / "toolchain").glob("lib/python3*/site-packages"))
    assert not list(site.glob("aiolimiter*")), "aiolimiter installed despite the wrong hash"


@pytest.mark.slow
def test_a_planted_distribution_is_removed_before_any_tool_runs(
    clone: Any, run_gate: Any, marker_dist: Any, tmp_path: Path
) -> None:
    where = clone()
    first = run_gate(where, "-s", "toolchain", timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    site = next((where / ".nox" / "toolchain").glob("lib/python3*/site-packages"))
    marker = tmp_path / "MARKER"
    for rel, data in marker_dist(marker).items():  # as a hostile lock's install left it
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    again = run_gate(where, "-s", "toolchain", timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "rebuilding toolchain from the lock: bot4marker 1.0 installed but not in the lock" in (
        again.stderr
    )
    assert not marker.exists(), "the planted .pth ran"
    assert not (site / "bot4marker.pth").exists()
    warm = run_gate(where, "-s", "toolchain", timeout=600)
    assert warm.returncode == 0
    assert "rebuilding" not in warm.stderr and "uv pip install" not in warm.stderr


@pytest.mark.slow
def test_a_planted_distribution_in_the_runner_venv_never_runs(
    clone: Any, run_gate: Any, marker_dist: Any, tmp_path: Path
) -> None:
    where = clone(with_gate_venv=False)
    first = run_gate(where, "-l", timeout=600)  # a real bootstrap of .venv-gate
    assert first.returncode == 0, first.stderr[-2000:]
    site = next((where / ".venv-gate").glob("lib/python3*/site-packages"))
    # No unlocked installer left from the venv module (ensurepip's pip 23.2.1 and
    # setuptools 65.5.0 have advisories): pip is the bootstrap lock's, setuptools is gone.
    pip = re.search(r"^pip==(\S+) ", (where / BOOTSTRAP).read_text(encoding="utf-8"), re.M)
    assert pip is not None
    seeds = sorted(p.name for p in site.glob("*.dist-info") if p.name.startswith(("pip-", "set")))
    assert seeds == [f"pip-{pip[1]}.dist-info"]
    marker = tmp_path / "MARKER"
    for rel, data in marker_dist(marker).items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    again = run_gate(where, "-l", timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (
        "gate: .venv-gate: rebuilding from the lock: bot4marker 1.0 installed but not in the lock"
    ) in again.stderr
    assert not marker.exists(), "the planted .pth ran in the runner"
    assert not (site / "bot4marker.pth").exists()
