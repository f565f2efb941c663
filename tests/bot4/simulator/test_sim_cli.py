"""``bot4 simulate``: the runner, its summary, the event log and determinism."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bot4.simulator import SimulatorError, load_scenario
from bot4.simulator import cli as sim_cli
from bot4.simulator.runner import Summary, run_session

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bot4")
    sim_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    args = parse(argv)
    return int(args.handler(args))


@pytest.mark.e2e
def test_same_seed_gives_a_byte_identical_event_log(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    scenario = str(EXAMPLES / "stress.toml")
    assert run(["simulate", scenario, "--orders", "600", "--out", str(a)]) == 0
    assert run(["simulate", scenario, "--orders", "600", "--out", str(b)]) == 0
    assert run(["simulate", scenario, "--orders", "600", "--seed", "8", "--out", str(c)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    lines = a.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["kind"] for r in records} >= {"ack", "fill", "reject", "quote", "trade", "cancelled"}
    times = [r["t"] for r in records]
    assert all(isinstance(t, int) for t in times)
    assert lines[0] == json.dumps(records[0], sort_keys=True, separators=(",", ":"))
    assert not list(tmp_path.glob(".*.tmp"))  # temp files renamed away


@pytest.mark.e2e
def test_summary_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["simulate", str(EXAMPLES / "stress.toml"), "--orders", "800"]) == 0
    out = capsys.readouterr()
    assert "scenario       stress (seed 7)" in out.out
    for label in (
        "orders         800 sent",
        "fills",
        "partial",
        "rate_limited",
        "cancels lost",
        "outage time",
        "p99=",
    ):
        assert label in out.out
    assert out.err == ""  # no progress when stderr is not a terminal


def test_progress_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["simulate", str(EXAMPLES / "basic.toml"), "--orders", "200", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "simulate: 200/200 orders (100%)" in err and err.endswith("\n")


def test_replay_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["simulate", str(EXAMPLES / "replay.toml")]) == 0
    assert "scenario       replay (seed 3)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--orders", "0"], "--orders must be ≥ 1"),
        (["--seed", "-1"], "--seed must be ≥ 0"),
        (["--out", "/nonexistent-dir/x.jsonl"], "does not exist"),
    ],
)
def test_cli_errors(argv: list[str], message: str) -> None:
    with pytest.raises(SimulatorError, match=message):
        run(["simulate", str(EXAMPLES / "basic.toml"), *argv])


def test_failed_run_leaves_no_partial_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp_ns,type,side,price,quantity\n0,bid,,1.001,1\n", encoding="utf-8")
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        '[[instrument]]\nsymbol = "X"\ntick_size = "0.01"\nlot_size = "1"\nreplay = "bad.csv"\n',
        encoding="utf-8",
    )
    out = tmp_path / "events.jsonl"
    with pytest.raises(SimulatorError, match=r"not a multiple of 0\.01"):
        run(["simulate", str(scenario), "--out", str(out)])
    assert not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_run_session_counts_add_up() -> None:
    scenario = load_scenario(EXAMPLES / "stress.toml")
    calls: list[tuple[int, int]] = []
    summary = run_session(scenario, orders=500, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (500, 500) and len(calls) == 100
    assert summary.orders == 500
    assert summary.acks + sum(summary.rejects.values()) == 500
    assert summary.fills == summary.partial_fills + summary.filled_orders
    assert summary.cancels_lost <= summary.cancels_sent
    assert summary.outage_ns > 0
    assert len(summary.latencies_ns) == 500
    assert 0 < summary.percentile_us(50) <= summary.percentile_us(99) <= summary.percentile_us(100)


def test_summary_ignores_reports_it_does_not_count() -> None:
    from bot4.simulator import Report, ReportKind

    summary = Summary()
    summary.observe(Report(5, 5, ReportKind.VENUE_STATUS, reason="reject_all", status="down"), {})
    summary.observe(Report(9, 7, ReportKind.ACK, order_id=3), {})  # not one we timed
    assert summary.acks == 1 and summary.latencies_ns == [] and summary.market_data == 0


def test_empty_summary_formats() -> None:
    text = Summary().format()
    assert "p50=0.0µs" in text and "rejects        0: none" in text
