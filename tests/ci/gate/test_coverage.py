from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ci import cli
from ci.errors import GateError
from ci.gate import coverage as coverage_gate
from ci.gate.coverage import Policy

POLICY = Policy(line=95.0, branch=90.0, critical=("bot4.risk", "bot4.trading_engine"))

PYPROJECT = """
[tool.bot4.coverage]
line = 95
branch = 90
critical = ["bot4.risk", "bot4.trading_engine"]
"""


def entry(
    statements: int, covered: int, branches: int = 0, covered_branches: int = 0
) -> dict[str, Any]:
    return {
        "executed_lines": list(range(1, covered + 1)),
        "missing_lines": list(range(covered + 1, statements + 1)),
        "summary": {
            "num_statements": statements,
            "covered_lines": covered,
            "num_branches": branches,
            "covered_branches": covered_branches,
        },
    }


def report(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"meta": {"branch_coverage": True}, "files": files}


def test_module_names() -> None:
    assert coverage_gate.module_of("src/bot4/risk/var.py") == "bot4.risk.var"
    assert coverage_gate.module_of("src/bot4/risk/__init__.py") == "bot4.risk"
    assert coverage_gate.module_of("ci/supply_chain/sbom.py") == "ci.supply_chain.sbom"
    assert coverage_gate.in_package("bot4.risk.var", "bot4.risk")
    assert not coverage_gate.in_package("bot4.riskier", "bot4.risk")


def test_a_critical_package_below_the_line_floor_fails_by_name() -> None:
    files = coverage_gate.parse_report(
        report(
            {
                # Plenty of well-covered code elsewhere keeps the overall number high.
                "src/bot4/simulator/book.py": entry(1000, 1000, 100, 100),
                "src/bot4/risk/checks.py": entry(100, 94, 10, 10),
                "src/bot4/trading_engine/emotion_gate.py": entry(100, 100, 20, 20),
            }
        ),
        "fixture",
    )
    rows, failures = coverage_gate.evaluate(files, POLICY)
    assert failures == ["bot4.risk: line 94.00% < 95%"]
    assert rows[0].name == "overall" and rows[0].line_pct > 99
    table = coverage_gate.render_table(rows, POLICY)
    assert "bot4.risk" in table and "FAIL (line 94.00% < 95%)" in table


def test_branch_floor_is_separate_from_line_floor() -> None:
    files = coverage_gate.parse_report(
        report(
            {
                "src/bot4/risk/a.py": entry(100, 100, 100, 89),
                "src/bot4/trading_engine/b.py": entry(10, 10),
            }
        ),
        "fixture",
    )
    _, failures = coverage_gate.evaluate(files, POLICY)
    assert failures == ["overall: branch 89.00% < 90%", "bot4.risk: branch 89.00% < 90%"]


def test_package_with_no_files_fails() -> None:
    files = coverage_gate.parse_report(report({"src/bot4/risk/a.py": entry(1, 1)}), "f")
    _, failures = coverage_gate.evaluate(files, POLICY)
    assert failures == [
        "bot4.trading_engine: no files measured (is the package imported by any test?)"
    ]


def test_exactly_at_the_floor_passes() -> None:
    files = coverage_gate.parse_report(
        report(
            {
                "src/bot4/risk/a.py": entry(100, 95, 10, 9),
                "src/bot4/trading_engine/b.py": entry(20, 19, 10, 9),
            }
        ),
        "f",
    )
    assert coverage_gate.evaluate(files, POLICY)[1] == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "not a coverage.py JSON report"),
        ({"files": []}, "not a coverage.py JSON report"),
        ({"meta": {"branch_coverage": False}, "files": {}}, "without branch coverage"),
        ({"files": {"a.py": {}}}, "entry has no summary"),
        ({"files": {"a.py": {"summary": {"num_statements": -1}}}}, "num_statements missing"),
        (
            {
                "files": {
                    "a.py": {
                        "summary": {"num_statements": 1, "covered_lines": 1},
                        "executed_lines": "x",
                    }
                }
            },
            "executed_lines must be a list",
        ),
    ],
)
def test_malformed_reports(data: Any, message: str) -> None:
    with pytest.raises(GateError, match=message):
        coverage_gate.parse_report(data, "r.json")


def test_missing_and_invalid_json(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="not found; run the tests under coverage"):
        coverage_gate.load_report(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(GateError, match="not valid JSON"):
        coverage_gate.load_report(bad)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tool", "invalid TOML"),
        ("[tool.bot4]", "missing \\[tool.bot4.coverage\\]"),
        ("[tool.bot4.coverage]\nline = 101\nbranch = 90", "line must be 0–100"),
        ("[tool.bot4.coverage]\nline = 95\nbranch = true", "branch must be 0–100"),
        ("[tool.bot4.coverage]\nline = 95\nbranch = 90\ncritical = [1]", "critical must be a list"),
    ],
)
def test_bad_policy(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GateError, match=message):
        coverage_gate.load_policy(path)
    with pytest.raises(GateError, match="not found"):
        coverage_gate.load_policy(tmp_path / "nope.toml")


