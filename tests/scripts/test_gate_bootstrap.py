"""scripts/gate: two first-time runs in one clone must not race on .venv-gate."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_two_first_runs_share_one_bootstrap(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    (clone / "locks").mkdir()
    shutil.copy2(ROOT / "scripts" / "gate", clone / "scripts" / "gate")
    shutil.copy2(ROOT / "locks" / "bootstrap.txt", clone / "locks" / "bootstrap.txt")
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
