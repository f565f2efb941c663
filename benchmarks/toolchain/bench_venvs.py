"""Benchmark: session environment creation with uv vs virtualenv+pip, and a warm `nox` run.

Both installers get the same job — a fresh venv with the full hashed toolchain lock —
after one warm-up run each, so both read from warm caches. The ratio is printed.
`--nox` also times a warm run of the whole gate (scripts/gate) twice and reports the
second. Run: python benchmarks/toolchain/bench_venvs.py [--quick] [--nox]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "locks" / "toolchain.txt"


def _run(argv: Sequence[str]) -> None:
    subprocess.run(argv, check=True, cwd=ROOT, capture_output=True)


def _tool(name: str) -> str:
    found = (
        os.environ.get(name.upper())
        or shutil.which(name)
        or str(Path(sys.executable).parent / name)
    )
    if not Path(found).exists():
        raise SystemExit(f"bench_venvs: {name} not found (run inside nox -s bench)")
    return found


def create_with_uv(uv: str, where: Path) -> None:
    """uv venv + uv pip install --require-hashes of the toolchain lock."""
    _run([uv, "venv", "-q", "--python", sys.executable, str(where)])
    _run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(where / "bin" / "python"),
            "--require-hashes",
            "-r",
            str(LOCK),
        ]
    )


def create_with_pip(where: Path) -> None:
    """python -m virtualenv + pip install --require-hashes of the toolchain lock."""
    _run([sys.executable, "-m", "virtualenv", "-q", str(where)])
    _run(
        [
            str(where / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--require-hashes",
            "-r",
            str(LOCK),
        ]
    )


def timed(fn: Callable[..., None], rounds: int, *args: object) -> list[float]:
    """Seconds per round, after one warm-up round."""
    times = []
    for i in range(rounds + 1):
        with tempfile.TemporaryDirectory(prefix="bench-venv-") as tmp:
            start = time.perf_counter()
            fn(*args, Path(tmp) / "venv")
            if i:
                times.append(time.perf_counter() - start)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    """Print both medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one round instead of three")
    parser.add_argument("--nox", action="store_true", help="also time a warm full gate run")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else 3
    uv = _tool("uv")
    print(
        f"environment creation: {sum(1 for _ in LOCK.open() if '==' in _)} locked packages, "
        f"median of {rounds} warm round(s)"
    )
    t_uv = statistics.median(timed(create_with_uv, rounds, uv))
    t_pip = statistics.median(timed(create_with_pip, rounds))
    print(f"  uv venv + uv pip install       {t_uv:8.2f} s")
    print(f"  virtualenv + pip install       {t_pip:8.2f} s")
    print(f"  ratio (pip / uv)               {t_pip / t_uv:8.1f}x")
    if args.nox:
        gate = [str(ROOT / "scripts" / "gate")]
        _run(gate)
        start = time.perf_counter()
        _run(gate)
        print(f"warm full gate (scripts/gate)    {time.perf_counter() - start:8.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
