from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot4 import cli
from bot4.trading_engine import chaos
from bot4.trading_engine.errors import TradingEngineError


@pytest.mark.parametrize("drill", chaos.DRILLS)
def test_each_drill_meets_its_targets(drill: str) -> None:
    result = chaos.run_drill(drill)
    assert result.passed, result.render()
    assert result.checks


def test_partition_longer_than_the_recovery_budget_still_recovers() -> None:
    result = chaos.partition(seconds=12.0)
    assert result.passed, result.render()
    assert result.figures["timeouts"] > 0


def test_a_failed_target_fails_the_drill() -> None:
    result = chaos.DrillResult("x", 1)
    result.check("good", True, "fine")
    result.check("bad", False, "broken")
    assert not result.passed
    assert "[FAIL] bad: broken" in result.render()


@pytest.mark.e2e
def test_drills_are_deterministic() -> None:
    assert chaos.run_drill("load-spike").to_json() == chaos.run_drill("load-spike").to_json()


@pytest.mark.e2e
def test_cli_runs_all_and_writes_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["chaos", "all", "--seed", "5", "--report-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "chaos: 3 of 3 drills passed" in out
    report = json.loads((tmp_path / "partition.json").read_text(encoding="utf-8"))
    assert report["passed"] and report["drill"] == "partition"


def test_cli_reports_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(seed: int | None = None, seconds: float = 1.0) -> chaos.DrillResult:
        result = chaos.DrillResult("partition", 0)
        result.check("target", False, "missed")
        return result

    monkeypatch.setitem(chaos.RUNNERS, "partition", failing)
    assert cli.main(["chaos", "partition", "--seconds", "1"]) == 1
    assert "FAILED: partition" in capsys.readouterr().out


def test_unknown_drill_and_missing_examples(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(TradingEngineError, match="unknown drill"):
        chaos.run_drill("meteor")
    monkeypatch.setenv(chaos.EXAMPLES_ENV, str(tmp_path))
    with pytest.raises(TradingEngineError, match=r"need examples/reverting\.toml"):
        chaos.run_drill("partition")


def test_resume_refuses_a_drawdown_halt() -> None:
    scenario, config = chaos._base(None)
    engine = chaos._engine(scenario, config, chaos._Steady())
    engine.gate.observe_equity(100.0, 0)
    engine.gate.observe_equity(50.0, 1)
    with pytest.raises(TradingEngineError, match="drawdown halt"):
        engine.resume(by="x", reason="y")
