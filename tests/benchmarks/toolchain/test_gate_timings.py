"""The gate-timings benchmark times what CI runs: its sessions are read from `.ci/run`."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.toolchain.gate_timings import ROOT, ci_sessions


def test_the_sessions_are_those_ci_runs_in_its_order() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    sessions = ci_sessions()
    assert sessions[:3] == ("tests", "e2e", "coverage")
    # every session .ci/run names after `scripts/gate -s`, none invented
    named = {
        word
        for found in re.findall(r"^[^#\n]*scripts/gate -s ([^#\n]*)", script, re.MULTILINE)
        for word in found.split("--")[0].split()
    }
    assert set(sessions) == named
    assert len(sessions) == len(set(sessions))


def test_comments_and_arguments_after_double_dash_are_not_sessions(tmp_path: Path) -> None:
    script = tmp_path / "run"
    script.write_text(
        "# scripts/gate -s commented\n"
        "scripts/gate -s tests e2e  # then scripts/gate -s nothing\n"
        "CI=1 scripts/gate -s act -- ci.yml:dockerfile\n"
        "scripts/gate -s tests lint\n",
        encoding="utf-8",
    )
    assert ci_sessions(script) == ("tests", "e2e", "act", "lint")
