"""Benchmark: a warm session's start-up with the pre-install verifier and venv check vs without.

Without (the gate before them): every session re-ran its two installs on a warm venv —
``uv pip install --require-hashes -r locks/toolchain.txt`` and the editable bot4 + ci
install — timed here with ``--dry-run`` so the measured venv is left untouched. With:
the verifier over every lock, the file-by-file venv check against the lock and, as the
check found the venv complete, no install at all. Both run on the same venv in the same
run; the median of each and their ratio are printed, plus the check's own cost, which
the gate budgets at ≤ 1 s per session.

Run: python benchmarks/toolchain/bench_verify.py [--quick] [--venv .nox/tests] (or nox -s bench)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ["locks/toolchain.txt", "pyproject.toml", "ci/pyproject.toml"]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "ci" / "gate" / f"{name}.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench_verify: cannot load ci/gate/{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    """Time both start-up paths on one warm venv and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs each instead of 7")
    parser.add_argument(
        "--venv",
        default=sys.prefix,
        help="a warm session venv (default: this one, e.g. .nox/bench)",
    )
    args = parser.parse_args()
    runs = 3 if args.quick else 7
    venv = (ROOT / args.venv).resolve()
    uv = os.environ.get("UV") or shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not (venv / "bin" / "python").exists() or not Path(uv).exists():
        raise SystemExit(f"bench_verify: needs a warm venv at {venv} and uv (scripts/gate first)")
    preinstall, venvcheck = _load("preinstall"), _load("venvcheck")
    pins = preinstall.lock_pins(ROOT / "locks" / "toolchain.txt")
    inputs = preinstall.files_digest(ROOT, INPUTS)
    with tempfile.TemporaryDirectory(prefix="bot4-bench-verify-") as tmp:
        state = Path(tmp) / "state.json"
        problems = venvcheck.record(venv, pins, state, inputs)  # the baseline after install
        if problems:
            raise SystemExit(f"bench_verify: {venv} is not clean: {problems[0]}")

        def with_checks() -> None:
            assert preinstall.verify(ROOT) == []  # noqa: S101
            assert venvcheck.check(venv, pins, state, inputs) == ([], True)  # noqa: S101

        def without() -> None:
            py = ["--python", str(venv / "bin" / "python"), "--dry-run", "-q"]
            env = {**os.environ, "UV_NO_CONFIG": "1"}
            for extra in (
                ["--require-hashes", "--only-binary", ":all:", "-r", "locks/toolchain.txt"],
                ["--no-deps", "--no-build-isolation", "--no-index", "-e", ".", "-e", "./ci"],
            ):
                subprocess.run(
                    [uv, "pip", "install", *py, *extra], cwd=ROOT, env=env, check=True,
                    capture_output=True,
                )  # fmt: skip

        without()  # warm caches for both
        with_checks()
        t_with = _median(with_checks, runs)
        t_without = _median(without, runs)
        t_verify = _median(lambda: preinstall.verify(ROOT), runs)
    files = sum(len(f) for _, _, f in os.walk(venv))
    label = venv.relative_to(ROOT) if venv.is_relative_to(ROOT) else venv
    print(f"warm session start-up over {label} ({files} files), median of {runs}:")
    print(f"  with    verifier + venv check, installs skipped : {t_with * 1000:8.0f} ms")
    print(f"  without two no-op installs (uv, dry run)        : {t_without * 1000:8.0f} ms")
    print(f"  ratio with/without                               : {t_with / t_without:8.2f}x")
    print(f"  of which the lock verifier alone                 : {t_verify * 1000:8.0f} ms")
    budget = "within" if t_with <= 1.0 else "OVER"
    print(f"  added per session at most {t_with:.2f} s ({budget} the 1 s budget)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
