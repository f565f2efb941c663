"""The scheduled refresh's script against local data: the committed image.lock, a re-lock
of it where a security update superseded one .deb and a wheel was dropped, and two scan
reports; through ``python -m ci.image`` as the ``refresh`` and ``refresh-pr`` sessions
run it."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from ci.image import lock_format

ROOT = Path(__file__).resolve().parents[3]


def _cli(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ci.image", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _scan(path: Path, *rows: tuple[str, str, str, str, bool]) -> Path:
    findings = [
        {"rule": r, "subject": s, "severity": sev, "message": m, "fails": f}
        for r, s, sev, m, f in rows
    ]
    path.write_text(json.dumps({"threshold": "HIGH", "findings": findings}), encoding="utf-8")
    return path


def _relocked(tmp_path: Path) -> tuple[Path, Path, lock_format.DebPin]:
    old = tmp_path / "image.lock.before"
    old.write_bytes((ROOT / "image.lock").read_bytes())
    lock = lock_format.read_lock(old)
    deb = lock.debs[-1]
    moved = dataclasses.replace(deb, version=deb.version + "+deb12u9", suite="bookworm-security")
    new_lock = dataclasses.replace(lock, debs=(*lock.debs[:-1], moved), wheels=lock.wheels[1:])
    new = tmp_path / "image.lock"
    lock_format.write_lock(new, new_lock)
    return old, new, deb


def test_the_body_names_every_moved_pin_and_the_scan_delta(tmp_path: Path) -> None:
    old, new, deb = _relocked(tmp_path)
    dropped = lock_format.read_lock(old).wheels[0]
    pending = ("pending-update", deb.name, "HIGH", f"{deb.name} has a security update", True)
    kept = ("hygiene", "/usr/bin/x", "LOW", "setuid bit", False)
    new_cve = ("advisory", deb.name, "MEDIUM", "CVE-2026-0001", False)
    before = _scan(tmp_path / "before.json", pending, kept)
    after = _scan(tmp_path / "after.json", kept, new_cve)
    out = tmp_path / "pr.md"
    done = _cli(
        "refresh-report", "--old-lock", str(old), "--new-lock", str(new),
        "--before", str(before), "--after", str(after), "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8") == done.stdout
    lines = done.stdout.splitlines()
    moved = (
        f"- deb {deb.name}: {deb.version} ({deb.suite}) → {deb.version}+deb12u9 (bookworm-security)"
    )
    assert moved in lines
    assert f"- wheel {dropped.name}: removed {dropped.version} (PyPI)" in lines
    assert sum(x.startswith("- deb ") or x.startswith("- wheel ") for x in lines) == 2
    assert (
        "2 finding(s) before, 2 after; 1 gone, 1 new; 0 failing the gate after the refresh."
        in lines
    )
    gone = lines.index("Gone:")
    assert lines[gone + 1] == (
        f"- HIGH pending-update {deb.name}: {deb.name} has a security update — fails the gate"
    )
    assert lines[lines.index("New:") + 1] == f"- MEDIUM advisory {deb.name}: CVE-2026-0001"


def test_an_unchanged_lock_says_so(tmp_path: Path) -> None:
    scan = _scan(tmp_path / "scan.json")
    lock = str(ROOT / "image.lock")
    done = _cli(
        "refresh-report", "--old-lock", lock, "--new-lock", lock,
        "--before", str(scan), "--after", str(scan),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "No package changed." in done.stdout.splitlines()
    assert "0 finding(s) before, 0 after; 0 gone, 0 new; 0 failing" in done.stdout


def test_a_report_that_is_not_a_scan_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"findings": [{"rule": "x"}]}', encoding="utf-8")
    out = tmp_path / "pr.md"
    lock = str(ROOT / "image.lock")
    done = _cli(
        "refresh-report", "--old-lock", lock, "--before", str(bad), "--after", str(bad),
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "not a ci.image scan --json report" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_refresh_pr_opens_nothing_when_nothing_changed(tmp_path: Path) -> None:
    (tmp_path / "pr.md").write_text("body\n", encoding="utf-8")
    (tmp_path / "changes.patch").write_text("", encoding="utf-8")
    done = _cli("refresh-pr", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "refresh: nothing changed; no pull request\n"


def test_refresh_pr_without_the_refresh_output_names_the_session(tmp_path: Path) -> None:
    done = _cli("refresh-pr", "--dir", str(tmp_path / "missing"))
    assert done.returncode == 1
    assert done.stderr == (
        f"ci.image: error: {tmp_path / 'missing'}: no pr.md/changes.patch; "
        "run scripts/gate -s refresh first\n"
    )


def test_refresh_pr_without_gh_refuses_before_touching_git(tmp_path: Path) -> None:
    (tmp_path / "pr.md").write_text("body\n", encoding="utf-8")
    (tmp_path / "changes.patch").write_text("diff --git a/x b/x\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "ci.image", "refresh-pr", "--dir", str(tmp_path)],
        cwd=tmp_path,  # not a git checkout: nothing could be committed even by mistake
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)},
    )
    assert done.returncode == 1
    assert (
        done.stderr
        == "ci.image: error: gh (GitHub CLI) not found: opening the pull request needs it\n"
    )
