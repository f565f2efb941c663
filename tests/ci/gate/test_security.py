"""`python -m ci.gate.security`: every scanner runs and every finding is reported."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ci.gate import security

ROOT = Path(__file__).resolve().parents[3]
BANDIT = Path(sys.executable).parent / "bandit"


def tree(tmp_path: Path, planted: str | None) -> Path:
    root = tmp_path / "repo"
    (root / "src" / "bot4").mkdir(parents=True)
    (root / "ci").mkdir()
    for rel in ("pyproject.toml", "ci/policy.toml", ".gitignore"):  # reports/ is ignored
        shutil.copy(ROOT / rel, root / rel)
    (root / "src" / "bot4" / "ok.py").write_text('"""Fine."""\n', encoding="utf-8")
    if planted is not None:
        (root / "src" / "bot4" / "planted.py").write_text(planted, encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def scan(root: Path) -> subprocess.CompletedProcess[str]:
    assert BANDIT.exists(), "bandit is not installed beside this interpreter (install the lock)"
    return subprocess.run(
        [sys.executable, "-m", "ci.gate.security", "--root", str(root), "--bandit", str(BANDIT)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.e2e
def test_all_scanners_run_and_report_together(tmp_path: Path) -> None:
    secret = 'PASSWORD = "hunter2hunter2"\n'  # pragma: allowlist secret
    planted = secret + 'HOST = "203.0.113.7"\n'  # bot4: allow-ip (planted on purpose)
    root = tree(tmp_path, planted)
    result = scan(root)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "src/bot4/planted.py:1: B105 [LOW/MEDIUM] Possible hardcoded password" in out
    assert "src/bot4/planted.py:2: hard-coded IP address: 203.0.113.7" in out  # bot4: allow-ip
    assert "src/bot4/planted.py:1: possible secret: Secret Keyword" in out
    assert out.strip().splitlines()[-1] == (
        "security: failed (bandit 1 finding(s), ip-literals 1 finding(s), secrets 1 finding(s))"
    )
    assert (root / "reports" / "bandit.json").is_file()  # the one bandit run's JSON


@pytest.mark.e2e
def test_clean_tree_passes_and_a_missing_bandit_is_an_error(tmp_path: Path) -> None:
    root = tree(tmp_path, None)
    result = scan(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(
        "security: passed (bandit 0 finding(s), ip-literals 0 finding(s), secrets 0 finding(s))"
    )
    missing = subprocess.run(
        [sys.executable, "-m", "ci.gate.security", "--root", str(root), "--bandit", "/nope"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "security: error: bandit: cannot run /nope" in missing.stderr


@pytest.mark.e2e
def test_in_process_report_and_a_scan_that_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tree(tmp_path, 'HOST = "203.0.113.9"\n')  # bot4: allow-ip (planted on purpose)
    code = security.main(["--root", str(root), "--bandit", str(BANDIT)])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "ip-literals 1 finding(s)" in out.splitlines()[-1]
    (root / "ci" / "policy.toml").write_text("[[[", encoding="utf-8")
    (root / "reports" / "bandit.json").write_text("not json", encoding="utf-8")
    assert security.main(["--root", str(root), "--bandit", str(tmp_path / "none")]) == 2
    assert "security: error: bandit: cannot run" in capsys.readouterr().err
    code = security.main(["--root", str(root), "--bandit", "/bin/false"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "security: error: bandit: bandit exited 1 without a report" in err
    assert "security: error: ip-literals:" in err and "invalid TOML" in err
    assert out.strip().endswith(
        "(bandit could not run, ip-literals could not run, secrets could not run)"
    )
