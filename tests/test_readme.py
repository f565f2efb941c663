"""Every command in README.md's ```sh blocks, checked as a reader would use it.

The split: the engine's commands (``bot4 …``) run for real, in order, in a scratch copy of
examples/; the gate's commands (``scripts/gate …``) take minutes to hours, so each named
session must be one ``nox -l`` lists and each path after ``--`` must exist (the sessions
themselves are the gate's own tests); the toolkit's any-project commands
(``python -m ci …`` on another project's requirements.txt) must name a real subcommand
whose ``--help`` lists every option used.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def readme_commands() -> list[str]:
    """Each command line of README.md's ```sh blocks, without its trailing comment."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [line for block in BLOCK.findall(text) for line in block.splitlines()]
    return [line.split(" #")[0].strip() for line in lines if line.strip()]


COMMANDS = readme_commands()


def test_every_command_is_of_a_kind_this_module_checks() -> None:
    kinds = ("scripts/gate", "bot4 ", "python -m ci ", "BOT4_FORCE_SCALAR=1 bot4 ")
    assert len(COMMANDS) >= 10
    assert [c for c in COMMANDS if not c.startswith(kinds)] == []


def test_gate_commands_name_sessions_nox_lists_and_paths_that_exist() -> None:
    nox = ROOT / ".venv-gate" / "bin" / "nox"
    assert nox.exists(), "run scripts/gate once: it bootstraps .venv-gate/bin/nox"
    # plain text even under ci.yml's FORCE_COLOR: conftest's _no_forced_colour unsets it
    listed = subprocess.run(
        [str(nox), "-l"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    sessions = set(re.findall(r"^[*-] (\S+) ", listed, re.M))  # selected (*) and skipped (-)
    assert {"tests", "dev", "lint"} <= sessions
    gate = [shlex.split(c) for c in COMMANDS if c.startswith("scripts/gate")]
    assert len(gate) >= 3
    for argv in gate:
        args = argv[1 : argv.index("--")] if "--" in argv else argv[1:]
        named = [a for i, a in enumerate(args) if i and args[i - 1] == "-s"]
        assert set(named) <= sessions, argv
        for path in argv[argv.index("--") + 1 :] if "--" in argv else []:
            if not path.startswith("-"):
                assert (ROOT / path).exists(), f"README names {path}, which does not exist"


def test_toolkit_commands_use_real_subcommands_and_options() -> None:
    toolkit = [shlex.split(c) for c in COMMANDS if c.startswith("python -m ci ")]
    assert len(toolkit) >= 3
    for argv in toolkit:
        sub = argv[3]
        helped = subprocess.run(
            [sys.executable, "-m", "ci", sub, "--help"], cwd=ROOT, capture_output=True,
            text=True, check=False, timeout=60,
        )  # fmt: skip
        assert helped.returncode == 0, helped.stderr
        for option in (a for a in argv[4:] if a.startswith("--")):
            assert option in helped.stdout, f"python -m ci {sub} has no {option}"


@pytest.mark.slow
@pytest.mark.e2e
def test_engine_commands_run_in_order_and_leave_only_what_gitignore_covers(
    tmp_path: Path,
) -> None:
    bot4 = BIN / "bot4"
    assert bot4.exists(), "bot4 is not installed beside this interpreter (install the lock)"
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BOT4_")},
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "BOT4_SECRETS_DIR": str(tmp_path / "secrets"),
    }
    (tmp_path / "secrets").mkdir(mode=0o700)
    engine = [c for c in COMMANDS if c.startswith(("bot4 ", "BOT4_FORCE_SCALAR=1 bot4 "))]
    assert len(engine) >= 6
    for command in engine:
        words = shlex.split(command)
        extra = {}
        while "=" in words[0]:
            key, _, value = words.pop(0).partition("=")
            extra[key] = value
        run = subprocess.run(
            words, cwd=work, env={**env, **extra}, capture_output=True, text=True,
            check=False, timeout=600,
        )  # fmt: skip
        assert run.returncode == 0, f"{command}: {run.stderr[-1500:]}"
    # what the examples leave behind in a clone is ignored by git (`git check-ignore`)
    left = sorted(p.name for p in work.iterdir() if p.name != "examples")
    assert "audit.jsonl" in left
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *left], cwd=ROOT, capture_output=True,
        text=True, check=False,
    ).stdout.split()  # fmt: skip
    assert sorted(ignored) == left, f"README examples leave unignored files: {left}"


@pytest.mark.parametrize(
    "claim",
    [
        "this machine sets them",  # it did not, on every machine
        "hermetic by construction",  # one test calls a real service (see Testing)
        "(PyPI and Debian)",  # no Debian advisory data is committed
    ],
)
def test_claims_found_untrue_are_gone(claim: str) -> None:
    assert claim not in (ROOT / "README.md").read_text(encoding="utf-8")
