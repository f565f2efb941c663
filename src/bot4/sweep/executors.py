"""Where cells run: in this process, in local worker processes, or on a Dask cluster.

Each executor maps ``run_cell`` over tasks and yields results as they finish (any
order); the driver stores and orders them, so which worker ran a cell changes nothing
in the results. The local default needs no server (``concurrent.futures`` processes).
Dask comes from bot4's ``sweep`` extra: an existing scheduler (``--scheduler ADDRESS``)
or a ``LocalCluster`` of worker processes on this machine. Ray is not offered: see
docs/sweep.md for why.

A worker that dies or a cluster that goes away stops the sweep with ``SweepInterruptedError``
(one line, exit 3): every cell stored so far is complete and verified, so the same
command resumes. distributed's own log records stay off stderr unless ``-v`` is given.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from bot4.sweep.cell import CellResult, CellTask, run_cell
from bot4.sweep.spec import SweepError, SweepInterruptedError

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
                        raise SweepInterruptedError(
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


# dask's config key (as an environment variable) for the level of distributed's logger.
_WORKER_LOG_ENV = "DASK_LOGGING__DISTRIBUTED"
# Loggers distributed configures for itself (a handler of its own on stderr).
_DASK_LOGGERS = (
    "distributed",
    "distributed.client",
    "distributed.gc",
    "tornado",
    "tornado.application",
)
_TCP_LIKE = ("tcp", "tls", "ws", "wss")
DEFAULT_PORT = 8786


def check_scheduler_address(address: str) -> None:
    """Refuse a malformed ``--scheduler`` before anything runs (distributed would fail
    late, with a bare ``ValueError``)."""
    comm = importlib.import_module("distributed.comm")
    registry = importlib.import_module("distributed.comm.registry")
    problem = None
    try:
        scheme, location = comm.parse_address(address)
        registry.get_backend(scheme)
        if scheme in _TCP_LIKE and not comm.parse_host_port(location, DEFAULT_PORT)[0]:
            problem = "no host"
    except (ValueError, TypeError) as exc:
        problem = str(exc)
    if problem is not None:
        raise SweepError(
            f"bad Dask scheduler address {address!r}: {problem} "
            f"(expected SCHEME://HOST:PORT, e.g. tcp://HOST:{DEFAULT_PORT})"
        )


@contextmanager
def _quiet_dask() -> Iterator[None]:
    """Keep distributed's log records (worker restarts, lost connections) off stderr while
    the sweep runs, unless the user asked for logs (-v): what they mean reaches the
    user as the one-line error. Levels are restored afterwards."""
    if logging.getLogger().getEffectiveLevel() < logging.WARNING:
        yield
        return
    loggers = [logging.getLogger(name) for name in _DASK_LOGGERS]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    # A local cluster's worker processes configure their own logging from dask's config
    # when they import distributed; the environment they inherit carries the level.
    env_before = os.environ.get(_WORKER_LOG_ENV)
    os.environ[_WORKER_LOG_ENV] = "critical"
    try:
        yield
    finally:
        for logger, level in zip(loggers, before, strict=True):
            logger.setLevel(level)
        if env_before is None:
            os.environ.pop(_WORKER_LOG_ENV, None)
        else:
            os.environ[_WORKER_LOG_ENV] = env_before


def _client(distributed: Any, target: Any) -> Any:  # noqa: ANN401 - optional module
    """A connected client, or the one-line refusal when the scheduler is not there."""
    try:
        return distributed.Client(target, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise SweepError(f"cannot reach the Dask scheduler {target}: {exc}") from None


def _dask_results(
    distributed: Any,  # noqa: ANN401 - optional module
    client: Any,  # noqa: ANN401
    tasks: Sequence[CellTask],
    fn: Runner,
) -> Iterator[CellResult]:
    futures = client.map(fn, list(tasks), pure=False)
    cell_of = {future.key: task.cell.index for future, task in zip(futures, tasks, strict=True)}
    for future in distributed.as_completed(futures):
        try:
            result: CellResult = future.result()
        except distributed.KilledWorker:
            raise SweepInterruptedError(
                f"a Dask worker died while running cell {cell_of[future.key]} (the scheduler "
                "gave up on it: KilledWorker); the finished cells are kept: "
                "run the same command again to resume"
            ) from None
        except (distributed.CancelledError, OSError) as exc:  # CommClosedError is an OSError
            raise SweepInterruptedError(
                f"lost the Dask scheduler ({type(exc).__name__}); the finished cells are "
                "kept: run the same command again to resume"
            ) from None
        yield result


def run_dask(
    tasks: Sequence[CellTask], workers: int, scheduler: str | None = None, fn: Runner = run_cell
) -> Iterator[CellResult]:
    """On the Dask cluster at ``scheduler``, or on a local cluster of ``workers`` processes."""
    distributed = _distributed()
    if scheduler is not None:
        check_scheduler_address(scheduler)
    with _quiet_dask():
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
            with _client(distributed, cluster if cluster is not None else scheduler) as client:
                yield from _dask_results(distributed, client, tasks, fn)
        finally:
            if cluster is not None:
                cluster.close()


def require(executor: str, scheduler: str | None = None) -> None:
    """Refuse before anything runs when the executor's library is missing, or the
    scheduler address is malformed or does not answer."""
    if executor == "dask":
        distributed = _distributed()
        if scheduler is not None:  # reachable now, before the results directory is made
            check_scheduler_address(scheduler)
            with _quiet_dask():
                _client(distributed, scheduler).close()
