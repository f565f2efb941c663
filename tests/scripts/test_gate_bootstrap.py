"""scripts/gate: two first-time runs in one clone must not race on .venv-gate."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_two_first_runs_share_one_bootstrap(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    # What the bootstrap reads: the script, the locks and their index, the declarations
    # the pre-install verifier digests, and the verifier itself.
    for name in ("scripts/gate", "toolchain.lock", "pyproject.toml", "ci/pyproject.toml"):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    shutil.copytree(ROOT / "locks", clone / "locks")
    shutil.copytree(
        ROOT / "ci" / "gate", clone / "ci" / "gate", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {**os.environ, "BOT4_SKIP_DEBS": "1"}
    runs = [
        subprocess.Popen(
            [str(clone / "scripts" / "gate"), "--version"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    results = [(run.wait(timeout=600), *run.communicate()) for run in runs]
    for code, _out, err in results:
        assert code == 0, err
    bootstraps = sum(err.count("bootstrapping nox and uv") for _, _, err in results)
    assert bootstraps == 1, [err for _, _, err in results]
    assert (clone / ".venv-gate" / "bin" / "nox").exists()
