"""ci/pyproject.toml's dependencies are generated from the root's ``toolkit`` group: the
lock session writes them, the toolchain session reports drift with a remedy that works."""

from __future__ import annotations

import ast
import functools
import os
import re
import sys
from collections.abc import Sequence
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ci import cli
from ci.compat import tomllib
from ci.errors import GateError
from ci.gate import lock, toolchain, toolkit_pyproject

REPO = Path(__file__).resolve().parents[3]
HASH = "--hash=sha256:" + "c" * 64
ROOT_PYPROJECT = """
[project]
name = "demo"
version = "0"
dependencies = ["numpy"]
[dependency-groups]
bootstrap = ["nox"]
toolkit = ["packaging>=24", "pyyaml>=6"]
toolchain = ["ruff", {include-group = "toolkit"}]
[tool.bot4.toolchain]
python = "3.11"
platform = "x86_64-unknown-linux-gnu"
"""
CI_PYPROJECT = """[project]
name = "demo-ci"
# a comment the generator keeps
dependencies = [
  "packaging>=24",
]

[project.optional-dependencies]
dependencies = ["not-this-one"]
"""
DRIFT = (
    "ci/pyproject.toml's dependencies differ from pyproject.toml's 'toolkit' dependency"
    " group (generated, not edited) — run scripts/gate -s lock"
)


def fake_uv(argv: Sequence[str], cwd: Path) -> None:
    """Stands in for the network resolution only: writes the lock uv would have written."""
    out = Path(argv[argv.index("-o") + 1])
    pins = {"nox": "1"} if "pyproject.toml:bootstrap" in argv else {"ruff": "1", "numpy": "2"}
    out.write_text("".join(f"{n}=={v} \\\n    {HASH}\n" for n, v in pins.items()))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text(ROOT_PYPROJECT, encoding="utf-8")
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "pyproject.toml").write_text(CI_PYPROJECT, encoding="utf-8")
    # only uv's network resolution is replaced; the lock entry point runs for real
    monkeypatch.setattr(
        toolchain, "compile_locks", functools.partial(toolchain.compile_locks, run=fake_uv)
    )
    return tmp_path


def test_the_committed_file_is_generated() -> None:
    """The repository's ci/pyproject.toml is exactly what the lock session would write."""
    assert toolkit_pyproject.drift(REPO) == []
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    ci_project = tomllib.loads((REPO / "ci" / "pyproject.toml").read_text(encoding="utf-8"))
    assert ci_project["project"]["dependencies"] == pyproject["dependency-groups"]["toolkit"]


def test_render_touches_only_the_project_dependencies() -> None:
    out = toolkit_pyproject.render(CI_PYPROJECT, ["packaging>=24", 'pyyaml>=6; python_version<"4"'])
    assert out == CI_PYPROJECT.replace(
        '  "packaging>=24",\n', '  "packaging>=24",\n  "pyyaml>=6; python_version<\\"4\\"",\n'
    )
    assert tomllib.loads(out)["project"]["dependencies"][1] == 'pyyaml>=6; python_version<"4"'
    one_line = CI_PYPROJECT.replace('[\n  "packaging>=24",\n]', '["x"]')
    assert toolkit_pyproject.render(one_line, ["packaging>=24"]) == CI_PYPROJECT


