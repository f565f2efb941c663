from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from ci import cli
from ci.errors import GateError
from ci.gate import toolchain, venvs

REPO = Path(__file__).resolve().parents[3]
MakeVenv = Callable[..., Path]
HASH = "--hash=sha256:" + "c" * 64

PYPROJECT = """
[project]
name = "demo"
version = "0"
dependencies = ["numpy"]
[dependency-groups]
bootstrap = ["nox"]
toolchain = ["ruff"]
[tool.bot4.toolchain]
python = "3.11"
platform = "x86_64-unknown-linux-gnu"
"""


def lock_text(pins: dict[str, str]) -> str:
    return "".join(f"{name}=={ver} \\\n    {HASH}\n" for name, ver in pins.items())


def fake_uv(outputs: dict[str, dict[str, str]]) -> toolchain.Runner:
    """Stands in for the network resolution only: writes the lock uv would have written."""

    def run(argv: Sequence[str], cwd: Path) -> None:
        out = Path(argv[argv.index("-o") + 1])
        groups = " ".join(argv)
        key = (
            "toolkit"
            if "--universal" in argv
            else "bootstrap"
            if "bootstrap" in groups
            else "toolchain"
            if "toolchain" in groups and "-c" not in argv
            else "runtime"
        )
        out.write_text(lock_text(outputs[key]), encoding="utf-8")

    return run


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    outputs = {
        "bootstrap": {"nox": "2026.10.20", "uv": "0.13.9"},
        "toolchain": {"ruff": "0.17.5", "numpy": "2.4.6"},
        "runtime": {"numpy": "2.4.6"},
        "toolkit": {"packaging": "26.4"},
    }
    toolchain.compile_locks(
        tmp_path, "uv", "3.11", "x86_64-unknown-linux-gnu", run=fake_uv(outputs)
    )
    return tmp_path


def test_lock_writes_all_files_and_an_index(repo: Path) -> None:
    tc = toolchain.load_toolchain(repo / "toolchain.lock")
    assert [e.name for e in tc.locks] == ["bootstrap", "toolchain", "runtime", "toolkit"]
    assert tc.python == "3.11"
    assert tc.lock("toolchain").governs == "session"
    assert tc.lock("toolkit").governs == "toolkit"  # no gate session venv is checked against it
    assert toolchain.check_files(repo, tc) == []
    # The index is byte-stable: rendering the parsed value reproduces the file.
    assert toolchain.render_toolchain(tc) == (repo / "toolchain.lock").read_text(encoding="utf-8")
    assert not list(repo.glob("bot4-lock-*")), "staging directory left behind"


