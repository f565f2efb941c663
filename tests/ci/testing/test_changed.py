"""Changed-only selection, end to end on a small git project: real pytest runs under
coverage with test contexts (serially, and with two xdist workers as the full runs do),
a change, the selection, and pytest reading the selection."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from coverage import CoverageData

from ci.testing import changed

PYPROJECT = """
[tool.pytest.ini_options]
pythonpath = ["."]
[tool.coverage.run]
source = ["pkg"]
branch = true
relative_files = true
"""
FILES = {
    "pyproject.toml": PYPROJECT,
    "README.md": "a project\n",
    ".gitignore": "__pycache__/\n",
    "pkg/__init__.py": "",
    "pkg/alpha.py": "def f(x: int) -> int:\n    return x + 1\n",
    "pkg/beta.py": "def g() -> int:\n    return 2\n",
    "tests/test_alpha.py": (
        "import pytest\nfrom pkg.alpha import f\n\n"
        "@pytest.mark.parametrize('x', [1, 2])\ndef test_f(x):\n    assert f(x) == x + 1\n"
    ),
    "tests/test_beta.py": "from pkg.beta import g\n\ndef test_g():\n    assert g() == 2\n",
    "tests/test_gamma.py": "def test_h():\n    assert True\n",
}


def _run(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("COV_", "COVERAGE_"))}
    return subprocess.run(
        list(argv), cwd=cwd, env={**environ, **env}, capture_output=True, text=True,
        check=False, timeout=600,
    )  # fmt: skip


def _project(tmp_path: Path, workers: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """The committed project in tmp_path/repo and its full run's data (outside the clone)."""
    root = tmp_path / "repo"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t", "-c", "commit.gpgsign=false"]
    assert _run(root, "git", "init", "-q").returncode == 0
    assert _run(root, *git, "add", "-A").returncode == 0
    assert _run(root, *git, "commit", "-qm", "base").returncode == 0
    data = tmp_path / "full.coverage"
    full = _run(
        root, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *workers, "--cov",
        "--cov-report=", "--cov-context=test", "tests", COVERAGE_FILE=str(data),
    )  # fmt: skip
    assert full.returncode == 0, full.stdout + full.stderr
    assert "4 passed" in full.stdout
    return root, data


