"""The pre-install verifier line by line: every hostile form refused, the real locks clean."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ci.gate import preinstall, toolchain
from ci.gate.requirements import read_lock

ROOT = Path(__file__).resolve().parents[3]
H = "--hash=sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("foo>=1.0 " + H, "'foo>=1.0' is not pinned as name==version"),
        ("foo==1.* " + H, "'foo==1.*' is not pinned"),
        ("foo===1.0 " + H, "'foo===1.0' is not pinned"),
        ("foo==1.0", "foo==1.0 has no --hash=sha256:"),
        ("foo==1.0 --hash=sha256:abc", "'--hash' after foo"),
        ("foo==1.0 --hash=md5:" + "a" * 32, "'--hash' after foo"),
        ("foo==1.0 " + H + " --config-settings=x=y", "'--config-settings' after foo"),
        ("--index-url http://x/simple", "option --index-url names a package index"),
        ("-i http://x/simple", "option -i names a package index"),
        ("--extra-index-url http://x/simple", "option --extra-index-url adds a package index"),
        ("--find-links=/tmp/w", "option --find-links adds a package source"),
        ("-f/tmp/w", "option -f adds a package source"),
        ("-e .", "option -e installs an editable"),
        ("-r other.txt", "option -r includes another requirement file"),
        ("-c constraints.txt", "option -c includes a constraint file"),
        ("--trusted-host x", "option --trusted-host turns off TLS"),
        ("--pre", "option --pre is not allowed in a lock"),
        ("git+https://x/y.git#egg=foo", "is a URL, VCS or path requirement"),
        ("foo @ https://x/foo.whl " + H, "is a URL, VCS or path requirement"),
        ("foo@git+https://x/y", "is a URL, VCS or path requirement"),
        ("./foo-1.0-py3-none-any.whl " + H, "is a URL, VCS or path requirement"),
        ("/abs/foo.tar.gz " + H, "is a URL, VCS or path requirement"),
        ("foo==1.0; python_version<'3.12' -e x " + H, "is not a plain marker"),
        ("foo==1.0 \\\n# comment\n", "line continues into a comment"),
        ("foo==1.0 \\\n\nbar==1.0 " + H, "line continues into a blank line"),
        ("foo==1.0 \\", "line continues into a blank line"),
        ("# a comment \\\nfoo==1.0 " + H, "comment ends in a backslash"),
        ("foo==1.0\r " + H, "control character '\\r'"),
        ("foo==1.0 " + H + "\nfoo==2.0 " + H, "foo is pinned twice (line 1)"),
        ("föö==1.0 " + H, "non-ASCII"),
    ],
)
def test_hostile_lines_are_refused(text: str, problem: str) -> None:
    problems = [str(p) for p in preinstall.check_text(text + "\n", "locks/x.txt")]
    assert len(problems) == 1, problems
    assert problem in problems[0]
    assert problems[0].startswith("locks/x.txt:")
    assert "— restore it (git checkout HEAD -- locks/x.txt toolchain.lock)" in problems[0]


@pytest.mark.parametrize(
    "text",
    [
        "foo==1.0 " + H,
        "Foo.Bar_baz[extra]==1.0.post1+local " + H + " --hash=sha256:" + "b" * 64,
        "foo==1.0 ; python_version < \"3.12\" and sys_platform == 'linux' " + H,
        "# via x\nfoo==1.0 \\\n    " + H + "\n    # via bar\n",
        "foo==1.0 " + H + "  # trailing comment --extra-index-url ignored by pip too",
    ],
)
def test_clean_lines_pass(text: str) -> None:
    assert preinstall.check_text(text + "\n", "l") == []


def test_a_file_ending_inside_a_continuation_is_refused() -> None:
    (problem,) = preinstall.check_text("foo==1.0 \\", "l")
    assert "file ends inside a line continuation" in str(problem)


def test_the_repository_locks_pass_and_match_the_toolkit() -> None:
    assert preinstall.verify(ROOT) == []
    # one definition of the declarations digest: the toolkit's is the verifier's
    assert (
        toolchain.inputs_digest(ROOT / "pyproject.toml")
        == toolchain.load_toolchain(ROOT / "toolchain.lock").inputs_sha256
    )
    pins = preinstall.lock_pins(ROOT / "locks/toolchain.txt")
    assert pins["aiolimiter"] == "1.3.0"
    assert len(pins) == len(read_lock(ROOT / "locks/toolchain.txt"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for rel in ("toolchain.lock", "pyproject.toml", "locks/bootstrap.txt", "locks/toolchain.txt",
                "locks/runtime.txt", "locks/toolkit.txt"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def test_file_level_problems(repo: Path) -> None:
    (repo / "locks/runtime.txt").write_text("# emptied\n", encoding="utf-8")
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"numpy>=2.1"', '"numpy>=2.2"'))
    problems = [str(p) for p in preinstall.verify(repo)]
    assert problems[0].startswith("locks/runtime.txt:1: sha256 differs from toolchain.lock:")
    assert problems[1] == (
        "pyproject.toml:1: dependency declarations changed since toolchain.lock was written"
        " — re-lock: scripts/gate -s lock"
    )
    assert [str(p) for p in preinstall.verify(repo, only=["bootstrap"], inputs=False)] == []
    assert "no lock named 'nope'" in str(preinstall.verify(repo, only=["nope"])[0])
    (repo / "locks/bootstrap.txt").unlink()
    assert "locks/bootstrap.txt:1: lock file missing — restore it: git checkout HEAD" in str(
        preinstall.verify(repo, only=["bootstrap"])[0]
    )


def test_toolchain_lock_problems(repo: Path) -> None:
    index = repo / "toolchain.lock"
    text = index.read_text()
    index.write_text(text.replace('path = "locks/runtime.txt"', 'path = "../outside.txt"'))
    assert "leaves the repository" in str(preinstall.verify(repo)[0])
    index.write_text("schema = 2\n")
    assert str(preinstall.verify(repo)[0]).startswith("toolchain.lock:1: not a schema-1")
    index.write_text("[[[")
    assert str(preinstall.verify(repo)[0]).startswith("toolchain.lock:1: unreadable")
    index.unlink()
    assert str(preinstall.verify(repo)[0]) == "toolchain.lock:1: missing — scripts/gate -s lock"


@pytest.mark.e2e
def test_runs_as_a_plain_script_with_the_standard_library_only(repo: Path) -> None:
    """-I -S: no site-packages at all, so a third-party import would fail here."""
    script = ROOT / "ci/gate/preinstall.py"
    ok = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "--root", str(repo)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (ok.returncode, ok.stderr) == (0, "")
    lock = repo / "locks/toolchain.txt"
    lock.write_text(lock.read_text() + "--find-links /tmp/w\n")
    bad = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "--root", str(repo)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = bad.stderr.splitlines()
    assert bad.returncode == 1
    assert len(lines) == 2  # the unrecorded edit and the option, one line each
    assert all(line.startswith("gate: refused: locks/toolchain.txt:") for line in lines)
    assert (
        hashlib.sha256(lock.read_bytes()).hexdigest() not in (repo / "toolchain.lock").read_text()
    )


def test_main_in_process_and_odd_files(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert preinstall.main(["--root", str(repo)]) == 0
    assert capsys.readouterr().err == ""
    first = preinstall.files_digest(repo, ["pyproject.toml"])
    (repo / "locks/runtime.txt").write_bytes(b"\xff\xfe")
    (repo / "pyproject.toml").write_text("[[[", encoding="utf-8")
    assert preinstall.files_digest(repo, ["pyproject.toml"]) != first
    assert preinstall.main(["--root", str(repo)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[1] == (
        "gate: refused: locks/runtime.txt:1: not UTF-8 — restore it (git checkout HEAD -- "
        "locks/runtime.txt toolchain.lock) or re-lock (scripts/gate -s lock)"
    )
    assert err[2].startswith("gate: refused: pyproject.toml:1: unreadable (")
