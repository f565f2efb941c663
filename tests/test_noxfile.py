"""The gate's sessions as a user runs them (nox from the bootstrapped .venv-gate).

Runs nox with ``-R`` (reuse the session venv, install nothing), so these check the
sessions' own logic on the venvs the gate already built.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOX = ROOT / ".venv-gate" / "bin" / "nox"
# end to end (nox runs sessions, one builds fresh venvs): `nox -s e2e` runs these, not `tests`
pytestmark = pytest.mark.e2e


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_a_subset_run_skips_the_floors_and_keeps_the_full_report() -> None:
    assert NOX.exists(), "run scripts/gate once: it bootstraps .venv-gate/bin/nox"
    full = ROOT / "reports" / "coverage.json"
    before = _digest(full)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_", "COVERAGE_"))}
    run = subprocess.run(
        [str(NOX), "-R", "-s", "tests", "--", "tests/structure/test_import_graph.py", "-q",
         "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-2000:]
    assert "subset run: coverage floors not applied" in out
    assert "coverage-gate" not in out
    assert (ROOT / "reports" / "subset" / "coverage-html" / "index.html").exists()
    assert _digest(full) == before


def test_two_runs_of_one_session_share_its_venv_one_after_the_other(tmp_path: Path) -> None:
    """Started together on a venv that does not exist yet: one creates and fills it, the
    other says it waits, then reuses it whole; neither half-builds it under the other."""
    assert NOX.exists(), "run scripts/gate once: it bootstraps .venv-gate/bin/nox"
    envdir = tmp_path / "envs"
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "BOT4_GATE_VENV_LOCKS" and not k.startswith(("COV_", "COVERAGE_"))
    }
    argv = [str(NOX), "--envdir", str(envdir), "-s", "workflows"]
    runs = []
    for _ in range(2):
        runs.append(
            subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
        time.sleep(0.3)
    outs = [run.communicate(timeout=900)[0] for run in runs]
    for run, out in zip(runs, outs, strict=True):
        assert run.returncode == 0, out[-3000:]
    assert sum(out.count("Creating virtual environment") for out in outs) == 1, outs
    waiting = f"gate: waiting for another run using {envdir / 'workflows'} (it holds "
    assert sum(waiting in out for out in outs) == 1, outs
    assert sum("Reusing existing virtual environment at" in out for out in outs) == 1, outs