def test_the_toolkit_lock_is_universal_from_python_3_10(tmp_path: Path) -> None:
    """The toolkit's lock covers every Python it supports (markers), not the gate's 3.11."""
    (tmp_path / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    calls: list[list[str]] = []
    outputs = {
        "bootstrap": {"nox": "1"},
        "toolchain": {"ruff": "1"},
        "runtime": {"numpy": "1"},
        "toolkit": {"packaging": "1"},
    }
    write = fake_uv(outputs)

    def run(argv: Sequence[str], cwd: Path) -> None:
        calls.append(list(argv))
        write(argv, cwd)

    toolchain.compile_locks(tmp_path, "uv", "3.11", "x86_64-unknown-linux-gnu", run=run)
    toolkit = next(c for c in calls if "pyproject.toml:toolkit-tests" in c)
    assert toolkit[toolkit.index("--python-version") + 1] == "3.10"
    assert "--universal" in toolkit and "--python-platform" not in toolkit
    assert all("--universal" not in c for c in calls if c is not toolkit)


def test_failed_resolution_leaves_previous_locks_untouched(repo: Path) -> None:
    before = (repo / "locks" / "toolchain.txt").read_bytes()

    def failing(argv: Sequence[str], cwd: Path) -> None:
        if "-c" in argv:
            raise GateError("uv pip compile failed: no solution")
        fake_uv({"bootstrap": {"nox": "1"}, "toolchain": {"ruff": "9.9.9"}})(argv, cwd)

    with pytest.raises(GateError, match="no solution"):
        toolchain.compile_locks(repo, "uv", "3.11", "linux", run=failing)
    assert (repo / "locks" / "toolchain.txt").read_bytes() == before


def test_drifted_tool_version_fails_with_actionable_line(
    venv_factory: MakeVenv, repo: Path, tmp_path: Path
) -> None:
    venv = venv_factory(tmp_path / "venv", {"ruff": "0.17.4", "numpy": "2.4.6", "bot4": "0.1.0"})
    env = venvs.environment_from_venv(".nox/lint", "session", venv)
    problems = toolchain.check(repo, [env])
    assert problems == [
        "ruff 0.17.4 installed in .nox/lint, toolchain.lock pins 0.17.5 (locks/toolchain.txt)"
        f" — {toolchain.REMEDY}"
    ]


def test_missing_and_unlocked_packages_are_reported(
    venv_factory: MakeVenv, repo: Path, tmp_path: Path
) -> None:
    venv = venv_factory(tmp_path / "venv", {"numpy": "2.4.6", "requests": "2.0"})
    env = venvs.environment_from_venv("v", "session", venv)
    problems = toolchain.check(repo, [env])
    assert any(p.startswith("ruff not installed in v") for p in problems)
    assert any(p.startswith("requests 2.0 installed in v but not in any lock") for p in problems)


def test_runner_role_uses_bootstrap_lock(
    venv_factory: MakeVenv, repo: Path, tmp_path: Path
) -> None:
    venv = venv_factory(tmp_path / "runner", {"nox": "2026.10.20", "uv": "0.13.9"})
    assert toolchain.check(repo, [venvs.environment_from_venv("r", "runner", venv)]) == []


@pytest.mark.parametrize("role", ["runner", "session"])
def test_an_unlocked_pip_setuptools_or_wheel_is_reported(
    venv_factory: MakeVenv,
    repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    role: str,
) -> None:
    """A venv tool's seeds (ensurepip's pip, virtualenv's setuptools and wheel, all with
    advisories in old versions) are not exempt: the gate's venvs hold the locked pip
    only, so one the locks do not pin is drift like any other package."""
    runner = {"nox": "2026.10.20", "uv": "0.13.9"}
    locked = runner if role == "runner" else {"ruff": "0.17.5", "numpy": "2.4.6"}
    seeds = {"pip": "23.0.1", "setuptools": "65.5.0", "wheel": "0.38.4"}
    venv = venv_factory(tmp_path / "venv", {**locked, **seeds})
    code = cli.main(["--root", str(repo), "toolchain", "--no-self", "--venv", f"{role}={venv}"])
    assert code == 1
    err = capsys.readouterr().err
    for name, version in seeds.items():
        assert f"{name} {version} installed in {venv} but not in any lock" in err
    assert err.count(" installed in ") == len(seeds)  # the locked ones pass


def test_wrong_interpreter_in_a_venv(venv_factory: MakeVenv, repo: Path, tmp_path: Path) -> None:
    venv = venv_factory(tmp_path / "venv", {"ruff": "0.17.5", "numpy": "2.4.6"}, version="3.12.1")
    problems = toolchain.check(repo, [venvs.environment_from_venv("v", "session", venv)])
    assert problems == [
        "v: Python 3.12.1 in use, toolchain.lock pins 3.11.x — install Python 3.11 "
        "(Debian 12: apt-get install python3.11-venv)"
    ]


def test_interpreter_checks() -> None:
    tc = toolchain.Toolchain("3.11", "cpython", 64, "linux", "x", ())
    assert toolchain.check_interpreter(tc, "3.11.2", "cpython", 64, "i") == []
    problems = toolchain.check_interpreter(tc, "3.11.2", "pypy", 32, "i")
    assert problems == [
        "i: interpreter is pypy, toolchain.lock pins cpython",
        "i: 32-bit interpreter, toolchain.lock pins 64-bit",
    ]


def test_exact_interpreter_pins() -> None:
    tc = toolchain.Toolchain("3.11", "cpython", 64, "linux", "x", (), ("3.11.2", "3.11.7"))
    assert toolchain.check_interpreter(tc, "3.11.2", "cpython", 64, "i") == []
    assert toolchain.check_interpreter(tc, "3.11.9", "cpython", 64, "i") == [
        "i: Python 3.11.9 in use, toolchain.lock pins 3.11.2 or 3.11.7 — run the gate on a "
        "pinned interpreter (BOT4_PYTHON=…), or add 3.11.9 to [tool.bot4.toolchain] "
        "interpreters in pyproject.toml, test on it, then scripts/gate -s lock"
    ]
    data = {
        "tool": {"bot4": {"toolchain": {"python": "3.11", "interpreters": ["3.11.7", "3.11.2"]}}}
    }
    assert toolchain.interpreter_pins(data) == ("3.11.2", "3.11.7")
    data["tool"]["bot4"]["toolchain"]["interpreters"] = ["3.12.0"]
    with pytest.raises(GateError, match=r"interpreters must list exact 3\.11\.N versions"):
        toolchain.interpreter_pins(data)


def test_hand_edited_lock_and_changed_inputs_are_caught(repo: Path) -> None:
    lock = repo / "locks" / "toolchain.txt"
    lock.write_text(lock.read_text(encoding="utf-8").replace("0.17.5", "0.17.6"), encoding="utf-8")
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(PYPROJECT.replace('["ruff"]', '["ruff", "mypy"]'), encoding="utf-8")
    (repo / "locks" / "runtime.txt").unlink()
    problems = toolchain.check_files(repo, toolchain.load_toolchain(repo / "toolchain.lock"))
    relock = " — run scripts/gate -s lock"
    assert problems == [
        "locks/toolchain.txt differs from the sha256 in toolchain.lock (edited by hand?)" + relock,
        "locks/runtime.txt is missing" + relock,
        "pyproject.toml's dependency declarations changed since toolchain.lock was written"
        + relock,
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema = [", "invalid TOML"),
        ("schema = 2", "schema must be 1"),
        ("schema = 1\npython = 3", "python must be a dict"),
        (
            'schema = 1\ninputs_sha256 = "x"\n[python]\nversion = "3.11"\n[locks]\nx = 1',
            "locks.x must be a table",
        ),
        ('schema = 1\n[python]\nversion = "3.11"\n[locks.x]\npath = 1', "path must be a str"),
    ],
)
def test_malformed_toolchain_lock(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "toolchain.lock"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GateError, match=message):
        toolchain.load_toolchain(path)
    with pytest.raises(GateError, match="not found"):
        toolchain.load_toolchain(tmp_path / "missing.lock")


def test_unknown_lock_and_role(venv_factory: MakeVenv, repo: Path, tmp_path: Path) -> None:
    tc = toolchain.load_toolchain(repo / "toolchain.lock")
    with pytest.raises(GateError, match="no lock named 'nope'"):
        tc.lock("nope")
    venv = venv_factory(tmp_path / "v", {})
    with pytest.raises(GateError, match="no lock governing 'other'"):
        toolchain.check(repo, [venvs.environment_from_venv("v", "other", venv)])


def test_pyproject_settings_validation(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="python must be like"):
        toolchain.python_pin({"tool": {"bot4": {"toolchain": {"python": "3"}}}})
    with pytest.raises(GateError, match="platform must be"):
        toolchain.platform_pin({"tool": {"bot4": {"toolchain": "bad"}}})
    bad = tmp_path / "pyproject.toml"
    bad.write_text("[project", encoding="utf-8")
    with pytest.raises(GateError, match="cannot read"):
        toolchain.read_pyproject(bad)


def test_find_uv_prefers_explicit_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert toolchain.find_uv("/x/uv") == "/x/uv"
    monkeypatch.setenv("UV", "/y/uv")
    assert toolchain.find_uv(None) == "/y/uv"
    monkeypatch.delenv("UV")
    monkeypatch.setenv("PATH", "")
    beside = Path(sys.executable).parent / "uv"
    if beside.exists():
        assert toolchain.find_uv(None) == str(beside)
    else:
        with pytest.raises(GateError, match="uv not found"):
            toolchain.find_uv(None)


def real_uv() -> str:
    """The pinned uv (nox passes it as $UV); these tests need the real binary."""
    try:
        uv = toolchain.find_uv(None)
    except GateError:
        pytest.skip("uv not available: run under nox -s tests, which sets UV")
    return uv


def test_real_uv_failure_is_one_line(tmp_path: Path) -> None:
    uv = real_uv()
    with pytest.raises(GateError, match="uv pip compile failed"):
        toolchain._run_uv([uv, "pip", "compile", "--offline", "missing.in"], tmp_path)


@pytest.mark.e2e
def test_cli_toolchain_on_the_real_repo_passes() -> None:
    """The session environment running these tests matches the committed locks."""
    assert cli.main(["--root", str(REPO), "toolchain"]) == 0


def test_cli_toolchain_reports_drift(
    venv_factory: MakeVenv, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    venv = venv_factory(tmp_path / "venv", {"ruff": "0.17.4", "numpy": "2.4.6"})
    code = cli.main(["--root", str(repo), "toolchain", "--no-self", "--venv", f"session={venv}"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"ci: error: ruff 0.17.4 installed in {venv}, toolchain.lock pins 0.17.5" in err
    assert cli.main(["--root", str(repo), "toolchain", "--no-self", "--venv", "bad"]) == 1
    assert "expects ROLE=PATH" in capsys.readouterr().err


def test_cli_lock_with_a_real_uv_offline_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uv = real_uv()
    before = (repo / "toolchain.lock").read_bytes()
    code = subprocess.run(
        [sys.executable, "-m", "ci", "--root", str(repo), "lock", "--uv", uv],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={"UV_OFFLINE": "1", "UV_NO_CACHE": "1", "PATH": ""},
    )
    assert code.returncode == 1
    assert code.stderr.strip().splitlines()[-1].startswith("ci: error: uv pip compile failed")
    assert (repo / "toolchain.lock").read_bytes() == before
