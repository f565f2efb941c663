"""`python -m ci licenses` against pip-licenses and `python -m ci sbom --venv` against
`cyclonedx-py environment`, on the same environment, in the same run: ratios printed.

The environment is the real-project corpus's jupyterlab (91 distributions,
tests/ci/data/corpus/jupyterlab): a venv whose site-packages is that directory, so the run
needs no network and every tool reads the same metadata. Each command runs `--repeat`
times (default 5), in turn with its peer, after one untimed warm-up; the median wall time
and the median CPU time (user + system of the command and its children) are compared; the
load average is printed before and after, since on a shared machine wall time mostly
measures the other load. Ours does more than the peer: the licence policy, licence-text
identification, every licence file in the wheels (pip-licenses prints metadata); the
lock's hashes, markers, purls and strict schema validation on top of cyclonedx-py's own
output (which it runs).

    .nox/tests/bin/python benchmarks/supply_chain/bench_peers.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "ci" / "data" / "corpus" / "jupyterlab"
BIN = Path(sys.executable).parent


def corpus_venv(where: Path) -> Path:
    """A real venv whose site-packages is the corpus (read only)."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(where)
    site = next(where.glob("lib/python3*/site-packages"))
    site.rmdir()
    site.symlink_to(CORPUS / "site", target_is_directory=True)
    return where


# Warm runs, as a developer's or CI's repeated gate: bytecode may be cached (a
# PYTHONDONTWRITEBYTECODE in the caller's environment would make every run compile every
# module, which penalises whichever tool imports more), and one untimed run comes first.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu() -> float:
    """User + system CPU seconds of every waited-for child (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str]) -> tuple[float, float, int]:
    """Wall and CPU (user + sys of the command and its children) seconds of one run."""
    cpu_start = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, check=False, env=ENV)
    return time.perf_counter() - start, _children_cpu() - cpu_start, proc.returncode


def median_times(
    ours: list[str], peer: list[str], repeat: int
) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
    """Median wall and median CPU seconds of each command, and its last exit code.

    The two run in turn (ours, peer, ours, …), so a change in the other load on a shared
    machine falls on both rather than on whichever ran during it; each runs once, untimed,
    first. CPU time is what to compare on a loaded machine: wall time there mostly measures
    the other load."""
    runs: dict[int, list[tuple[float, float, int]]] = {0: [], 1: []}
    for argv in (ours, peer):
        subprocess.run(argv, cwd=ROOT, capture_output=True, check=False, env=ENV)
    for _ in range(repeat):
        for which, argv in enumerate((ours, peer)):
            runs[which].append(_timed(argv))
    medians = [
        (
            statistics.median(r[0] for r in runs[k]),
            statistics.median(r[1] for r in runs[k]),
            runs[k][-1][2],
        )
        for k in (0, 1)
    ]
    return medians[0], medians[1]


def _loadavg() -> str:
    """The 1/5/15-minute load averages: how loaded the machine was around the run."""
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (median)")
    parser.add_argument("--quick", action="store_true", help="two runs per command")
    args = parser.parse_args()
    repeat = 2 if args.quick else args.repeat
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        env = corpus_venv(Path(tmp) / "venv")
        python = str(env / "bin" / "python")
        lock = str(CORPUS / "requirements.txt")
        pairs = [
            (
                "licenses",
                [sys.executable, "-m", "ci", "licenses", "--venv", str(env), "--lock", lock],
                "pip-licenses --from=mixed",
                [str(BIN / "pip-licenses"), "--python", python, "--from=mixed"],
            ),
            (
                "sbom --venv",
                [sys.executable, "-m", "ci", "sbom", "--lock", lock, "--venv", str(env)],
                "cyclonedx-py environment",
                [sys.executable, "-m", "cyclonedx_py", "environment", "--output-reproducible",
                 "--sv", "1.6", "--of", "JSON", python],
            ),
        ]  # fmt: skip
        print(
            f"same environment: {CORPUS.relative_to(ROOT)} (91 distributions), median of {repeat}"
        )
        print(f"load average: {_loadavg()}")
        print(
            f"{'ours':14} {'wall s':>6} {'cpu s':>6}  {'peer':26} {'wall s':>6} {'cpu s':>6}  "
            "wall   cpu    exit (ours/peer)"
        )
        for label, ours, peer_label, peer in pairs:
            (t_ours, cpu_ours, c_ours), (t_peer, cpu_peer, c_peer) = median_times(
                ours, peer, repeat
            )
            print(
                f"{label:14} {t_ours:6.2f} {cpu_ours:6.2f}  {peer_label:26} {t_peer:6.2f} "
                f"{cpu_peer:6.2f}  {t_ours / t_peer:4.2f}x  {cpu_ours / cpu_peer:4.2f}x  "
                f"{c_ours}/{c_peer}"
            )
        print(f"load average: {_loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