def _changed(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m ci.testing.changed`` run in this process (so its coverage counts)."""
    argv = ["--root", str(root), *args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = changed.main(argv)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize(
    "workers",
    [  # e2e: a pytest run under coverage in a subprocess (and xdist's worker start-up)
        pytest.param((), marks=pytest.mark.e2e, id="serial"),
        pytest.param(("-n", "2"), marks=pytest.mark.e2e, id="xdist"),
    ],
)
def test_a_changed_source_selects_the_tests_that_ran_it_and_no_other(
    tmp_path: Path, workers: tuple[str, ...]
) -> None:
    root, data = _project(tmp_path, workers)
    (root / "pkg" / "alpha.py").write_text(
        "def f(x: int) -> int:\n    return 1 + x\n", encoding="utf-8"
    )
    (root / "README.md").write_text("changed too\n", encoding="utf-8")
    out = tmp_path / "selected.txt"
    run = _changed(root, "--data", str(data), "--out", str(out))
    assert run.returncode == 0, run.stderr
    # both parametrizations of test_f, as one selection; test_beta and test_gamma not
    assert out.read_text(encoding="utf-8") == "tests/test_alpha.py::test_f\n"
    assert "pkg/alpha.py: ran by 1 test(s) in the last full runs → tests/test_alpha.py::test_f" in (
        run.stdout
    )
    assert "README.md: no test ran or names it → selects nothing" in run.stdout
    assert "2 file(s) changed against HEAD" in run.stdout
    # the selection as pytest reads it (@FILE): the two test_f cases run, nothing else
    again = _run(root, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", f"@{out}")
    assert again.returncode == 0, again.stdout
    assert "2 passed" in again.stdout
    assert "test_g" not in again.stdout and "test_h" not in again.stdout


@pytest.mark.e2e
def test_changed_test_modules_helpers_and_new_files(tmp_path: Path) -> None:
    root, data = _project(tmp_path)
    (root / "tests" / "test_beta.py").write_text(
        FILES["tests/test_beta.py"] + "\ndef test_more():\n    assert g()\n", encoding="utf-8"
    )
    (root / "pkg" / "delta.py").write_text("z = 0\n", encoding="utf-8")  # untracked
    out = tmp_path / "selected.txt"
    run = _changed(root, "--data", str(data), "--out", str(out))
    assert run.returncode == 0, run.stderr
    # a new module of a measured tree with no mirrored tests/pkg/: the whole suite
    assert out.read_text(encoding="utf-8") == "tests\n"
    assert "tests/test_beta.py: test module changed → all its tests" in run.stdout
    assert "pkg/delta.py: no test ran it in the last full runs → every test under tests/" in (
        run.stdout
    )


@pytest.mark.e2e
def test_nothing_changed_selects_nothing(tmp_path: Path) -> None:
    root, data = _project(tmp_path)
    out = tmp_path / "selected.txt"
    run = _changed(root, "--data", str(data), "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert out.read_text(encoding="utf-8") == ""
    assert "0 file(s) changed against HEAD" in run.stdout


@pytest.mark.e2e
def test_without_a_full_run_or_with_a_bad_ref_it_refuses_in_one_line(tmp_path: Path) -> None:
    root, data = _project(tmp_path)
    out = tmp_path / "selected.txt"
    none = _changed(root, "--data", str(tmp_path / "absent"), "--out", str(out))
    assert none.returncode == 1
    assert none.stderr == (
        "changed: no coverage contexts from a full run; run scripts/gate -s tests e2e first\n"
    )
    bad = _changed(root, "--base", "no-such-ref", "--data", str(data), "--out", str(out))
    assert bad.returncode == 1
    assert bad.stderr.startswith("changed: git diff --name-only: ")
    assert bad.stderr.count("\n") == 1
    assert not out.exists()


def _bare_project(tmp_path: Path) -> tuple[Path, Path]:
    """A committed one-file project and a real (empty) coverage data file, without the
    pytest run: for refusals that must happen before any test data is needed."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text("x = 1\n", encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t", "-c", "commit.gpgsign=false"]
    assert _run(root, "git", "init", "-q").returncode == 0
    assert _run(root, *git, "add", "-A").returncode == 0
    assert _run(root, *git, "commit", "-qm", "base").returncode == 0
    (root / "a.py").write_text("x = 2\n", encoding="utf-8")
    data = CoverageData(basename=str(tmp_path / "full.coverage"))
    data.add_lines({str(root / "a.py"): [1]})
    data.write()
    return root, Path(data.data_filename())


@pytest.mark.parametrize(
    "base",
    ["--output={victim}", "-O{victim}", "HEAD;touch {victim}", "$(touch {victim})"],
    ids=["output-option", "orderfile-option", "semicolon", "command-substitution"],
)
def test_a_ref_that_is_an_option_or_shell_text_is_refused_and_writes_nothing(
    tmp_path: Path, base: str
) -> None:
    # `--changed='--output=/tmp/x'`: passed to git diff as an option, git wrote the diff there
    root, data = _bare_project(tmp_path)
    victim, out = tmp_path / "victim", tmp_path / "selected.txt"
    # as the noxfile passes it: `--base=REF` (argparse would take a separate `-…` for an option)
    run = _changed(
        root, f"--base={base.format(victim=victim)}", "--data", str(data), "--out", str(out)
    )
    assert run.returncode == 1, run.stdout
    assert run.stderr.startswith("changed: git diff --name-only: ")
    assert run.stderr.count("\n") == 1
    assert not victim.exists() and not out.exists()
    assert run.stdout == ""


def test_a_corrupt_coverage_data_file_is_refused_in_one_line(tmp_path: Path) -> None:
    root, _ = _bare_project(tmp_path)
    data, out = tmp_path / "full.coverage", tmp_path / "selected.txt"
    data.write_bytes(b"not a coverage database\n" * 8)
    run = _changed(root, "--data", str(data), "--out", str(out))
    assert run.returncode == 1
    assert run.stderr.startswith(f"changed: {data}: not coverage data from a full run (")
    assert run.stderr.count("\n") == 1
    assert not out.exists()


