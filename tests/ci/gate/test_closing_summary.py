"""The gate's closing summary: the real nox (the bootstrap venv's) under the real wrapper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci.gate import closing_summary
from ci.gate.closing_summary import Router, Sessions

ROOT = Path(__file__).resolve().parents[3]
WRAPPER = ROOT / "ci" / "gate" / "closing_summary.py"
NOX = ROOT / ".venv-gate" / "bin" / "nox"  # scripts/gate made it before the tests ran

NOXFILE = """
import nox

@nox.session(python=False)
def good(session):
    session.run("echo", "fine")

@nox.session(python=False)
def bad(session):
    session.run("sh", "-c", "echo 'a log line with error in it' >&2; "
                "echo 'mytool: error: the lock is stale; run scripts/gate -s lock' >&2; "
                "echo done >&2; exit 3")

@nox.session(python=False)
def silent(session):
    session.run("false")
"""


def _wrapped(tmp_path: Path, *sessions: str) -> subprocess.CompletedProcess[str]:
    assert NOX.is_file(), f"{NOX} is missing: run scripts/gate once first"
    (tmp_path / "noxfile.py").write_text(NOXFILE, encoding="utf-8")
    argv = [sys.executable, "-I", str(WRAPPER), str(NOX), "-f", "noxfile.py"]
    return subprocess.run(
        [*argv, "-s", *sessions],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )


def test_failed_sessions_end_with_their_last_error_line(tmp_path: Path) -> None:
    done = _wrapped(tmp_path, "good", "bad", "silent")
    assert done.returncode == 1  # nox's own exit code
    out, err = done.stdout.splitlines(), done.stderr.splitlines()
    assert out == [  # the sessions' output, where nox writes it (stdout)
        "fine",
        "a log line with error in it",
        "mytool: error: the lock is stale; run scripts/gate -s lock",
        "done",
    ]
    assert all(line.startswith(("nox > ", "gate: ")) for line in err)
    assert "nox > * bad: failed" in err  # nox's own summary comes first
    assert err[-3:] == [
        "gate: 2 session(s) failed, each with its last error line:",
        "gate:   bad: mytool: error: the lock is stale; run scripts/gate -s lock",
        "gate:   silent: nox > Command false  failed with exit code 1",
    ]


def test_a_green_run_adds_nothing(tmp_path: Path) -> None:
    done = _wrapped(tmp_path, "good")
    assert done.returncode == 0
    assert not any(line.startswith("gate:") for line in done.stderr.splitlines())


def test_the_list_of_sessions_stays_on_stdout(tmp_path: Path) -> None:
    (tmp_path / "noxfile.py").write_text(NOXFILE, encoding="utf-8")
    argv = [sys.executable, "-I", str(WRAPPER), str(NOX), "-f", "noxfile.py", "-l"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert [line for line in done.stdout.splitlines() if line.startswith("* ")] == [
        "* good",
        "* bad",
        "* silent",
    ]
    assert done.stderr == ""


class _Sink:
    """A binary stream that records each write (a real file would hide the timing)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        raise AssertionError("only a broken pipe asks for the descriptor")


def test_each_line_goes_to_the_stream_nox_wrote_it_to() -> None:
    out, err = _Sink(), _Sink()
    router = Router(out, err)  # type: ignore[arg-type]
    lines = router.take(b"\x1b[36mnox > \x1b[35mRunning session tests\x1b[0m\npyt")
    assert lines == ["\x1b[36mnox > \x1b[35mRunning session tests\x1b[0m\n"]
    assert out.writes == []  # "pyt" could still become "nox > "
    assert router.take(b"est ....") == []
    assert b"".join(out.writes) == b"pytest ...."  # shown before its newline
    assert router.take(b"..  [100%]\ngate: waiting for x\nno") == [
        "pytest ......  [100%]\n",
        "gate: waiting for x\n",
    ]
    assert router.take(b"") == ["no"]  # EOF: the partial last line, passed on too
    assert b"".join(out.writes) == b"pytest ......  [100%]\nno"
    assert b"".join(err.writes) == (
        b"\x1b[36mnox > \x1b[35mRunning session tests\x1b[0m\ngate: waiting for x\n"
    )


def test_scripts_gate_ends_with_the_summary(tmp_path: Path) -> None:
    """Through the real entry point (the bootstrap venv reused, no Debian packages)."""
    (tmp_path / "noxfile.py").write_text(NOXFILE, encoding="utf-8")
    done = subprocess.run(
        [str(ROOT / "scripts" / "gate"), "-f", str(tmp_path / "noxfile.py"), "-s", "bad"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BOT4_SKIP_DEBS": "1"},
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-2:] == [
        "gate: 1 session(s) failed, each with its last error line:",
        "gate:   bad: mytool: error: the lock is stale; run scripts/gate -s lock",
    ]


def test_a_reader_that_goes_away_stops_the_copy_not_nox(tmp_path: Path) -> None:
    (tmp_path / "noxfile.py").write_text(NOXFILE, encoding="utf-8")
    argv = [sys.executable, "-I", str(WRAPPER), str(NOX), "-f", "noxfile.py", "-s", "bad"]
    with subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        process.stdout.close()  # `scripts/gate | head` after head has exited
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert err.decode().splitlines()[-1].startswith("gate:   bad: mytool: error: ")
    assert "Traceback" not in err.decode()


def test_the_parser_reads_colours_carriage_returns_and_pytest_failures() -> None:
    sessions = Sessions()
    for line in [
        "\x1b[36mnox > \x1b[35mRunning session tests\x1b[0m",
        "tests/a.py::test_x PASSED",
        "FAILED tests/a.py::test_y - AssertionError: 1 != 2",
        "progress 50%\r",
        "= 1 failed, 1 passed in 0.1s =",
        "\x1b[36mnox > \x1b[31mSession tests failed.\x1b[0m",
        "nox > Running session lint",
        "x" * 1000,
        "nox > Session lint failed.",
        "nox > Running session types",
        "nox > Session types was successful.",
        "late: error: read after types' end, still types' output",
        "nox > Ran 3 sessions in 1s:",
        "nox > * lint: failed",  # nox's closing summary is not a session's output
    ]:
        sessions.feed(line)
    assert sessions.failed == ["tests", "lint"]
    summary = sessions.summary()
    assert summary[1] == "gate:   tests: FAILED tests/a.py::test_y - AssertionError: 1 != 2"
    assert summary[2] == f"gate:   lint: {'x' * (closing_summary.WIDTH - 1)}…"
    assert len(summary) == 3
    assert sessions.last_error["types"].startswith("late: error:")
    assert "lint" not in sessions.last_nox
    assert Sessions().summary() == []


@pytest.mark.parametrize("args", [[], ["--help"]])
def test_usage(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert closing_summary.main(args) == (0 if args else 2)
    assert capsys.readouterr().out.startswith("Usage: python3 -I ci/gate/closing_summary.py")


def test_a_missing_nox_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert closing_summary.main(["/nonexistent/nox"]) == 2
    assert (
        capsys.readouterr().err
        == "gate: error: cannot run /nonexistent/nox: No such file or directory\n"
    )