def test_lock_writes_it_and_toolchain_reports_drift(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (repo / "ci" / "pyproject.toml").read_text(encoding="utf-8")
    uv = os.environ.get("UV", "uv")
    # the remedy, as printed: scripts/gate -s lock runs `python -m ci.gate.lock --uv UV`
    assert lock.main(["--root", str(repo), "--uv", uv]) == 0
    assert "wrote ci/pyproject.toml" in capsys.readouterr().out
    after = (repo / "ci" / "pyproject.toml").read_text(encoding="utf-8")
    assert after == before.replace('"packaging>=24",\n', '"packaging>=24",\n  "pyyaml>=6",\n')
    assert cli.main(["--root", str(repo), "toolchain", "--no-self"]) == 0
    # a hand edit (or a group change without re-locking) is one line with the remedy
    (repo / "ci" / "pyproject.toml").write_text(before, encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["--root", str(repo), "toolchain", "--no-self"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"ci: error: {DRIFT}"]
    assert lock.main(["--root", str(repo), "--uv", uv]) == 0
    assert (repo / "ci" / "pyproject.toml").read_text(encoding="utf-8") == after
    assert cli.main(["--root", str(repo), "toolchain", "--no-self"]) == 0


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ('[{include-group = "lint"}]', "must list requirements only"),
        ('["evil\\"]\\n[tool.x]"]', "'toolkit' group: 'evil\"]\\n[tool.x]'"),
        ('"packaging"', "is not a list"),
    ],
)
def test_a_hostile_group_is_refused_and_nothing_written(
    repo: Path, group: str, message: str
) -> None:
    text = ROOT_PYPROJECT.replace('toolkit = ["packaging>=24", "pyyaml>=6"]', f"toolkit = {group}")
    (repo / "pyproject.toml").write_text(text, encoding="utf-8")
    before = (repo / "ci" / "pyproject.toml").read_bytes()
    with pytest.raises(GateError, match=re.escape(message)) as caught:
        toolkit_pyproject.sync(repo)
    assert "\n" not in str(caught.value)
    assert (repo / "ci" / "pyproject.toml").read_bytes() == before
    assert len(toolkit_pyproject.drift(repo)) == 1


def test_a_file_without_the_array_is_one_line(repo: Path) -> None:
    (repo / "ci" / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    assert toolkit_pyproject.drift(repo) == [
        "ci/pyproject.toml: no [project] dependencies = [...] array to generate"
    ]
    (repo / "ci" / "pyproject.toml").unlink()
    assert toolkit_pyproject.drift(repo) == [
        "ci/pyproject.toml: unreadable (No such file or directory); run scripts/gate -s lock"
    ]


def test_no_group_no_check(repo: Path) -> None:
    text = ROOT_PYPROJECT.replace('toolkit = ["packaging>=24", "pyyaml>=6"]\n', "").replace(
        ', {include-group = "toolkit"}', ""
    )
    (repo / "pyproject.toml").write_text(text, encoding="utf-8")
    assert toolkit_pyproject.drift(repo) == []
    assert toolkit_pyproject.sync(repo) is False


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module → the ci/ files that import it (standard library and ci excluded)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "ci").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "ci":
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


@pytest.mark.e2e
def test_every_third_party_import_of_the_toolkit_is_declared() -> None:
    """What ci/ imports is what ci/pyproject.toml declares: the toolkit group, the
    ``signing`` extra (bot4, in ci/release/bot4_signer.py only) and pytest for the pytest
    plugins in ci/testing (loaded by pytest itself)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {
        canonicalize_name(Requirement(r).name) for r in pyproject["dependency-groups"]["toolkit"]
    }
    imports = _third_party_imports()
    assert imports.pop("bot4") == {"ci/release/bot4_signer.py"}
    assert imports.pop("pytest") == {"ci/testing/skips.py", "ci/testing/bytecode.py"}
    # the changed-only selection reads the gate's coverage data: it runs in the gate's
    # test venv (scripts/gate -s tests -- --changed), never from the toolkit's wheel
    assert imports.pop("coverage") == {"ci/testing/changed.py"}
    # sbom imports lark only to defer rfc3987_syntax's grammar builds (jsonschema's, when
    # installed); without lark it returns and validation goes on without the deferral
    assert imports.pop("lark") == {"ci/supply_chain/sbom.py"}
    providers = packages_distributions()
    undeclared = {
        module: sorted(files)
        for module, files in imports.items()
        if not {canonicalize_name(d) for d in providers.get(module, [])} & declared
    }
    assert undeclared == {}
