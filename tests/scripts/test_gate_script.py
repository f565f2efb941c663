"""scripts/gate as GitHub's Debian container jobs run it: root, in a checkout the runner's
user owns, where git refuses to work ("dubious ownership") unless told to trust it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _snippet() -> str:
    text = (REPO_ROOT / "scripts" / "gate").read_text(encoding="utf-8")
    start = text.index("# A root container job")
    return text[start : text.index("\nfi\n", start) + 4]


@pytest.mark.e2e
def test_the_gate_trusts_only_its_own_checkout_owned_by_another_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this case is root in a checkout another user owns: run as root")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    subprocess.run(["chown", "-R", "1000:1000", str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_CONFIG_")}
    plain = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert plain.returncode != 0 and "dubious ownership" in plain.stderr
    script = f"set -euo pipefail\n{_snippet()}\nexec git rev-parse HEAD\n"
    gated = subprocess.run(
        ["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, check=False
    )
    assert gated.returncode == 0, gated.stderr
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(other)], check=True)
    subprocess.run(["chown", "-R", "1000:1000", str(other)], check=True)
    elsewhere = subprocess.run(
        ["bash", "-c", f"{_snippet()}\ncd {other} && exec git rev-parse HEAD\n"],
        cwd=clone, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert elsewhere.returncode != 0  # only the gate's own checkout is trusted
