"""`python -m ci.gate.lock` runs in the runner's venv, which has nox, uv and packaging only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ci.gate import lock

ROOT = Path(__file__).resolve().parents[3]
# The runner's venv: the bootstrap lock's packages (nox's dependency packaging among them).
RUNNER_ONLY = """
import sys
ALLOWED = set(sys.stdlib_module_names) | {"ci", "packaging"}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in ALLOWED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the runner)")
sys.meta_path.insert(0, Block())
sys.argv = ["python -m ci.gate.lock", *sys.argv[1:]]
import runpy
runpy.run_module("ci.gate.lock", run_name="__main__")
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER_ONLY, *args],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.e2e
def test_lock_entry_point_needs_nothing_the_runner_lacks() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert "regenerate locks/*.txt and toolchain.lock" in result.stdout
    # the old entry point did need PyYAML (the clean-clone crash)
    old = subprocess.run(
        [sys.executable, "-c", RUNNER_ONLY.replace("ci.gate.lock", "ci"), "lock", "--help"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "(not in the runner)" in old.stderr


def test_a_lock_failure_is_one_line(tmp_path: Path) -> None:
    result = run("--root", str(tmp_path), "--uv", "/nonexistent/uv")
    assert result.returncode == 1
    assert result.stderr.startswith("lock: error: ") and len(result.stderr.splitlines()) == 1


def test_in_process_failure_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lock.main(["--root", str(tmp_path), "--uv", "uv"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lock: error: {tmp_path}/pyproject.toml: cannot read")


def test_in_process_lock_with_a_recording_uv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real re-lock needs the index; here uv is a script that writes the seeded lock back."""
    for rel in (
        "pyproject.toml",
        "ci/pyproject.toml",
        "locks/bootstrap.txt",
        "locks/toolchain.txt",
        "locks/runtime.txt",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((ROOT / rel).read_bytes())
    (tmp_path / "locks/toolchain.txt").write_text(
        (ROOT / "locks/toolchain.txt").read_text() + "--extra-index-url http://x/simple\n"
    )
    uv = tmp_path / "uv"
    uv.write_text(
        "#!/bin/sh\n"
        'out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
        f'cp "$out" {tmp_path}/seed-$(basename "$out"); cp {ROOT}/locks/$(basename "$out") "$out"\n'
    )
    uv.chmod(0o755)
    assert lock.main(["--root", str(tmp_path), "--uv", str(uv)]) == 0
    # clean locks seed uv as they are; the refused one only with its name==version pins
    assert (tmp_path / "seed-bootstrap.txt").read_bytes() == (
        ROOT / "locks/bootstrap.txt"
    ).read_bytes()
    seed = (tmp_path / "seed-toolchain.txt").read_text()
    assert "--extra-index-url" not in seed and "--hash" not in seed
    assert "aiolimiter==1.3.0\n" in seed
    assert "wrote toolchain.lock" in capsys.readouterr().out
    assert (tmp_path / "toolchain.lock").read_text() == (ROOT / "toolchain.lock").read_text()
    # already generated: the lock leaves ci/pyproject.toml byte-identical
    assert (tmp_path / "ci/pyproject.toml").read_bytes() == (
        ROOT / "ci/pyproject.toml"
    ).read_bytes()
