"""``bot4 sweep`` end to end: byte-identical results across runs and executors, resume
after SIGKILL without redoing finished cells, and tampered cells refused."""

from __future__ import annotations

import csv
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot4 import cli
from bot4.sweep import executors
from bot4.sweep.cell import CellResult, CellTask, run_cell
from bot4.sweep.spec import SweepError, SweepInterruptedError, load_spec
from bot4.sweep.store import Store
from bot4.trading_engine.audit_keys import keygen, load_signer
from bot4.trading_engine.checkpoint import NoteSigner

TABLES = ("results.csv", "results.parquet")


def sweep(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["sweep", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def tables(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in TABLES}


def test_same_spec_twice_gives_identical_bytes_and_rows_carry_the_audit_head(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(workspace / "spec.toml")
    a, b = workspace / "a", workspace / "b"
    assert sweep(capsys, spec, "--out", str(a), "--executor", "serial")[0] == 0
    assert sweep(capsys, spec, "--out", str(b), "--executor", "serial")[0] == 0
    assert tables(a) == tables(b)
    rows = list(csv.DictReader((a / "results.csv").read_text().splitlines()))
    assert [r["cell"] for r in rows] == ["0", "1", "2", "3"]
    for row in rows:
        assert set(row) >= {"pnl", "max_drawdown", "sharpe", "orders", "fills", "gate_blocks"}
        log = a / "cells" / row["cell_id"] / "audit.jsonl"
        records = log.read_bytes().splitlines()
        assert int(row["audit_tree_size"]) == len(records)
        last = json.loads(records[-1])
        assert last["kind"] == "checkpoint"  # closed and signed


@pytest.mark.e2e
def test_local_and_dask_local_cluster_give_the_serial_bytes(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(workspace / "spec.toml")
    runs = {}
    for name in ("serial", "local", "dask"):
        out = workspace / name
        code, printed, _ = sweep(
            capsys, spec, "--out", str(out), "--executor", name, "--workers", "2"
        )
        assert code == 0, printed
        runs[name] = tables(out)
        logs = sorted((out / "cells").glob("*/audit.jsonl"))
        runs[name]["logs"] = b"".join(p.read_bytes() for p in logs)
    assert runs["local"] == runs["serial"]
    assert runs["dask"] == runs["serial"]


@pytest.mark.e2e
def test_unreachable_scheduler_is_one_line(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = workspace / "out"
    code, _, err = sweep(
        capsys, str(workspace / "spec.toml"), "--out", str(out), "--scheduler", "tcp://localhost:9"
    )
    assert code == 2 and err.count("\n") == 1
    assert "cannot reach the Dask scheduler tcp://localhost:9" in err


@pytest.mark.e2e
def test_killed_sweep_resumes_without_redoing_finished_cells(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = workspace / "spec.toml"
    spec.write_text(spec.read_text().replace("seeds = [1, 2]", "seeds = [1, 2, 3]"))
    spec.write_text(spec.read_text().replace("duration_s = 3.0", "duration_s = 20.0"))
    out = workspace / "out"
    argv = [sys.executable, "-m", "bot4", "sweep", str(spec), "--out", str(out)]
    proc = subprocess.Popen([*argv, "--executor", "serial"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "cells").glob("*/cell.json")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/cell.json")}
    assert 1 <= len(done) < 6, "the kill must land mid-way"
    assert not (out / "results.csv").exists()
    code, printed, err = sweep(capsys, str(spec), "--out", str(out), "--executor", "local")
    assert code == 0, err
    assert f"6 cells ({6 - len(done)} run now, {len(done)} already done)" in printed
    for cell_id, mtime in done.items():  # finished cells were not run again
        assert (out / "cells" / cell_id / "cell.json").stat().st_mtime_ns == mtime
    fresh = workspace / "fresh"
    assert sweep(capsys, str(spec), "--out", str(fresh), "--executor", "serial")[0] == 0
    assert tables(out) == tables(fresh)


@pytest.mark.e2e
def test_tampered_cell_is_refused_and_the_printed_remedy_works(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, out = str(workspace / "spec.toml"), workspace / "out"
    assert sweep(capsys, spec, "--out", str(out), "--executor", "serial")[0] == 0
    clean = tables(out)
    cell = sorted((out / "cells").iterdir())[0]
    record = json.loads((cell / "cell.json").read_text())
    record["row"]["pnl"] = 1e9  # a better result, claimed
    record["row"]["audit_root"] = "00" * 32
    (cell / "cell.json").write_text(json.dumps(record))
    code, _, err = sweep(capsys, spec, "--out", str(out), "--executor", "serial")
    assert code == 2 and err.count("\n") == 1
    assert "does not match the row's" in err
    remedy = err.split("remove it to run the cell again: ")[1].strip()
    subprocess.run(remedy.split(), check=True)
    code, printed, _ = sweep(capsys, spec, "--out", str(out), "--executor", "serial")
    assert code == 0 and "(1 run now, 3 already done)" in printed
    assert tables(out) == clean
    log = cell / "audit.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"seq":2', b'"seq":7')
    log.write_bytes(b"".join(lines))
    code, _, err = sweep(capsys, spec, "--out", str(out), "--executor", "serial")
    assert code == 2 and "audit log does not verify" in err


def test_a_directory_of_another_sweep_is_refused(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, out = workspace / "spec.toml", workspace / "out"
    assert sweep(capsys, str(spec), "--out", str(out), "--executor", "serial")[0] == 0
    spec.write_text(spec.read_text().replace("[10, 20]", "[10, 30]"))
    code, _, err = sweep(capsys, str(spec), "--out", str(out), "--executor", "serial")
    assert code == 2 and "holds the results of another sweep spec" in err
    code, _, err = sweep(capsys, str(spec), "--out", str(workspace), "--executor", "serial")
    assert code == 2 and "is not empty and holds no sweep" in err
    code, _, err = sweep(
        capsys, str(workspace / "spec.toml"), "--out", str(out), "--unsigned-audit"
    )
    assert code == 2


@pytest.mark.e2e
def test_report_writes_stable_pngs_and_a_self_contained_page(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = workspace / "out"
    assert (
        sweep(capsys, str(workspace / "spec.toml"), "--out", str(out), "--executor", "serial")[0]
        == 0
    )
    assert sweep(capsys, "report", str(out))[0] == 0
    first = {p.name: p.read_bytes() for p in out.glob("*.png")} | {
        "report.html": (out / "report.html").read_bytes()
    }
    assert sweep(capsys, "report", str(out))[0] == 0
    again = {p.name: p.read_bytes() for p in out.glob("*.png")} | {
        "report.html": (out / "report.html").read_bytes()
    }
    assert again == first and set(first) == {"equity.png", "heatmap.png", "report.html"}
    for name in ("equity.png", "heatmap.png"):
        png = first[name]
        assert png.startswith(b"\x89PNG") and b"Software" not in png and b"tIME" not in png
    page = first["report.html"].decode()
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page and "<script" not in page
    code, _, err = sweep(capsys, "report", str(workspace / "nowhere"))
    assert code == 2 and "not a sweep results directory" in err


def test_a_worker_result_that_its_log_does_not_back_is_not_stored(workspace: Path) -> None:
    spec = load_spec(workspace / "spec.toml")
    signer = load_signer("audit-checkpoint")
    store = Store(workspace / "out", spec, signer.verifier())
    tasks = [
        CellTask(c, spec.scenarios[c.scenario], signer.name, signer.verifier().vkey())
        for c in spec.cells[:2]
    ]
    first, second = (run_cell(t) for t in tasks)
    forged = [
        CellResult({**first.row, "audit_tree_size": 1}, first.equity, first.audit),
        CellResult(first.row, first.equity, second.audit),  # another cell's (valid) log
        CellResult(first.row, first.equity, first.audit.replace(b'"seed":1', b'"seed":9')),
    ]
    for result in forged:
        with pytest.raises(SweepError, match=f"cell {first.row['cell_id']}: the worker's"):
            store.save(result)
        assert not (store.cell_dir(first.row["cell_id"]) / "cell.json").exists()
    other = NoteSigner.from_private("audit-checkpoint", Ed25519PrivateKey.generate())
    with pytest.raises(SweepError, match="not the key the sweep was started with"):
        run_cell(CellTask(spec.cells[0], tasks[0].scenario, other.name, other.verifier().vkey()))
    store.save(first)
    assert store.load_done(first.row["cell_id"]) == first


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        ("pyarrow", ["--executor", "serial"], "needs pyarrow, which is in bot4's 'sweep' extra"),
        ("distributed", ["--executor", "dask"], "needs 'distributed', which is in bot4's"),
        ("matplotlib", None, "needs matplotlib, which is in bot4's 'sweep' extra"),
    ],
)
def test_a_missing_extra_is_one_line_before_anything_runs(
    workspace: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    argv: list[str] | None,
    message: str,
) -> None:
    out = workspace / "out"
    if argv is None:  # the report: a finished sweep, then no matplotlib
        assert (
            sweep(capsys, str(workspace / "spec.toml"), "--out", str(out), "--executor", "serial")[
                0
            ]
            == 0
        )
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    if argv is None:
        code, _, err = sweep(capsys, "report", str(out))
        assert not (out / "report.html").exists()
    else:
        code, _, err = sweep(capsys, str(workspace / "spec.toml"), "--out", str(out), *argv)
        assert not out.exists()
    assert code == 2 and err.count("\n") == 1 and message in err


def test_usage_and_unreadable_state_are_one_line(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, out = str(workspace / "spec.toml"), workspace / "out"
    for argv, message in [
        (["report"], "usage: bot4 sweep report DIR"),
        ([spec, spec], "usage: bot4 sweep SPEC.toml"),
        ([spec, "--workers", "0"], "--workers must be ≥ 1"),
        ([spec, "--out", str(workspace / "spec.toml")], "exists and is not a directory"),
    ]:
        code, _, err = sweep(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and message in err, (argv, err)
    assert sweep(capsys, spec, "--out", str(out), "--executor", "serial")[0] == 0
    record = sorted((out / "cells").glob("*/cell.json"))[0]
    record.write_text("{")
    code, _, err = sweep(capsys, spec, "--out", str(out), "--executor", "serial")
    assert code == 2 and "unreadable cell record" in err and "rm -r " in err
    code, _, err = sweep(capsys, "report", str(out))
    assert code == 2 and "unreadable cell record" in err
    (out / "sweep.json").write_text("not json")
    code, _, err = sweep(capsys, spec, "--out", str(out), "--executor", "serial")
    assert code == 2 and err.count("\n") == 1 and "sweep.json: unreadable" in err


def test_a_dead_local_worker_is_one_line() -> None:
    exit_now: Any = os._exit  # the worker process vanishes mid-cell (as if OOM-killed)
    with pytest.raises(
        SweepInterruptedError, match=r"a worker process died .*run the same command again"
    ) as caught:
        list(executors.run_local(cast(Any, [3]), 1, fn=exit_now))
    assert caught.value.exit_code == 3


@pytest.mark.e2e
def test_scheduler_address_runs_on_that_cluster_and_its_workers_own_key(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--scheduler: the cluster's workers read the key from their own environment; a worker
    holding a different key refuses the cell, and nothing is marked done."""
    distributed = importlib.import_module("distributed")
    spec = str(workspace / "spec.toml")
    assert sweep(capsys, spec, "--out", str(workspace / "serial"), "--executor", "serial")[0] == 0
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},  # not 8787: another cluster may hold it
    ) as cluster:
        out = workspace / "remote"
        code, _, err = sweep(
            capsys, spec, "--out", str(out), "--scheduler", cluster.scheduler_address
        )
        assert code == 0, err
        assert tables(out) == tables(workspace / "serial")
    real = os.environ["BOT4_SECRETS_DIR"]
    monkeypatch.setenv("BOT4_SECRETS_DIR", str(workspace / "other-secrets"))
    keygen("audit-checkpoint")  # same name, different key: the workers will hold this one
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},  # not 8787: another cluster may hold it
    ) as cluster:
        monkeypatch.setenv("BOT4_SECRETS_DIR", real)  # the driver holds the sweep's key
        out = workspace / "wrong-key"
        code, _, err = sweep(
            capsys, spec, "--out", str(out), "--scheduler", cluster.scheduler_address
        )
        assert code == 2 and err.count("\n") == 1
        assert "is not the key the sweep was started with" in err
        assert not list(out.glob("cells/*/cell.json"))
