"""The gate's sessions as a user runs them (nox from the bootstrapped .venv-gate).

Runs nox with ``-R`` (reuse the session venv, install nothing), so these check the
sessions' own logic on the venvs the gate already built.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOX = ROOT / ".venv-gate" / "bin" / "nox"


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
