"""Every remedy the gate prints is a command that works as printed on a fresh clone.

A fresh clone has ``scripts/gate`` and nothing else: no ``nox`` on PATH, no venv with the
toolkit's dependencies (``python -m ci.image …`` fails there with a traceback). So a printed
remedy names ``scripts/gate -s SESSION`` for a session the noxfile defines; the few other
forms are listed below with why they work where they are printed. The sessions named are
then resolved by ``scripts/gate`` itself, and the cheap remedy (dashboards) is run for real.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from ci.workflows.checks import nox_sessions

ROOT = Path(__file__).resolve().parents[2]
GATE = re.compile(r"scripts/gate -s ([A-Za-z0-9_.-]+)")
BARE_NOX = re.compile(r"(?<![\w/.-])nox (?:-s|-e|--)")
BARE_PYTHON = re.compile(r"\b(?:run|with|then|remedy:?)\s+`?python3? -m ci\b")
# Strings that mention nox but are not printed remedies (none today: the generated-file
# headers and uv's --custom-compile-command name scripts/gate too).
NOT_REMEDIES: set[tuple[str, str]] = set()


def _printed(path: Path) -> list[str]:
    """The string literals of a module, less its docstrings (f-strings by their parts)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in docstrings
    ]


def _sources() -> list[Path]:
    return [ROOT / "noxfile.py", *sorted((ROOT / "ci").rglob("*.py"))]


def test_printed_remedies_use_the_gate_and_name_real_sessions() -> None:
    sessions = nox_sessions(ROOT / "noxfile.py")
    named: set[str] = set()
    wrong: list[str] = []
    for path in _sources():
        rel = str(path.relative_to(ROOT))
        for text in _printed(path):
            if any(
                rel == f and (text == s or s in text)
                for f, s in NOT_REMEDIES
                if len(s) > 12 or text == s
            ):
                continue
            if BARE_NOX.search(text) or BARE_PYTHON.search(text):
                wrong.append(f"{rel}: {text!r}")
            named.update(GATE.findall(text))
    gate_text = (ROOT / "scripts" / "gate").read_text(encoding="utf-8")
    named.update(GATE.findall(gate_text))
    assert not wrong, "remedies a fresh clone cannot run as printed:\n" + "\n".join(wrong)
    assert named - sessions == set(), f"remedies name sessions noxfile.py lacks: {named - sessions}"
    # the ones this change rewrote, so the scan above is known to see f-strings and plain ones
    assert {"lock", "image-lock", "image", "tests", "dashboards", "advisories-update"} <= named


def _gate(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BOT4_GATE_VENV_LOCKS"}
    env["BOT4_SKIP_DEBS"] = "1"
    return subprocess.run(
        [str(cwd / "scripts" / "gate"), *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )


def test_scripts_gate_resolves_every_session_a_remedy_names() -> None:
    named = {name for path in _sources() for text in _printed(path) for name in GATE.findall(text)}
    listed = _gate("-l", "-s", *sorted(named), cwd=ROOT)
    assert listed.returncode == 0, listed.stderr[-2000:]
    selected = {line[2:].split(" ")[0] for line in listed.stdout.splitlines() if line[:2] == "* "}
    assert selected == named


def test_the_dashboards_remedy_fixes_what_ops_reports(tmp_path: Path) -> None:
    """In a copy of the checkout: break a dashboard, run the printed remedy, get it back."""
    clone = tmp_path / "clone"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            (clone / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name.decode())
    board = sorted((clone / "ops" / "dashboards").glob("*.json"))[0]
    good = board.read_bytes()
    doc = json.loads(good)
    doc["title"] = "edited by hand"
    board.write_text(json.dumps(doc), encoding="utf-8")
    from ci.ops import dashboards  # the message the ops session prints

    problems = dashboards.drift(dashboards.DASHBOARDS, board.parent)
    remedy = GATE.search(problems[0])
    assert remedy is not None and remedy[0] == "scripts/gate -s dashboards", problems
    done = _gate("-s", "dashboards", cwd=clone)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert board.read_bytes() == good
    assert dashboards.drift(dashboards.DASHBOARDS, board.parent) == []