def test_diff_parsing_and_changed_line_coverage() -> None:
    diff = (
        "diff --git a/src/bot4/risk/a.py b/src/bot4/risk/a.py\n"
        "--- a/src/bot4/risk/a.py\n+++ b/src/bot4/risk/a.py\n"
        "@@ -1,0 +2,3 @@\n+x\n+y\n+z\n@@ -9 +12 @@\n-q\n+r\n"
        "diff --git a/gone.py b/gone.py\n--- a/gone.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n"
        "--- a/doc.md\n+++ b/doc.md\n@@ -1 +1,0 @@\n-x\n"
    )
    changed = coverage_gate.parse_diff(diff)
    assert changed == {"src/bot4/risk/a.py": {2, 3, 4, 12}}
    files = coverage_gate.parse_report(
        report({"src/bot4/risk/a.py": entry(10, 3), "src/bot4/risk/b.py": entry(5, 5)}), "f"
    )
    rows = coverage_gate.diff_coverage(files, changed)
    # Lines 2,3 executed; 4 missing; 12 is not a statement.
    assert [(r.path, r.changed, r.covered, r.missing) for r in rows] == [
        ("src/bot4/risk/a.py", 3, 2, (4,))
    ]
    text = coverage_gate.render_diff(rows, "main")
    assert "2/3 covered (66.67%)" in text and "missing: 4" in text
    assert "no measured statements changed" in coverage_gate.render_diff([], "main")
    assert coverage_gate.diff_coverage(files, {"src/bot4/risk/a.py": {99}}) == []


def _write_fixture_project(root: Path, test_body: str) -> None:
    pkg = root / "src" / "bot4" / "risk"
    pkg.mkdir(parents=True)
    (root / "src" / "bot4" / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "limits.py").write_text(
        "def clamp(x: int, hi: int) -> int:\n    if x > hi:\n        return hi\n    return x\n",
        encoding="utf-8",
    )
    (root / "test_fixture.py").write_text(
        "import sys\nsys.path.insert(0, 'src')\nfrom bot4.risk.limits import clamp\n" + test_body,
        encoding="utf-8",
    )
    (root / "pyproject.toml").write_text(
        '[tool.bot4.coverage]\nline = 95\nbranch = 90\ncritical = ["bot4.risk"]\n', encoding="utf-8"
    )


def _measure(root: Path) -> Path:
    # Not the outer run's COVERAGE_FILE (the gate's measured runs set it): `coverage run`
    # would erase the data this very test run is writing.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_", "COVERAGE_"))}

    def run(*args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "coverage", *args],
            cwd=root, env=env, check=True, capture_output=True,
        )  # fmt: skip

    run("run", "--branch", "--source=src", "test_fixture.py")
    run("json", "-o", "coverage.json")
    return root / "coverage.json"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("body", "code", "expected"),
    [
        ("assert clamp(1, 5) == 1\nassert clamp(9, 5) == 5\n", 0, "coverage gate: passed"),
        # Dropping one assertion leaves `return hi` unrun: bot4.risk falls under both floors.
        ("assert clamp(1, 5) == 1\n", 1, "bot4.risk: line"),
    ],
)
def test_gate_on_a_real_coverage_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, code: int, expected: str
) -> None:
    _write_fixture_project(tmp_path, body)
    report_path = _measure(tmp_path)
    argv = [
        "coverage-gate",
        "--report",
        str(report_path),
        "--pyproject",
        str(tmp_path / "pyproject.toml"),
    ]
    assert cli.main(argv) == code
    out = capsys.readouterr()
    assert expected in out.out + out.err


@pytest.mark.e2e
def test_cli_diff_against_a_git_ref(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_fixture_project(git_repo, "assert clamp(1, 5) == 1\nassert clamp(9, 5) == 5\n")
    subprocess.run(["git", "-C", str(git_repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(git_repo), "commit", "-qm", "base"], check=True)
    limits = git_repo / "src" / "bot4" / "risk" / "limits.py"
    limits.write_text(
        limits.read_text(encoding="utf-8") + "\n\ndef unused() -> int:\n    return 1\n",
        encoding="utf-8",
    )
    report_path = _measure(git_repo)
    argv = [
        "--root",
        str(git_repo),
        "coverage-gate",
        "--report",
        str(report_path),
        "--pyproject",
        str(git_repo / "pyproject.toml"),
        "--diff",
        "HEAD",
    ]
    assert cli.main(argv) == 1  # the new function is unrun: the package drops below 95%
    out = capsys.readouterr().out
    assert "changed lines since HEAD: 1/2 covered (50.00%)" in out
    assert cli.main([*argv[:-1], "no-such-ref"]) == 1
    assert "--diff no-such-ref:" in capsys.readouterr().err


def test_the_repository_policy_is_valid() -> None:
    policy = coverage_gate.load_policy(Path(__file__).resolve().parents[3] / "pyproject.toml")
    assert policy.line == 95 and policy.branch == 90
    assert set(policy.critical) == {"bot4.trading_engine", "bot4.risk", "bot4.infrastructure"}


def test_json_roundtrip_of_real_shape(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(report({"ci/x.py": entry(4, 4, 2, 2)})), encoding="utf-8")
    files = coverage_gate.load_report(path)
    assert files[0].module == "ci.x" and files[0].branches == 2
