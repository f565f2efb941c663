"""The no-silent-skips plugin, unit and end to end (a real pytest run in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci.testing.skips import ABSENT_ENV, declaration_for, declared_absent

SUITE = """
import pytest

def test_runs():
    assert True

def test_needs_a_tool():
    pytest.skip("frobtool is not installed (Debian package frobtool)")

@pytest.mark.dockerfile
def test_owned_by_the_dockerfile_session():
    assert True
"""


def _pytest(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_suite.py").write_text(SUITE, encoding="utf-8")
    environ = {
        k: v for k, v in os.environ.items() if k not in {ABSENT_ENV, "BOT4_DOCKERFILE_CHECK"}
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "ci.testing.skips", "-p", "no:cacheprovider",
         "--strict-markers", "-rA", *args, str(tmp_path)],
        cwd=tmp_path, env={**environ, **env}, capture_output=True, text=True, check=False,
        timeout=600,  # xdist workers start slowly on a loaded 2-core machine (40 s seen)
    )  # fmt: skip


def test_declared_absent_reads_a_comma_list() -> None:
    assert declared_absent({ABSENT_ENV: " runc, IPv6 ,,"}) == {"runc", "ipv6"}
    assert declared_absent({}) == frozenset()


def test_a_reason_matches_whole_words_only() -> None:
    declared = frozenset({"runc", "softhsm2"})
    assert declaration_for("needs root and runc.", declared) == "runc"
    assert declaration_for("softhsm2 is not installed (Debian package softhsm2)", declared)
    assert declaration_for("needs crun", declared) is None
    assert declaration_for("needs runcible", declared) is None


@pytest.mark.e2e
def test_an_undeclared_skip_fails_the_run(tmp_path: Path) -> None:
    run = _pytest(tmp_path)
    assert run.returncode == 1, run.stdout
    assert "undeclared skip: frobtool is not installed" in run.stdout
    assert f"{ABSENT_ENV}=<tool>" in run.stdout
    assert "1 failed, 1 passed, 1 deselected" in run.stdout


@pytest.mark.e2e
def test_a_declared_absence_skips_and_is_listed(tmp_path: Path) -> None:
    run = _pytest(tmp_path, **{ABSENT_ENV: "frobtool"})
    assert run.returncode == 0, run.stdout
    assert f"declared absent ({ABSENT_ENV}): frobtool — 1 test(s) skipped" in run.stdout
    assert "1 passed, 1 skipped, 1 deselected" in run.stdout


@pytest.mark.e2e
def test_under_xdist_an_undeclared_skip_fails_and_a_declared_one_is_listed(
    tmp_path: Path,
) -> None:
    # the gate's full run is parallel: the verdict and the summary must survive the workers
    failed = _pytest(tmp_path, "-n", "2")
    assert failed.returncode == 1, failed.stdout
    assert "undeclared skip: frobtool is not installed" in failed.stdout
    declared = _pytest(tmp_path, "-n", "2", **{ABSENT_ENV: "frobtool"})
    assert declared.returncode == 0, declared.stdout
    assert f"declared absent ({ABSENT_ENV}): frobtool — 1 test(s) skipped" in declared.stdout


@pytest.mark.e2e
def test_the_owning_session_runs_its_tests(tmp_path: Path) -> None:
    run = _pytest(tmp_path, BOT4_DOCKERFILE_CHECK="1", **{ABSENT_ENV: "frobtool"})
    assert run.returncode == 0, run.stdout
    assert "2 passed, 1 skipped" in run.stdout
