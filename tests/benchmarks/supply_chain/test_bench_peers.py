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
    wall_busy, cpu_busy, code = bench.median_time(busy, 1)
    assert code == 0 and cpu_busy > 0.05 and wall_busy > 0
    wall_idle, cpu_idle, code = bench.median_time(idle, 1)
    assert code == 0 and wall_idle >= 0.3
    assert cpu_idle < wall_idle - 0.2  # sleeping costs no CPU: wall and CPU are apart


def test_load_average_is_three_numbers() -> None:
    fields = bench_peers()._loadavg().split()
    assert len(fields) == 3 and all(float(f) >= 0 for f in fields)
