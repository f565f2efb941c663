from __future__ import annotations

import base64
import json
import re
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot4 import cli
from bot4.infrastructure.metrics import Metrics
from bot4.simulator.exchange import ExchangeSimulator
from bot4.simulator.scenario import load_scenario
from bot4.trading_engine.audit_log import verify
from bot4.trading_engine.checkpoint import NoteSigner
from bot4.trading_engine.config import load_engine_config
from bot4.trading_engine.engine import Engine
from bot4.trading_engine.strategy import Intent, Quote, StrategyContext

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NS = 1_000_000_000


def engine_for(scenario: str, tmp_path: Path, **overrides: object) -> Engine:
    sc = load_scenario(EXAMPLES / scenario)
    text = (EXAMPLES / "engine.toml").read_text(encoding="utf-8")
    for key, value in overrides.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.MULTILINE)
        assert n == 1, key
    cfg_path = tmp_path / "engine.toml"
    cfg_path.write_text(text, encoding="utf-8")
    return Engine(
        sc,
        load_engine_config(cfg_path, sc),
        venue=ExchangeSimulator(sc),
        audit_path=tmp_path / "audit.jsonl",
    )


def test_outage_opens_the_breaker_which_closes_again_with_hysteresis(tmp_path: Path) -> None:
    engine = engine_for("reverting_outage.toml", tmp_path)
    summary = engine.run(60 * NS)
    assert summary.venue_rejects["exchange_unavailable"] > 0
    assert summary.breaker_refused > 0
    states = summary.breaker_transitions
    assert states[0] == "open" and "half_open" in states and states[-1] == "closed"
    assert engine.breaker.state.value == "closed"
    assert verify([tmp_path / "audit.jsonl"]).ok
    records = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    breaker = [r["data"] for r in records if r["kind"] == "breaker"]
    # Hysteresis: it opened at ≥ 50 % errors, and 2 failed probes of 5 (40 %, below the
    # open threshold but above the 35 % close threshold) sent it back to open.
    assert breaker[0]["to"] == "open" and breaker[0]["error_rate"] >= 0.5
    assert any("closing needs <= 35%" in b["why"] for b in breaker if b["to"] == "open")
    assert breaker[-1]["to"] == "closed" and "probes succeeded" in breaker[-1]["why"]


