"""``python -m ci.ops``: the commands end to end on the repository and on broken copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ci.ops import cli as ops_cli

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.e2e
def test_check_passes_on_the_repository(
    promtool: str, amtool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ops_cli.main(["--root", str(ROOT), "check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ops: 22 rules (15 alerts) checked and unit-tested")


@pytest.mark.e2e
def test_check_reports_each_problem_and_fails(
    tmp_path: Path, promtool: str, amtool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(ROOT / "ops", tmp_path / "ops")
    shutil.copytree(ROOT / "docs" / "runbooks", tmp_path / "docs" / "runbooks")
    (tmp_path / "docs" / "runbooks" / "slo-burn.md").unlink()
    (tmp_path / "ops" / "tests" / "slo_long_test.yml").unlink()
    (tmp_path / "ops" / "dashboards" / "bot4-slo.json").write_text("{}\n", encoding="utf-8")
    assert ops_cli.main(["--root", str(tmp_path), "check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert (
        "ci.ops: error: slo.yml: alert SLOBurnRateHigh: runbook_url docs/runbooks/slo-burn.md "
        "is not a file in the repository" in err
    )
    assert (
        "ci.ops: error: docs/runbooks/slo-burn.md: missing (one of the ten critical runbooks)"
        in err
    )
    assert any("bot4-slo.json: differs from the generator" in line for line in err)
    assert "ci.ops: error: slo.yml: record slo_burn_rate_3d has no promtool unit test" in err
    assert err[-1].startswith("ci.ops: error: ") and err[-1].endswith(" problem(s)")


def test_dashboards_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = ["--root", str(tmp_path)]
    assert ops_cli.main([*root, "dashboards"]) == 1
    assert "missing — run scripts/gate -s dashboards" in capsys.readouterr().err
    assert ops_cli.main([*root, "dashboards", "--write"]) == 0
    assert capsys.readouterr().out.count("wrote ") == 3
    assert ops_cli.main([*root, "dashboards"]) == 0
    assert "matches the generator" in capsys.readouterr().out
    assert ops_cli.main(["--root", str(ROOT), "dashboards"]) == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bot4.cli", "--cli expects MODULE:FUNCTION"),
        ("bot4.nope:build_parser", "cannot load"),
        ("bot4.cli:nope", "cannot load"),
    ],
)
def test_a_bad_cli_spec_is_one_line(
    spec: str, message: str, promtool: str, amtool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ops_cli.main(["--root", str(ROOT), "check", "--cli", spec]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_a_missing_ops_tree_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ops").mkdir()
    assert ops_cli.main(["--root", str(tmp_path), "render-config", "--target", "h:1"]) == 1
    assert capsys.readouterr().err.startswith("ci.ops: error: ")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        ops_cli.main(["render-config"])
    assert info.value.code == 2
    assert "--target" in capsys.readouterr().err
