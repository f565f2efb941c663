"""``bot4 sweep`` on Dask when things break, through the real entry point (a subprocess):
a worker process killed mid-sweep, a scheduler that is not there or goes away, a bad spec.
Each ends with one ``bot4: error:`` line and the documented exit code, never a traceback;
the cells finished before stay valid, and the same command resumes."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot4 import cli

TABLES = ("results.csv", "results.parquet")
RESUMABLE = 3  # docs/sweep.md "When workers or the cluster fail": run the same command again


def six_long_cells(workspace: Path) -> Path:
    """The tiny spec with 6 cells of 20 simulated seconds (a kill lands mid-sweep)."""
    spec = workspace / "spec.toml"
    text = spec.read_text().replace("seeds = [1, 2]", "seeds = [1, 2, 3]")
    spec.write_text(text.replace("duration_s = 3.0", "duration_s = 20.0"))
    return spec


def bot4_sweep(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot4", "sweep", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(out: Path) -> dict[str, int]:
    """Finished cells (cell.json written last) and their mtimes."""
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/cell.json")}


def wait_for_a_finished_cell(out: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while not finished(out):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no cell finished"
        time.sleep(0.02)


def one_error_line(err: str) -> str:
    """stderr holds progress lines and exactly one error line, nothing else (no traceback,
    no log records of distributed's)."""
    lines = err.splitlines()
    errors = [line for line in lines if line.startswith("bot4: error: ")]
    others = [line for line in lines if not line.startswith(("bot4: error: ", "sweep ["))]
    assert len(errors) == 1 and not others and "Traceback" not in err, err
    assert lines[-1] == errors[0], err
    return errors[0]


@contextmanager
def cluster(allowed_failures: int) -> Iterator[tuple[Any, Any]]:
    """A real LocalCluster (worker processes, nannies) and a client of the test's own."""
    dask = importlib.import_module("dask")
    distributed = importlib.import_module("distributed")
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}),
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # the scheduler's HTTP endpoint on a free port: 8787 may be another test's
            scheduler_kwargs={"dashboard_address": ":0"},
        ) as local,
        distributed.Client(local) as client,
    ):
        yield local, client


def resume_completes(
    workspace: Path, spec: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same command (local executor) runs only the missing cells; the tables are the
    bytes a fresh serial sweep writes."""
    done = finished(out)
    assert 1 <= len(done) < 6, "the failure must land mid-sweep"
    assert not any((out / name).exists() for name in TABLES)
    code = cli.main(["sweep", str(spec), "--out", str(out), "--executor", "local"])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"6 cells ({6 - len(done)} run now, {len(done)} already done)" in printed
    for cell_id, mtime in done.items():  # finished cells were kept, not run again
        assert (out / "cells" / cell_id / "cell.json").stat().st_mtime_ns == mtime
    fresh = workspace / "fresh"
    assert cli.main(["sweep", str(spec), "--out", str(fresh), "--executor", "serial"]) == 0
    for name in TABLES:
        assert (out / name).read_bytes() == (fresh / name).read_bytes()


@pytest.mark.e2e
def test_a_dask_worker_killed_mid_sweep_is_one_line_and_the_sweep_resumes(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL the cluster's worker process while it runs a cell. With allowed-failures = 0
    the scheduler gives up on that cell (KilledWorker) at once — with the default (3) a
    lone death is retried on the restarted worker and the sweep simply goes on."""
    spec, out = six_long_cells(workspace), workspace / "out"
    with cluster(allowed_failures=0) as (local, client):
        proc = bot4_sweep(str(spec), "--out", str(out), "--scheduler", local.scheduler_address)
        wait_for_a_finished_cell(out, proc)
        for pid in client.run(os.getpid).values():
            os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
    assert proc.returncode == RESUMABLE, err
    line = one_error_line(err)
    assert "a Dask worker died while running cell " in line
    assert "run the same command again to resume" in line
    resume_completes(workspace, spec, out, capsys)


@pytest.mark.e2e
def test_one_worker_death_on_the_own_local_cluster_is_retried_with_identical_results(
    workspace: Path,
) -> None:
    """``--executor dask`` (bot4's own LocalCluster, default allowed-failures): SIGKILL one
    worker process mid-sweep; the nanny restarts it, the scheduler reruns its cells, the
    sweep ends 0 with a clean stderr and the serial sweep's bytes."""
    psutil = importlib.import_module("psutil")
    spec, out = six_long_cells(workspace), workspace / "out"
    proc = bot4_sweep(str(spec), "--out", str(out), "--executor", "dask", "--workers", "2")
    wait_for_a_finished_cell(out, proc)
    workers = [
        child
        for child in psutil.Process(proc.pid).children()
        if "multiprocessing.spawn" in " ".join(child.cmdline())
    ]
    assert len(workers) == 2, workers
    os.kill(workers[0].pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert all(line.startswith("sweep [") for line in err.splitlines()), err
    assert len(finished(out)) == 6
    fresh = workspace / "fresh"
    assert cli.main(["sweep", str(spec), "--out", str(fresh), "--executor", "serial"]) == 0
    for name in TABLES:
        assert (out / name).read_bytes() == (fresh / name).read_bytes()


@pytest.mark.e2e
def test_a_scheduler_that_goes_away_mid_sweep_is_one_line_and_the_sweep_resumes(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, out = six_long_cells(workspace), workspace / "out"
    with cluster(allowed_failures=3) as (local, client):
        proc = bot4_sweep(str(spec), "--out", str(out), "--scheduler", local.scheduler_address)
        wait_for_a_finished_cell(out, proc)
        client.close()
        local.close()  # scheduler, nanny and worker gone
        _, err = proc.communicate(timeout=180)
    assert proc.returncode == RESUMABLE, err
    line = one_error_line(err)
    assert "lost the Dask scheduler" in line and "run the same command again" in line
    resume_completes(workspace, spec, out, capsys)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scheduler", "tcp://localhost:9"], "cannot reach the Dask scheduler tcp://localhost:9"),
        (["--scheduler", "no-such-protocol://x:1"], "bad Dask scheduler address"),
        (["--executor", "dask", "--workers", "1", "--audit-key", "nope"], "no audit signing key"),
    ],
)
def test_bad_dask_invocations_are_one_line_and_write_nothing(
    workspace: Path, argv: list[str], message: str
) -> None:
    out = workspace / "out"
    proc = bot4_sweep(str(workspace / "spec.toml"), "--out", str(out), *argv)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert message in one_error_line(err)
    assert not out.exists()


def test_a_bad_spec_on_dask_is_one_line_and_writes_nothing(workspace: Path) -> None:
    spec = workspace / "spec.toml"
    spec.write_text(spec.read_text() + '"gate.nope" = [1]\n')
    out = workspace / "out"
    proc = bot4_sweep(str(spec), "--out", str(out), "--executor", "dask")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "gate: unknown key 'nope'" in one_error_line(err)
    assert not out.exists()
