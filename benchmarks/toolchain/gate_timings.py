"""The gate's time per session, cold and warm, as a user on this machine would see it.

Clones the repository (HEAD) into a scratch directory, then runs each default session
with `scripts/gate -s SESSION` twice: the first run is **cold** for the clone (no
`.venv-gate`, no `.nox` venvs, no built image) with the machine's uv and image download
caches as they are; the second is **warm** (everything reused). Writes a Markdown table
and a JSON file. Debian packages are assumed installed (BOT4_SKIP_DEBS=1).

Run: python3 benchmarks/toolchain/gate_timings.py [--sessions tests lint …] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ci_sessions(script: Path = ROOT / ".ci" / "run") -> tuple[str, ...]:
    """The sessions `.ci/run` runs, in its order (read from it, so the two cannot drift)."""
    sessions: list[str] = []
    for line in script.read_text(encoding="utf-8").splitlines():
        command = line.split("#", 1)[0]
        if "scripts/gate -s " not in command:
            continue
        words = command.split("scripts/gate -s ", 1)[1].split("--", 1)[0].split()
        sessions += [w for w in words if w not in sessions]
    return tuple(sessions)


def run_session(clone: Path, session: str) -> tuple[float, int]:
    """Seconds and exit status of one `scripts/gate -s SESSION` in ``clone``."""
    env = {**os.environ, "BOT4_SKIP_DEBS": "1", "CI": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        ["scripts/gate", "-s", session], cwd=clone, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    return time.perf_counter() - start, done.returncode


def load() -> float:
    """The 1-minute load average: the machine is shared, so each row says how busy it was."""
    return os.getloadavg()[0]


def table(rows: list[dict[str, object]]) -> str:
    """The Markdown table: session, cold s, warm s, load at each start; totals last."""
    lines = [
        f"{os.cpu_count()} CPUs; load = 1-minute load average when the run started.",
        "",
        "| session | cold (s) | load | warm (s) | load |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        flag = "" if row["cold_rc"] == row["warm_rc"] == 0 else " (failed)"
        lines.append(
            f"| `{row['session']}`{flag} | {row['cold']:.1f} | {row['cold_load']:.1f} "
            f"| {row['warm']:.1f} | {row['warm_load']:.1f} |"
        )
    cold = sum(float(str(r["cold"])) for r in rows)
    warm = sum(float(str(r["warm"])) for r in rows)
    lines.append(f"| **total** | **{cold:.1f}** | | **{warm:.1f}** | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Clone, time every session cold then warm, write the table and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", nargs="+", default=list(ci_sessions()))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "toolchain")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bot4-gate-timings-") as scratch:
        clone = Path(scratch) / "bot4"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        rows: list[dict[str, object]] = []
        for session in args.sessions:
            cold_load = load()
            cold, cold_rc = run_session(clone, session)
            warm_load = load()
            warm, warm_rc = run_session(clone, session)
            row = {"session": session, "cold": cold, "cold_rc": cold_rc, "cold_load": cold_load,
                   "warm": warm, "warm_rc": warm_rc, "warm_load": warm_load}  # fmt: skip
            rows.append(row)
            print(f"{session}: cold {cold:.1f} s (rc {cold_rc}), warm {warm:.1f} s (rc {warm_rc})",
                  file=sys.stderr, flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gate-timings.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / "gate-timings.md").write_text(table(rows))
    print(table(rows), end="")
    return 0 if all(r["cold_rc"] == r["warm_rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
