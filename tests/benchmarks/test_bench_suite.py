"""The bench suite's regression check and README table, through their real entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def suite(tmp_path: Path, floors: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "floors.toml").write_text(floors, encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks/suite.py"),
            "--quick",
            "--only",
            "correlation",
            "--floors",
            str(tmp_path / "floors.toml"),
            "--json",
            str(tmp_path / "bench.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.e2e
def test_a_ratio_below_its_floor_fails_the_run_and_names_the_row(tmp_path: Path) -> None:
    proc = suite(tmp_path, "[floors]\ncorrelation = 1000.0\n")
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("correlation")
    assert "REGRESSION" in proc.stdout
    row = json.loads((tmp_path / "bench.json").read_text())["rows"][0]
    assert row["key"] == "correlation" and row["floor_ok"] is False and row["floor"] == 1000.0


@pytest.mark.e2e
def test_a_ratio_above_its_floor_passes_and_the_readme_table_is_generated(tmp_path: Path) -> None:
    proc = suite(tmp_path, "[floors]\ncorrelation = 0.001\n")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["quick"] is True and report["rows"][0]["peer"] == "np.corrcoef, same matrix"
    row = report["rows"][0]  # "no slower in 5 of 5": every round kept, the worst is the ratio
    assert len(row["round_ratios"]) == 5 and row["ratio"] == min(row["round_ratios"])
    assert row["rounds_met"] == sum(r >= 1.0 for r in row["round_ratios"])
    assert row["goal_met"] is (row["rounds_met"] == 5)
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- bench-table:begin -->\nstale\n<!-- bench-table:end -->\nrest\n",
        encoding="utf-8",
    )
    cmd = [sys.executable, str(ROOT / "benchmarks/readme_table.py"), "--write"]
    cmd += ["--json", str(tmp_path / "bench.json"), "--readme", str(readme)]
    subprocess.run(cmd, check=True, timeout=60)
    text = readme.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("rest\n")
    assert "| correlation matrix T=2520 × N=500 |" in text
    assert f"({row['rounds_met']} of 5 rounds)" in text and "worst of 5" in text


@pytest.mark.e2e
def test_a_bad_floor_is_refused(tmp_path: Path) -> None:
    proc = suite(tmp_path, "[floors]\ncorrelation = -1\n")
    assert proc.returncode != 0
    assert "every floor must be a positive number" in proc.stderr
    assert not (tmp_path / "bench.json").exists()
