"""Time `python -m ci audit`, `licenses` and `sbom --check` on the real locks, cold and warm,
against plain pip-audit (and pip-licenses, when installed) on the same environment.

Cold = a fresh uv cache (the SBOM's throwaway venv downloads its wheels); warm = the same
command again. pip-audit here cannot reach PyPI's per-version JSON API, so it "audits" by
skipping every package: its time is a lower bound for a run that audits nothing.

    .venv/bin/python benchmarks/supply_chain/bench_supply_chain.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCKS = ["locks/bootstrap.txt", "locks/toolchain.txt", "locks/runtime.txt"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, check=False)
    return time.perf_counter() - start, proc.returncode


def best(argv: list[str], env: dict[str, str], repeat: int) -> tuple[float, int]:
    runs = [timed(argv, env) for _ in range(repeat)]
    return min(t for t, _ in runs), runs[-1][1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one warm repetition instead of three")
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    uv = os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".venv-gate" / "bin" / "uv")
    base = {**os.environ, "UV": uv}
    ci = [sys.executable, "-m", "ci"]
    inputs = ["--policy", "ci/policy.toml", *(a for lock in LOCKS for a in ("--lock", lock))]
    sbom = ["--lock", "locks/runtime.txt", "--pyproject", "pyproject.toml"]
    ours = {
        "audit (offline DB + index, --online never)": [*ci, "audit", *inputs, "--online", "never"],
        "audit (+ pip-audit probe, --online auto)": [*ci, "audit", *inputs],
        "licenses (+ sources)": [
            *ci, "licenses", *inputs, "--runtime-lock", "locks/runtime.txt"
        ],
        "sbom --check": [*ci, "sbom", *sbom, "--output", "sbom/bot4-python.cdx.json", "--check"],
    }  # fmt: skip
    pip_audit = [
        str(BIN / "pip-audit"),
        "--disable-pip",
        "--require-hashes",
        "--progress-spinner",
        "off",
    ]
    for lock in LOCKS:
        pip_audit += ["-r", lock]
    rows: list[tuple[str, float | None, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-uv-cache-") as cache:
        cold_env = {**base, "UV_CACHE_DIR": cache}
        for label, argv in ours.items():
            cold, _ = timed(argv, cold_env)
            warm, code = best(argv, cold_env, repeat)
            rows.append((label, cold, warm, code))
    total_cold = sum(r[1] or 0.0 for r in rows if not r[0].startswith("audit (+"))
    total_warm = sum(r[2] for r in rows if not r[0].startswith("audit (+"))
    peer_warm, peer_code = best(pip_audit, base, repeat)
    rows.append(("pip-audit (plain, skips every package here)", None, peer_warm, peer_code))
    if importlib.util.find_spec("piplicenses") is not None:
        lic, lic_code = best([sys.executable, "-m", "piplicenses"], base, repeat)
        rows.append(("pip-licenses", None, lic, lic_code))
    else:
        rows.append(("pip-licenses (not installed: not measured)", None, float("nan"), -1))
    print(f"{'command':52} {'cold s':>8} {'warm s':>8}  exit")
    for label, first, again, code in rows:
        cold_s = f"{first:8.2f}" if first is not None else f"{'-':>8}"
        print(f"{label:52} {cold_s} {again:8.2f}  {code}")
    print(
        f"\naudit(--online never) + licenses + sbom: cold {total_cold:.2f} s, "
        f"warm {total_warm:.2f} s"
    )
    print(
        f"ratio warm total / plain pip-audit: {total_warm / peer_warm:.1f}x "
        "(pip-audit audited nothing here; ours matched every pin offline and checked the index)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
