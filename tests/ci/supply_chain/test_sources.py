"""The source policy over locks: every bad line is reported, one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci.cli import main
from ci.supply_chain import sources

H = "--hash=sha256:" + "a" * 64


def test_clean_lock_passes() -> None:
    assert sources.check_text(f"six==1.17.0 \\\n    {H}\n# comment\n", "l.txt") == []


def test_every_violation_is_reported_with_its_line() -> None:
    text = (
        f"six==1.17.0 {H}\n"
        "--extra-index-url https://mirror.invalid/simple\n"
        "--index-url https://other.invalid/simple\n"
        "--find-links /tmp/wheels\n"
        "git+https://github.com/example/pkg.git@main\n"
        f"pkg @ git+https://github.com/example/pkg.git {H}\n"
        "nohash==1.0\n"
        f"ranged>=1.0 {H}\n"
        "-e ./src\n"
    )
    problems = sources.check_text(text, "l.txt")
    assert problems == [
        "l.txt:2: option '--extra-index-url' is not allowed in a lock",
        "l.txt:3: option '--index-url' is not allowed in a lock",
        "l.txt:4: option '--find-links' is not allowed in a lock",
        problems[3],
        "l.txt:6: pkg comes from a URL/VCS/path (git+https://github.com/example/pkg.git); pin it",
        "l.txt:7: nohash has no --hash; regenerate with scripts/gate -s lock",
        "l.txt:8: ranged must be pinned with ==, got 'ranged>=1.0'",
        "l.txt:9: option '-e' is not allowed in a lock",
    ]
    assert problems[3].startswith(
        "l.txt:5: not a valid requirement: 'git+https://github.com/example/pkg.git@main'"
    )


def test_cross_line_problems_and_missing_lock(tmp_path: Path) -> None:
    assert sources.check_text(f"six==1.17.0 {H}\nsix==1.16.0 {H}\n", "l.txt") == [
        "l.txt:2: six is pinned twice (first at line 1)"
    ]
    good = tmp_path / "good.txt"
    good.write_text(f"six==1.17.0 {H}\n", encoding="utf-8")
    assert sources.check_locks([good, tmp_path / "gone.txt"]) == [
        f"{tmp_path}/gone.txt: lock file not found"
    ]


def test_repository_locks_are_clean() -> None:
    repo = Path(__file__).resolve().parents[3]
    assert sources.check_locks(sorted((repo / "locks").glob("*.txt"))) == []


def test_a_lock_the_fast_check_cannot_vouch_for_is_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through `python -m ci sources`: pins the plain-form check (clean_lock) leaves to
    packaging — one name under markers that differ only by quotes or parentheses, or by a
    --hash hidden in a marker value — are refused, exit 1 (a cross-line problem: the first
    is reported, as before); a plain lock with one name under two different markers
    passes."""
    lock = tmp_path / "requirements.txt"
    lock.write_text(
        f"x==1 ; os_name == 'nt' {H}\n"
        f'x==1 ; (os_name=="nt") {H}\n'
        f"y==2 ; os_name == '--hash=sha256:aa' {H}\n"
        f"y==2 ; os_name == '--hash=sha256:bb' {H}\n",
        encoding="utf-8",
    )
    assert main(["sources", "--lock", str(lock)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"ci: error: source: {lock}:2: x is pinned twice (first at line 1)",
    ]
    lock.write_text(
        f"y==2 ; os_name == '--hash=sha256:aa' {H}\ny==2 ; os_name == '--hash=sha256:bb' {H}\n",
        encoding="utf-8",
    )
    assert main(["sources", "--lock", str(lock)]) == 1
    assert capsys.readouterr().err == (
        f"ci: error: source: {lock}:2: y is pinned twice (first at line 1)\n"
    )
    lock.write_text(f"x==1 ; os_name == 'nt' {H}\nx==1 ; os_name != 'nt' {H}\n", encoding="utf-8")
    assert main(["sources", "--lock", str(lock)]) == 0
    assert capsys.readouterr().out == "sources: 1 locks clean\n"
