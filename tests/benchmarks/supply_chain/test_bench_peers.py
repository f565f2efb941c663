"""bench_peers' measurement: CPU time is the child's (and its children's), not ours, and
the load average is read from the kernel."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "supply_chain" / "bench_peers.py"


def bench_peers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_peers", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_time_is_the_commands_own() -> None:
    bench = bench_peers()
    busy = [sys.executable, "-c", "sum(i * i for i in range(3_000_000))"]
    idle = [sys.executable, "-c", "import time; time.sleep(0.3)"]
    (wall_busy, cpu_busy, code_busy), (wall_idle, cpu_idle, code_idle) = bench.median_times(
        busy, idle, 1
    )
    assert code_busy == 0 and cpu_busy > 0.05 and wall_busy > 0
    assert code_idle == 0 and wall_idle >= 0.3
    assert cpu_idle < wall_idle - 0.2  # sleeping costs no CPU: wall and CPU are apart


def test_the_two_commands_run_in_turn(tmp_path: Path) -> None:
    """Ours and the peer alternate (so a burst of other load falls on both); each runs
    once untimed first, then ``repeat`` times; the last exit code is reported."""
    log = tmp_path / "log"
    step = "import sys; open(sys.argv[1], 'a').write(sys.argv[2]); sys.exit(int(sys.argv[3]))"
    ours = [sys.executable, "-c", step, str(log), "o", "0"]
    peer = [sys.executable, "-c", step, str(log), "p", "3"]
    (_, _, code_ours), (_, _, code_peer) = bench_peers().median_times(ours, peer, 3)
    assert log.read_text(encoding="ascii") == "op" + "op" * 3
    assert (code_ours, code_peer) == (0, 3)


def test_load_average_is_three_numbers() -> None:
    fields = bench_peers()._loadavg().split()
    assert len(fields) == 3 and all(float(f) >= 0 for f in fields)