def test_calm_market_trades_on_evidence_and_same_seed_gives_identical_logs(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        engine = engine_for("reverting.toml", d)
        runs.append((engine.run(60 * NS), (d / "audit.jsonl").read_bytes()))
    (s1, log1), (s2, log2) = runs
    assert log1 == log2
    assert s1.to_json() == s2.to_json()
    assert s1.gate["passed"] > 50 and s1.fills > 50
    assert s1.gate["insufficient_history"] == 20  # min_trades of evidence first
    assert s1.breaker_transitions == []
    assert s1.realized_pnl > 0  # the strategy's edge on a mean-reverting market is real
    assert verify([tmp_path / "a" / "audit.jsonl"]).ok


def test_gate_blocks_revenge_trades_after_a_loss_streak(tmp_path: Path) -> None:
    engine = engine_for("reverting.toml", tmp_path, loss_streak=2, cooldown_ms=3000)
    summary = engine.run(60 * NS)
    assert summary.gate["revenge_cooldown"] > 0
    records = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    blocked = [
        r for r in records if r["kind"] == "decision" and r["data"]["reason"] == "revenge_cooldown"
    ]
    assert blocked and all(not r["data"]["allowed"] for r in blocked)


def _crash_scenario(tmp_path: Path) -> Path:
    rows = (EXAMPLES / "reverting_quotes.csv").read_text(encoding="utf-8").splitlines()
    out = rows[: 1 + 2 * 600]  # 30 s of the reverting market…
    for i in range(1, 201):  # …then a 60 % slide over 10 s
        t = 30 * NS + i * 50_000_000
        mid = round(200_000 * (1 - 0.6 * i / 200))
        out += [f"{t},bid,,{(mid - 1) / 100:.2f},5.00", f"{t},ask,,{(mid + 1) / 100:.2f},5.00"]
    (tmp_path / "crash.csv").write_text("\n".join(out) + "\n", encoding="utf-8")
    text = (EXAMPLES / "reverting.toml").read_text(encoding="utf-8")
    text = text.replace('replay = "reverting_quotes.csv"', 'replay = "crash.csv"').replace(
        "duration_s = 60.0", "duration_s = 40.0"
    )
    path = tmp_path / "crash.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_drawdown_limit_halts_trading(tmp_path: Path) -> None:
    scenario_path = _crash_scenario(tmp_path)
    sc = load_scenario(scenario_path)
    text = (
        (EXAMPLES / "engine.toml")
        .read_text(encoding="utf-8")
        .replace("initial_equity = 100000.0", "initial_equity = 15000.0")
    )
    (tmp_path / "engine.toml").write_text(text, encoding="utf-8")
    engine = Engine(
        sc,
        load_engine_config(tmp_path / "engine.toml", sc),
        venue=ExchangeSimulator(sc),
        audit_path=tmp_path / "a.jsonl",
    )
    summary = engine.run(40 * NS)
    assert summary.drawdown_halt
    assert summary.max_drawdown >= 0.15
    assert summary.halted_at_s is not None and 30 < summary.halted_at_s < 40
    records = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    halt = kinds.index("halt")
    assert "drawdown limit 15% reached" in records[halt]["data"]["reason"]
    assert "decision" not in kinds[halt:]  # nothing traded after the halt
    assert verify([tmp_path / "a.jsonl"]).ok


def test_fuse_stops_new_orders(tmp_path: Path) -> None:
    engine = engine_for("reverting.toml", tmp_path)
    submitted_at_trip: list[int] = []

    def trip_at_20s(t: int, _total: int) -> None:
        if t == 20 * NS:
            engine.fuse.trip("operator kill switch drill")
            submitted_at_trip.append(engine.summary.submitted)

    summary = engine.run(40 * NS, progress=trip_at_20s)
    assert summary.fuse_tripped
    assert submitted_at_trip[0] > 0
    assert summary.submitted == submitted_at_trip[0]
    assert summary.halted_at_s == pytest.approx(20.01)
    assert engine.breaker.state.value == "open"


def test_stop_event_ends_the_run_early(tmp_path: Path) -> None:
    engine = engine_for("reverting.toml", tmp_path)
    stop = threading.Event()
    seen: list[int] = []

    def progress(t: int, total: int) -> None:
        seen.append(t)
        if t >= 5 * NS:
            stop.set()

    summary = engine.run(60 * NS, stop, progress)
    assert summary.simulated_s == pytest.approx(5.0)
    assert seen[-1] == 5 * NS


class Flipper:
    """A user plugin: alternately buys and sells one lot at the touch on every 10th quote."""

    def __init__(self, context: StrategyContext) -> None:
        self.n = 0
        self.side = 1
        assert context.instruments

    def on_quote(self, quote: Quote, position: float) -> list[Intent]:
        self.n += 1
        if self.n % 10:
            return []
        self.side = -self.side
        return [Intent(quote.instrument, self.side, 0.5, quote.ask if self.side > 0 else quote.bid)]


def test_plugin_strategy_and_metrics(tmp_path: Path) -> None:
    sc = load_scenario(EXAMPLES / "reverting.toml")
    cfg = load_engine_config(EXAMPLES / "engine.toml", sc)
    metrics = Metrics()
    engine = Engine(
        sc,
        cfg,
        venue=ExchangeSimulator(sc),
        metrics=metrics,
        strategy=Flipper(StrategyContext(("ETH-USD",), {}, 0, {})),
    )
    summary = engine.run(30 * NS)
    assert summary.signals > 0
    text = metrics.exposition().decode()
    assert "gate_decisions_total" in text and "circuit_breaker_state" in text
    assert metrics.registry.get_sample_value("requests_total") == summary.submitted


def test_cli_run_prints_summary_and_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT4_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.delenv("BOT4_SECRETS", raising=False)
    monkeypatch.delenv("BOT4_AUDIT_KEY", raising=False)
    pub = tmp_path / "audit.pub"
    assert cli.main(["audit", "keygen", "--public-out", str(pub)]) == 0
    assert capsys.readouterr().out.startswith("audit-checkpoint+")
    log = tmp_path / "audit.jsonl"
    argv = [
        "run",
        str(EXAMPLES / "reverting.toml"),
        "--engine",
        str(EXAMPLES / "engine.toml"),
        "--audit-log",
        str(log),
        "--duration",
        "10",
        "--fsync",
        "never",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "simulated      10.000s (seed 5)" in out and "audit head" in out
    assert cli.main(["audit", "verify", str(log), "--key", str(pub)]) == 0
    assert capsys.readouterr().out.startswith("OK: ")
    assert cli.main([*argv[:-2], "--json", "--seed", "9", "--strategy", "mean_reversion"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 9
    assert cli.main(["audit", "verify", str(log), "--key", str(pub)]) == 0  # two clean runs


def test_cli_run_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    bad_every = ["run", str(EXAMPLES / "reverting.toml"), "--audit-log", str(tmp_path / "a.jsonl")]
    assert cli.main([*bad_every, "--unsigned-audit", "--checkpoint-every", "0"]) == 2
    assert capsys.readouterr().err == (
        "bot4: error: --checkpoint-every must be ≥ 1 and --checkpoint-interval > 0\n"
    )
    assert not (tmp_path / "a.jsonl").exists()
    bad = tmp_path / "engine.toml"
    bad.write_text("step_ms = -1\n", encoding="utf-8")
    assert cli.main(["run", str(EXAMPLES / "reverting.toml"), "--engine", str(bad)]) == 2
    assert "step_ms must be > 0" in capsys.readouterr().err
    assert cli.main(["run", str(EXAMPLES / "reverting.toml"), "--strategy", "nope"]) == 2
    assert "module:Class" in capsys.readouterr().err


def test_signed_run_is_byte_identical_and_exports_its_tree_head(tmp_path: Path) -> None:
    signer = NoteSigner.from_private("k", Ed25519PrivateKey.from_private_bytes(b"\x04" * 32))
    sc = load_scenario(EXAMPLES / "reverting.toml")
    config = load_engine_config(EXAMPLES / "engine.toml", sc)
    logs = []
    for d in ("a", "b"):
        metrics = Metrics()
        path = tmp_path / d / "audit.jsonl"
        engine = Engine(
            sc,
            config,
            venue=ExchangeSimulator(sc),
            audit_path=path,
            audit_signer=signer,
            metrics=metrics,
        )
        engine.run(20 * NS)
        logs.append(path.read_bytes())
        verdict = verify([path], signer.verifier())
        assert verdict.passes() and verdict.checkpoints >= 2
        text = metrics.exposition().decode()
        assert f"audit_tree_size {float(verdict.signed_size)}" in text
        note = verdict.last_checkpoint or ""
        root = base64.b64decode(note.split("\n")[2]).hex()  # the signed root, not the live one
        assert f'audit_tree_head{{origin="bot4/audit",root="{root}"}}' in text
    assert logs[0] == logs[1]  # Ed25519 is deterministic: same seed, same signed log
