"""Where cells run: in this process, in local worker processes, or on a Dask cluster.

Each executor maps ``run_cell`` over tasks and yields results as they finish (any
order); the driver stores and orders them, so which worker ran a cell changes nothing
in the results. The local default needs no server (``concurrent.futures`` processes).
Dask comes from bot4's ``sweep`` extra: an existing scheduler (``--scheduler ADDRESS``)
or a ``LocalCluster`` of worker processes on this machine. Ray is not offered: see
docs/sweep.md for why.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from bot4.sweep.cell import CellResult, CellTask, run_cell
from bot4.sweep.spec import SweepError

Runner = Callable[[CellTask], CellResult]
EXECUTORS = ("local", "serial", "dask")


def default_workers() -> int:
    """One worker per CPU this process may use."""
    return max(1, len(os.sched_getaffinity(0)))


def run_serial(
    tasks: Sequence[CellTask], _workers: int, fn: Runner = run_cell
) -> Iterator[CellResult]:
    """One after another in this process (the baseline the benchmark compares against)."""
    for task in tasks:
        yield fn(task)


def run_local(
    tasks: Sequence[CellTask], workers: int, fn: Runner = run_cell
) -> Iterator[CellResult]:
    """A pool of worker processes on this machine; at most ``2 × workers`` cells in flight."""
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: set[Future[CellResult]] = set()
        queue = iter(tasks)
        try:
            while True:
                while len(pending) < 2 * workers:
                    task = next(queue, None)
                    if task is None:
                        break
                    pending.add(pool.submit(fn, task))
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=id):
                    try:
                        result = future.result()
                    except BrokenProcessPool as exc:
                        raise SweepError(
                            f"a worker process died ({exc}); the finished cells are kept: "
                            "run the same command again to resume"
                        ) from None
                    yield result
        finally:
            for future in pending:
                future.cancel()


def _distributed() -> Any:  # noqa: ANN401 - optional module
    try:  # the sweep extra
        return importlib.import_module("distributed")
    except ImportError:
        raise SweepError(
            "the dask executor needs 'distributed', which is in bot4's 'sweep' extra "
            "(not installed)"
        ) from None


def run_dask(
    tasks: Sequence[CellTask], workers: int, scheduler: str | None = None, fn: Runner = run_cell
) -> Iterator[CellResult]:
    """On the Dask cluster at ``scheduler``, or on a local cluster of ``workers`` processes."""
    distributed = _distributed()
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO is chatty
    cluster = None
    if scheduler is None:
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # the scheduler's HTTP endpoint (health, metrics) on a free port, not 8787:
            # a second cluster on the machine (another sweep, a parallel test) would warn
            scheduler_kwargs={"dashboard_address": ":0"},
        )
    try:
        try:
            client = distributed.Client(cluster if cluster is not None else scheduler, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        with client:
            futures = client.map(fn, list(tasks), pure=False)
            for future in distributed.as_completed(futures):
                yield future.result()
    finally:
        if cluster is not None:
            cluster.close()


def require(executor: str) -> None:
    """Refuse before anything runs when the executor's library is missing."""
    if executor == "dask":
        _distributed()
