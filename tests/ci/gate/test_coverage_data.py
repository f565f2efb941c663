"""Combining coverage of two sessions: refused unless both measured these very sources."""

from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path

import pytest

from ci.gate import coverage_data
from ci.gate.coverage_data import sources_digest

PYPROJECT = '[tool.coverage.run]\nsource = ["src/pkg", "ci"]\n'


def _project(root: Path) -> Path:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "ci").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (root / "src" / "pkg" / "a.py").write_text("x = 1\n", encoding="utf-8")
    (root / "ci" / "b.py").write_text("y = 2\n", encoding="utf-8")
    data = root / "data"
    data.mkdir()
    return data


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m ci.gate.coverage_data`` run in this process (so its coverage counts)."""
    argv = ["--root", str(root), *args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = coverage_data.main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def test_stamped_parts_of_these_sources_combine(tmp_path: Path) -> None:
    data = _project(tmp_path)
    for name in ("tests", "e2e"):
        (data / name).write_bytes(b"sqlite")
        assert _cli(tmp_path, "stamp", str(data / name)).returncode == 0
    run = _cli(tmp_path, "check", f"{data / 'tests'}=tests", f"{data / 'e2e'}=e2e")
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_a_missing_part_is_refused_with_the_session_to_run(tmp_path: Path) -> None:
    data = _project(tmp_path)
    (data / "tests").write_bytes(b"sqlite")
    assert _cli(tmp_path, "stamp", str(data / "tests")).returncode == 0
    run = _cli(tmp_path, "check", f"{data / 'tests'}=tests", f"{data / 'e2e'}=e2e")
    assert run.returncode == 1
    assert (
        run.stderr
        == f"coverage: {data / 'e2e'}: no coverage data from `e2e`; run scripts/gate -s e2e\n"
    )


def test_an_unstamped_part_is_refused(tmp_path: Path) -> None:
    data = _project(tmp_path)
    (data / "e2e").write_bytes(b"sqlite")  # written, but its run never stamped it
    run = _cli(tmp_path, "check", f"{data / 'e2e'}=e2e")
    assert run.returncode == 1
    assert "no coverage data from `e2e`" in run.stderr


@pytest.mark.parametrize("change", ["edit", "add", "remove"])
def test_a_part_measured_on_other_sources_is_refused(tmp_path: Path, change: str) -> None:
    data = _project(tmp_path)
    (data / "e2e").write_bytes(b"sqlite")
    assert _cli(tmp_path, "stamp", str(data / "e2e")).returncode == 0
    if change == "edit":
        (tmp_path / "ci" / "b.py").write_text("y = 3\n", encoding="utf-8")
    elif change == "add":
        (tmp_path / "src" / "pkg" / "c.py").write_text("", encoding="utf-8")
    else:
        (tmp_path / "src" / "pkg" / "a.py").unlink()
    run = _cli(tmp_path, "check", f"{data / 'e2e'}=e2e")
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"coverage: {data / 'e2e'}: measured other sources than these (changed since `e2e` "
        "ran); run scripts/gate -s e2e"
    ]


def test_stamping_a_run_that_wrote_no_data_is_refused(tmp_path: Path) -> None:
    data = _project(tmp_path)
    run = _cli(tmp_path, "stamp", str(data / "tests"))
    assert run.returncode == 1
    assert not (data / "tests.sources").exists()
    assert run.stderr.count("\n") == 1 and "no coverage data to stamp" in run.stderr


def test_a_malformed_part_is_a_usage_error(tmp_path: Path) -> None:
    run = _cli(tmp_path, "check", "no-session-named")
    assert run.returncode == 2
    assert "expected DATA=SESSION" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_digest_ignores_where_the_clone_is_and_only_reads_measured_sources(
    tmp_path: Path,
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for root in (one, two):
        root.mkdir()
        _project(root)
    (two / "README.md").write_text("not measured\n", encoding="utf-8")
    assert sources_digest(one) == sources_digest(two)


@pytest.mark.parametrize("how", ["rewritten", "swapped"])
def test_data_that_is_not_what_was_stamped_is_refused(tmp_path: Path, how: str) -> None:
    # `coverage erase` leaves the stamp: a later run of the same sources that failed or was
    # stopped before its stamp step (or a data file copied in from elsewhere) kept it valid
    data = _project(tmp_path)
    for name in ("tests", "e2e"):
        (data / name).write_bytes(f"sqlite {name}".encode())
        assert _cli(tmp_path, "stamp", str(data / name)).returncode == 0
    if how == "rewritten":
        (data / "e2e").write_bytes(b"sqlite of a run that never reached its stamp")
    else:
        (data / "e2e").write_bytes((data / "tests").read_bytes())
    run = _cli(tmp_path, "check", f"{data / 'tests'}=tests", f"{data / 'e2e'}=e2e")
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"coverage: {data / 'e2e'}: not the data `e2e` stamped (rewritten since, by a run "
        "that did not finish?); run scripts/gate -s e2e"
    ]


def test_bad_input_is_a_one_line_error_not_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "tests").write_bytes(b"sqlite")
    # no pyproject.toml under --root
    run = _cli(tmp_path, "stamp", str(data / "tests"))
    assert run.returncode == 1
    assert run.stderr.startswith(f"coverage: {tmp_path / 'pyproject.toml'}: no [tool.coverage")
    assert run.stderr.count("\n") == 1
    assert not (data / "tests.sources").exists()
    # a stamp that is not text
    _project(tmp_path / "p")
    (data / "tests.sources").write_bytes(b"\xff\xfe\x00")
    run = _cli(tmp_path / "p", "check", f"{data / 'tests'}=tests")
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"coverage: {data / 'tests'}: measured other sources than these (changed since `tests` "
        "ran); run scripts/gate -s tests"
    ]


def test_a_stamp_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    data = _project(tmp_path)
    (data / "tests").write_bytes(b"sqlite")
    (data / "tests.sources").mkdir()  # in the stamp's way
    run = _cli(tmp_path, "stamp", str(data / "tests"))
    assert run.returncode == 1
    assert run.stderr == f"coverage: {data / 'tests.sources'}: Is a directory\n"
