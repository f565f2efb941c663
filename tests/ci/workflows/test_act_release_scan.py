"""release.yml's scan job under act: its upload-sarif stand-in, and act's local copy of an
action that lives in a sub-directory of its repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from ci.workflows import act

ROOT = Path(__file__).resolve().parents[3]
SARIF_DIR = act.STANDINS / "github" / "codeql-action" / "upload-sarif"


def _script() -> str:
    data = yaml.safe_load((SARIF_DIR / "action.yml").read_text(encoding="utf-8"))
    return str(data["runs"]["steps"][-1]["run"])


def _bash(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, "-c", _script()], cwd=cwd, env={"PATH": os.environ["PATH"], **env},
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_scan_jobs_pins_all_have_stand_ins_mapped_by_repository(tmp_path: Path) -> None:
    (scan,) = act.plan(ROOT, "release.yml", ["scan"])
    assert scan.run_steps == ("0", "3") and scan.container is not None
    argv = act.local_repositories(scan.pins, tmp_path)
    sarif = next(p for p in scan.pins if p.startswith("github/codeql-action/upload-sarif@"))
    sha = sarif.rpartition("@")[2]
    assert f"github/codeql-action@{sha}={tmp_path / 'standins/github/codeql-action'}" in argv
    assert (SARIF_DIR / "action.yml").is_file()
    assert all(a == "--local-repository" or "=" in a for a in argv)


def test_the_upload_sarif_stand_in_checks_and_keeps_the_log(tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    log = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "bot4"}}, "results": [{}]}]}
    (tmp_path / "ok.sarif").write_text(json.dumps(log), encoding="utf-8")
    env = {"BOT4_ACT_ARTIFACTS": str(store), "GITHUB_OUTPUT": str(out), "CATEGORY": "image-scan"}
    done = _bash(tmp_path, SARIF="ok.sarif", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SARIF 2.1.0, 1 run(s), 1 result(s)" in done.stdout
    assert (store / "code-scanning" / "image-scan.sarif").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8").startswith("sarif-id=")

    bad = {"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}
    (tmp_path / "bad.sarif").write_text(json.dumps(bad), encoding="utf-8")
    refused = _bash(tmp_path, SARIF="bad.sarif", **{**env, "CATEGORY": "bad"})
    assert refused.returncode != 0 and "names no tool.driver.name" in refused.stderr
    (tmp_path / "old.sarif").write_text(json.dumps({"version": "2.0.0", "runs": []}), "utf-8")
    assert _bash(tmp_path, SARIF="old.sarif", **{**env, "CATEGORY": "old"}).returncode != 0
    missing = _bash(tmp_path, SARIF="none.sarif", **{**env, "CATEGORY": "none"})
    assert missing.returncode == 1 and "Path does not exist: none.sarif" in missing.stdout
    assert sorted(p.name for p in (store / "code-scanning").iterdir()) == ["image-scan.sarif"]


def test_a_job_carries_the_pins_of_the_jobs_it_needs() -> None:
    """act runs ``needs`` first under ``-j scan``: build's upload-artifact needs its copy."""
    (scan,) = act.plan(ROOT, "release.yml", ["scan"])
    assert any(p.startswith("actions/upload-artifact@") for p in scan.pins)  # build's
    assert act._needs({"a": {"needs": ["b"]}, "b": {"needs": "c"}, "c": {}}, "a") == ["b", "c"]
    assert act._needs({"a": {}}, "a") == []


def test_only_the_selected_jobs_log_lines_count() -> None:
    job = act.Job("release.yml", "scan", ("0",), frozenset())
    result = act.Result(job, exit_code=0, seconds=1.0)
    lines = [
        {"jobID": "build", "stage": "Main", "stepID": ["0"], "stepResult": "success"},
        {"jobID": "build", "jobResult": "success"},
    ]
    for line in lines:
        act._take(result, json.dumps(line))
    assert result.missing == ["0"] and result.job_result == "missing"
    act._take(
        result,
        json.dumps({"jobID": "scan", "stage": "Main", "stepID": ["0"], "stepResult": "success"}),
    )
    assert result.missing == []
