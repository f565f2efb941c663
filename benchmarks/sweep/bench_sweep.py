"""Benchmark: sweep cells/s — local processes and a 2-worker Dask LocalCluster vs a serial loop.

One spec (examples/reverting.toml + examples/engine.toml, a grid over lookback × seeds),
run three times into fresh directories: ``serial`` (one process, the peer), ``local``
(ProcessPoolExecutor, N workers) and ``dask`` (LocalCluster, N worker processes). Wall
time is end to end as a user sees it (pool or cluster start-up included), and the three
results tables must be byte-identical or the benchmark fails.
Run: python benchmarks/sweep/bench_sweep.py [--cells N] [--duration S] [--workers N] [--ray]

``--ray`` adds a local Ray (``ray.init(num_cpus=N)``, ``run_cell`` as a remote task) for
the Dask-vs-Ray comparison in docs/sweep.md; Ray is not a bot4 dependency, so it must be
importable from elsewhere (e.g. ``PYTHONPATH`` to a ``pip install --target`` directory).
A Ray that does not start is reported as a row (with its error), not a crash: the other
rows of the same run still stand.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bot4.sweep.cell import CellResult, CellTask, run_cell
from bot4.sweep.runner import Execute, executor, run_sweep
from bot4.sweep.spec import load_spec
from bot4.trading_engine.audit_keys import keygen, load_signer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_ray(tasks: Sequence[CellTask], workers: int) -> Iterator[CellResult]:
    """The cells as Ray tasks on a local Ray started for this run (measurement only)."""
    ray = importlib.import_module("ray")
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(run_cell)
        pending = [remote.remote(t) for t in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        ray.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three executors on the same spec; print cells/s and ratios to serial."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=24, help="cells (a multiple of 4)")
    parser.add_argument("--duration", type=float, default=10.0, help="simulated s per cell")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also time a local Ray")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bot4-bench-sweep-") as tmp:
        ws = Path(tmp)
        for name in ("reverting.toml", "reverting_quotes.csv", "engine.toml"):
            shutil.copy(EXAMPLES / name, ws / name)
        seeds = max(1, args.cells // 4)
        (ws / "spec.toml").write_text(
            f'name = "bench"\nscenarios = ["reverting.toml"]\nengine = "engine.toml"\n'
            f"seeds = {{first = 1, count = {seeds}}}\nduration_s = {args.duration}\n"
            '[params]\n"strategy_params.lookback" = [10, 20, 30, 40]\n',
            encoding="utf-8",
        )
        os.environ["BOT4_SECRETS_DIR"] = str(ws / "secrets")
        keygen("audit-checkpoint")
        signer = load_signer("audit-checkpoint")
        spec = load_spec(ws / "spec.toml")
        n = len(spec.cells)
        results: dict[str, tuple[float, bytes]] = {}
        failed: dict[str, str] = {}
        names = ["serial", "local", "dask", *(["ray"] if args.ray else [])]
        for name in names:
            out = ws / name
            run: Execute = run_ray if name == "ray" else executor(name, None)
            start = time.perf_counter()
            try:
                with Path(os.devnull).open("w") as quiet:  # no progress line while timing
                    run_sweep(spec, out, run, workers=args.workers, signer=signer, stream=quiet)
            except Exception as exc:  # Ray failing to start is a result here
                if name != "ray":
                    raise
                failed[name] = f"{type(exc).__name__}: {exc}"
                continue
            wall = time.perf_counter() - start
            results[name] = (wall, (out / "results.parquet").read_bytes())
        base = results["serial"][0]
        print(f"{n} cells × {args.duration:g} simulated s, {args.workers} workers, "
              f"{len(os.sched_getaffinity(0))} CPUs, load {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"{'executor':<10} {'wall s':>8} {'cells/s':>8} {'vs serial':>10}")
        for name, (wall, _) in results.items():
            print(f"{name:<10} {wall:8.2f} {n / wall:8.2f} {base / wall:9.2f}×")
        for name, why in failed.items():
            print(f"{name:<10} did not start: {' '.join(why.split())}")
        same = len({data for _, data in results.values()}) == 1
        print(f"results.parquet identical across executors: {same}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