def test_contexts_naming_no_test_module_of_the_tree_are_not_passed_to_pytest(
    tmp_path: Path,
) -> None:
    # an altered data file: its contexts become pytest arguments (@FILE), so one naming a
    # file outside tests/ (absolute, or up through ..) would make pytest import that file
    root, _ = _bare_project(tmp_path)
    (root / "tests").mkdir()
    (root / "tests" / "test_a.py").write_text("def test_ok():\n    pass\n", encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t", "-c", "commit.gpgsign=false"]
    assert _run(root, *git, "add", "tests").returncode == 0
    assert _run(root, *git, "commit", "-qm", "a test").returncode == 0
    outside = tmp_path / "outside.py"
    outside.write_text("raise SystemExit('imported')\n", encoding="utf-8")
    data = CoverageData(basename=str(tmp_path / "altered.coverage"))
    for context in (
        "tests/test_a.py::test_ok|run",
        f"{outside}::t|run",
        "tests/../../outside.py",
        "tests/test_a.py::test_ok\n-pno:cacheprovider|run",  # a second line in @FILE
    ):
        data.set_context(context)
        data.add_lines({"a.py": [1]})
    data.write()
    out = tmp_path / "selected.txt"
    run = _changed(root, "--data", data.data_filename(), "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert out.read_text(encoding="utf-8") == "tests/test_a.py::test_ok\n"


def test_an_unwritable_selection_file_is_one_line(tmp_path: Path) -> None:
    root, data = _bare_project(tmp_path)
    out = tmp_path / "no-such-dir" / "selected.txt"
    run = _changed(root, "--data", str(data), "--out", str(out))
    assert run.returncode == 1
    assert run.stderr == f"changed: cannot write {out}: No such file or directory\n"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


RECORDED = {"src/app/core/engine.py": {"tests/app/core/test_engine.py::test_run"}}
TREE = {
    "src/app/core/engine.py": "x = 1\n",
    "tests/app/core/test_engine.py": "def test_run():\n    pass\n",
    "tests/app/test_cli.py": "DOC = 'docs/usage.md'\n\ndef test_cli():\n    pass\n",
    "tests/test_policy.py": "POLICY = 'deny.toml'\n\ndef test_policy():\n    pass\n",
}


@pytest.mark.parametrize(
    "name", ["pyproject.toml", "noxfile.py", "toolchain.lock", "locks/runtime.txt", "conftest.py"]
)
def test_a_file_that_configures_every_run_selects_the_whole_suite(
    tmp_path: Path, name: str
) -> None:
    # before: a changed lock or noxfile selected nothing, so a broken pin passed locally
    root = _tree(tmp_path, TREE)
    selected, why = changed.select(root, ["src/app/core/engine.py", name], RECORDED)
    assert selected == ["tests"]
    assert why[-1] == f"{name}: configures every test run → the whole suite"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("src/app/core/new.py", "tests/app/core"),  # the mirrored directory
        ("src/app/plugins/new.py", "tests/app"),  # the nearest existing mirror
        ("src/other/new.py", "tests"),  # no mirror at all: the whole suite
    ],
)
def test_a_new_module_no_test_has_run_selects_its_mirrored_tests(
    tmp_path: Path, name: str, expected: str
) -> None:
    root = _tree(tmp_path, {**TREE, name: "y = 2\n"})
    selected, why = changed.select(root, [name], RECORDED)
    assert selected == [expected]
    assert why == [f"{name}: no test ran it in the last full runs → every test under {expected}/"]


def test_other_files_select_the_test_modules_that_name_them(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**TREE, "docs/usage.md": "hi\n", "deny.toml": "", "NOTES": ""})
    selected, why = changed.select(root, ["NOTES", "deny.toml", "docs/usage.md"], RECORDED)
    assert selected == ["tests/app/test_cli.py", "tests/test_policy.py"]
    assert why == [
        "NOTES: no test ran or names it → selects nothing",
        "deny.toml: named by 1 test module(s) → tests/test_policy.py",
        "docs/usage.md: named by 1 test module(s) → tests/app/test_cli.py",
    ]
    # a Python file outside the measured trees (a script) is found the same way
    root = _tree(tmp_path, {"scripts/tool.py": "", "tests/test_tool.py": "'scripts/tool.py'\n"})
    assert changed.select(root, ["scripts/tool.py"], RECORDED)[0] == ["tests/test_tool.py"]
