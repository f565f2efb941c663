"""Every remedy the gate prints is a command that works as printed on a fresh clone.

A fresh clone has ``scripts/gate`` and nothing else: no ``nox`` on PATH, no venv with the
toolkit's dependencies (``python -m ci.image …`` fails there with a traceback). So a printed
remedy names ``scripts/gate -s SESSION`` for a session the noxfile defines. The static
tests below find every such string and resolve its session through ``scripts/gate``.

The ``remedies``-marked tests (``nox -s remedies``, deselected from ``tests``: they take
minutes and need the package indexes) then *run* them: in a ``git clone`` of this
repository's HEAD under a temp dir, each provokes a failure, captures the remedy the check
prints, runs it exactly as printed (``scripts/gate …`` in the clone, which bootstraps its
own ``.venv-gate``), follows any further remedy the check then prints, and shows the
original check green. ``NOT_RUN`` says why the few remaining remedies are not run.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ci.workflows import vendored
from ci.workflows.checks import nox_sessions

ROOT = Path(__file__).resolve().parents[2]
GATE = re.compile(r"scripts/gate -s ([A-Za-z0-9_.-]+)")
BARE_NOX = re.compile(r"(?<![\w/.-])nox (?:-s|-e|--)")
BARE_PYTHON = re.compile(r"\b(?:run|with|then|remedy:?)\s+`?python3? -m ci\b")
# Strings that mention nox but are not printed remedies (none today: the generated-file
# headers and uv's --custom-compile-command name scripts/gate too).
NOT_REMEDIES: set[tuple[str, str]] = set()


def _constants(tree: ast.Module) -> dict[str, str]:
    """A module's top-level string constants (``REMEDY = "…"``), by name."""
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }  # fmt: skip


def _imported(tree: ast.Module) -> dict[str, Path]:
    """``from ci.x import mod`` and ``import ci.x.mod as mod``: the name → the module's file."""
    out: dict[str, Path] = {}
    for node in ast.walk(tree):
        pairs = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ci"):
            pairs = [(a.asname or a.name, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            pairs = [(a.asname or a.name, a.name) for a in node.names if a.name.startswith("ci.")]
        for name, dotted in pairs:
            path = ROOT.joinpath(*dotted.split(".")).with_suffix(".py")
            if path.is_file():
                out[name] = path
    return out


def _joined(node: ast.JoinedStr, local: dict[str, str], modules: dict[str, Path]) -> str:
    """An f-string as printed, its ``{NAME}`` / ``{module.NAME}`` constants filled in (a
    remedy kept in a constant is printed through one); other values stay ``{…}``."""
    out = []
    for part in node.values:
        if isinstance(part, ast.Constant):
            out.append(str(part.value))
            continue
        value = part.value if isinstance(part, ast.FormattedValue) else part
        text = None
        if isinstance(value, ast.Name):
            text = local.get(value.id)
        elif (
            isinstance(value, ast.Attribute)
            and isinstance(value.value, ast.Name)
            and value.value.id in modules
        ):
            other = ast.parse(modules[value.value.id].read_text(encoding="utf-8"))
            text = _constants(other).get(value.attr)
        out.append("{…}" if text is None else text)
    return "".join(out)


def _printed(path: Path) -> list[str]:
    """The string literals of a module, less its docstrings: f-strings by their parts and
    as a whole, with the module-level constants they print filled in."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    local, modules = _constants(tree), _imported(tree)
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in docstrings
    ] + [
        _joined(node, local, modules) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
    ]


def _sources() -> list[Path]:
    return [ROOT / "noxfile.py", *sorted((ROOT / "ci").rglob("*.py"))]


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_scripts_gate_resolves_every_session_a_remedy_names() -> None:
    named = {name for path in _sources() for text in _printed(path) for name in GATE.findall(text)}
    listed = _gate("-l", "-s", *sorted(named), cwd=ROOT)
    assert listed.returncode == 0, listed.stderr[-2000:]
    selected = {line[2:].split(" ")[0] for line in listed.stdout.splitlines() if line[:2] == "* "}
    assert selected == named


# -- the printed remedies, run as printed in a fresh clone (nox -s remedies) --------------

# A printed gate command: the session, and option-only arguments after `--` (so the
# sentence around it, "… and commit it", is not taken for arguments).
REMEDY = re.compile(r"scripts/gate -s [A-Za-z0-9_.-]+(?: -- -[\w=-]+(?: -[\w=-]+)*)?")
# Provoked, captured and run as printed by a test below.
RUN_BY_A_TEST = {"dashboards", "lock", "image-lock", "image-sbom", "sbom", "vendor"}
# Printed somewhere, but not run here, and why.
NOT_RUN = {
    "tests": "printed when reports/coverage.json is missing; the remedy is the whole test "
    "suite, which these tests belong to (CI runs it first, as its own job)",
    "e2e": "printed by `tests` (its floors wait for e2e's data) and by `coverage` when e2e's "
    "data is missing, measured other sources or was rewritten since its stamp "
    "(test_coverage_data.py checks those refusals); "
    "the remedy is the end-to-end suite, which CI's `tests` job runs after `tests`",
    "image": "printed when the image's download cache lacks a pin (run it first); it is two "
    "full image builds and a smoke run, CI's own `image` job — a test below runs it only if "
    "the cache it finds is cold, by following the printed remedy",
    "refresh": "printed by scan for a pending Debian security update (and by refresh-pr "
    "before a refresh ran). Provoking it needs the Debian archive to be ahead of image.lock, "
    "which a test cannot arrange: a crafted index would fool scan but not image-lock's "
    "resolution from apt's own indexes. The scheduled refresh.yml runs it (and it ran as "
    "printed by hand in a fresh clone on 2026-12-07, with no update pending then)",
    "advisories-update": "needs `-- --from CLONE`, a copy of the PyPA advisory database, and "
    "no copy newer than the committed one is reachable from the gate's machines (only the "
    "PyPI and Debian registries are)",
    "act": "printed only when `python -m ci.workflows act` runs outside the gate without act "
    "beside its interpreter; the remedy is CI's own act run (.ci/run runs it)",
    "workflows": "printed only when `python -m ci.workflows check` runs outside the gate "
    "without actionlint; the remedy is CI's own `workflows` job",
}


@pytest.mark.e2e
def test_every_printed_remedy_is_run_by_a_test_or_says_why_not() -> None:
    named = {name for path in _sources() for text in _printed(path) for name in GATE.findall(text)}
    assert RUN_BY_A_TEST.isdisjoint(NOT_RUN)
    assert named <= RUN_BY_A_TEST | set(NOT_RUN), named - RUN_BY_A_TEST - set(NOT_RUN)
    assert set(NOT_RUN) <= named, "NOT_RUN names a remedy nothing prints any more"


def _env() -> dict[str, str]:
    """This environment less what ties a process to the calling checkout's gate."""
    drop = {"BOT4_GATE_VENV_LOCKS", "VIRTUAL_ENV", "UV", "NOXSESSION", "NOX_CURRENT_SESSION"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    here = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != here)
    return env


def _run(argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), cwd=cwd, env=_env(), capture_output=True, text=True, check=False,
        timeout=1500,
    )  # fmt: skip


def _python(*argv: str) -> list[str]:
    """A toolkit command run with the clone's own code (``-m`` puts the cwd, the clone,
    first on sys.path)."""
    return [sys.executable, "-m", *argv]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of HEAD (committed work only, as a third party has it), shared by the
    tests below: each provokes on top of HEAD and the tree is reset after it (the gate's
    venvs, ignored files, are kept: bootstrapped once)."""
    path = tmp_path_factory.mktemp("fresh") / "bot4"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(path)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return path


@pytest.fixture
def fresh(clone: Path) -> Iterator[Path]:
    yield clone
    subprocess.run(["git", "reset", "--quiet", "--hard", "HEAD"], cwd=clone, check=True)
    subprocess.run(["git", "clean", "-fdq"], cwd=clone, check=True)  # not -x: venvs, cache


def _remedy(output: str) -> str:
    found: list[str] = REMEDY.findall(output)
    assert found, f"the check failed without a scripts/gate remedy:\n{output[-3000:]}"
    return found[-1]


def _apply(remedy: str, clone: Path, ran: list[str], most: int) -> None:
    """Run ``remedy`` exactly as printed, in the clone. If it fails naming another remedy
    (image-sbom on a pin the archive superseded names image-lock), run that one first."""
    assert remedy not in ran and len(ran) < most, f"remedies loop: {ran} then {remedy}"
    done = _run(shlex.split(remedy), clone)
    output = done.stdout + done.stderr
    needs: list[str] = REMEDY.findall(output)
    if done.returncode != 0 and needs and needs[-1] != remedy:
        _apply(needs[-1], clone, ran, most)
        done = _run(shlex.split(remedy), clone)
        output = done.stdout + done.stderr
    assert done.returncode == 0, f"{remedy} failed as printed:\n{output[-4000:]}"
    ran.append(remedy)


def _follow(check: Sequence[str], clone: Path, most: int = 4) -> list[str]:
    """Run the failing ``check``; run the remedy it prints, exactly as printed, in the
    clone; repeat until the check passes. The remedies run, in order."""
    ran: list[str] = []
    result = _run(check, clone)
    assert result.returncode != 0, f"not provoked: {shlex.join(check)} passed"
    while result.returncode != 0:
        _apply(_remedy(result.stdout + result.stderr), clone, ran, most)
        result = _run(check, clone)
    return ran


@pytest.mark.remedies
def test_dashboards_remedy(fresh: Path) -> None:
    board = sorted((fresh / "ops" / "dashboards").glob("*.json"))[0]
    good = board.read_bytes()
    doc = json.loads(good)
    doc["title"] = "edited by hand"
    board.write_text(json.dumps(doc), encoding="utf-8")
    check = _python("ci.ops", "dashboards")  # the drift check the ops session runs
    assert _follow(check, fresh) == ["scripts/gate -s dashboards"]
    assert board.read_bytes() == good


@pytest.mark.remedies
def test_lock_remedy(fresh: Path) -> None:
    """A hand-edited lock (one hash digit) is refused before anything installs; the
    printed re-lock (the package index) writes a lock the gate accepts again."""
    lock = fresh / "locks" / "runtime.txt"
    text = lock.read_text(encoding="utf-8")
    at = text.index("--hash=sha256:") + len("--hash=sha256:")
    lock.write_text(text[:at] + ("1" if text[at] != "1" else "2") + text[at + 1 :])
    gate = _run(["scripts/gate", "-s", "toolchain"], fresh)
    assert gate.returncode == 1 and "gate: refused: locks/runtime.txt" in gate.stderr
    assert _remedy(gate.stderr) == "scripts/gate -s lock"
    check = [sys.executable, "-I", "ci/gate/preinstall.py"]  # the check the gate ran
    assert _follow(check, fresh) == ["scripts/gate -s lock"]
    assert lock.read_text(encoding="utf-8") != text  # rewritten by uv, not restored by git


@pytest.mark.remedies
def test_image_lock_remedy(fresh: Path) -> None:
    """image.toml edited without re-locking: every image session refuses to build; the
    printed remedy re-resolves image.lock from apt's indexes and the package index."""
    spec = fresh / "ci" / "image" / "image.toml"
    spec.write_text(spec.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert _follow(FRESHNESS, fresh) == ["scripts/gate -s image-lock"]
    assert (fresh / "image.lock").read_bytes() != _head(fresh, "image.lock")


# The first check every image build makes (ci.image.build.gather), alone: is image.lock
# still what image.toml and locks/runtime.txt were resolved into?
FRESHNESS = [
    sys.executable,
    "-c",
    "import sys; from pathlib import Path; from ci.image import lock_format as f; "
    "s = f.read_spec(Path(f.SPEC_FILE)); "
    "p = f.check_fresh(f.read_lock(Path(f.LOCK_FILE)), s, Path(s.runtime_lock)); "
    "print(*p, sep='\\n', file=sys.stderr); sys.exit(1 if p else 0)",
]


def _head(clone: Path, path: str) -> bytes:
    return subprocess.run(
        ["git", "show", f"HEAD:{path}"], cwd=clone, capture_output=True, check=True
    ).stdout


@pytest.mark.remedies
def test_image_sbom_remedy(fresh: Path) -> None:
    sbom = fresh / "sbom" / "bot4-image.cdx.json"
    doc = json.loads(sbom.read_text(encoding="utf-8"))
    doc["components"] = doc["components"][1:]  # a component dropped by hand
    sbom.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    check = _python("ci.image", "sbom", "--check")  # what the image session checks
    ran = _follow(check, fresh)
    # A cold download cache prints `image` first; a pin the archive has superseded since
    # (and the cache lacks) makes image-sbom's build name image-lock, run before it.
    assert ran[-1] == "scripts/gate -s image-sbom", ran
    assert set(ran) <= {"scripts/gate -s image", "scripts/gate -s image-lock", ran[-1]}, ran


@pytest.mark.remedies
def test_python_sbom_remedy(fresh: Path) -> None:
    sbom = fresh / "sbom" / "bot4-python.cdx.json"
    doc = json.loads(sbom.read_text(encoding="utf-8"))
    doc["components"] = doc["components"][1:]
    sbom.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    check = ["scripts/gate", "-s", "sbom"]
    assert _follow(check, fresh) == ["scripts/gate -s sbom -- --write"]
    assert sbom.read_bytes() == _head(fresh, "sbom/bot4-python.cdx.json")


def _git(cwd: Path, *argv: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=upstream", "-c", "user.email=upstream@example.invalid",
         "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *argv],
        cwd=cwd, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


@pytest.mark.remedies
def test_vendor_remedy(fresh: Path, tmp_path: Path) -> None:
    """The workflows pin a new release of actions/cache: act refuses the vendored copy and
    prints the vendor remedy. Its placeholders are filled from the real context — CLONE an
    ordinary clone holding the new commit (the vendored files committed on top and tagged,
    since GitHub is out of reach), OWNER/REPO@SHA the new pin, FILE… the files the manifest
    lists — and it runs as printed; then the check passes and records the new commit."""
    entry = vendored.load(fresh / "ci" / "workflows" / "vendored-actions")["actions/cache"]
    upstream = tmp_path / "upstream"
    vendored.unpack(entry, upstream)
    _git(upstream, "init", "-q")
    _git(upstream, "add", "-A")
    _git(upstream, "commit", "-qm", "the next release")
    _git(upstream, "tag", "v5.0.6")
    commit = _git(upstream, "rev-parse", "HEAD")
    _git(tmp_path, "clone", "-q", str(upstream), "cache")
    pin = f"actions/cache@{commit}"
    check = [
        sys.executable, "-c",
        "import sys; from ci.workflows import act, checks\n"
        "try: act.action_for(sys.argv[1])\n"
        "except checks.WorkflowError as exc: sys.exit(str(exc))",
        pin,
    ]  # fmt: skip
    refused = _run(check, fresh)
    assert refused.returncode == 1, refused.stderr
    printed = refused.stderr.strip().rpartition(" with ")[2]
    assert printed == "scripts/gate -s vendor -- --git-dir CLONE OWNER/REPO@SHA FILE…"
    filled = (
        printed.replace("CLONE", str(tmp_path / "cache"))
        .replace("OWNER/REPO@SHA", pin)
        .replace("FILE…", " ".join(sorted(entry.files)))
    )
    done = _run(shlex.split(filled), fresh)
    assert done.returncode == 0, f"{filled} failed:\n{(done.stdout + done.stderr)[-4000:]}"
    assert _run(check, fresh).returncode == 0
    again = vendored.load(fresh / "ci" / "workflows" / "vendored-actions")["actions/cache"]
    assert (again.commit, again.tag, again.files) == (commit, "v5.0.6", entry.files)


def test_the_collector_sees_a_remedy_printed_through_a_constant(tmp_path: Path) -> None:
    """A remedy kept in a constant and printed through an f-string, of this module or of an
    imported one, is seen as printed (the scan would otherwise read only the sentence)."""
    module = tmp_path / "m.py"
    module.write_text(
        "from ci.workflows import vendored\n"
        'FIX = "python -m ci.thing fix"\n'
        "def f(x: str) -> str:\n"
        '    return f"{x} is stale; fix it with {FIX}"\n'
        "def g() -> str:\n"
        '    return f"vendor it with {vendored.REMEDY}"\n',
        encoding="utf-8",
    )
    printed = _printed(module)
    assert "{…} is stale; fix it with python -m ci.thing fix" in printed
    assert f"vendor it with {vendored.REMEDY}" in printed
    assert BARE_PYTHON.search("{…} is stale; fix it with python -m ci.thing fix")


def _fake_gate(tmp_path: Path, body: str) -> Path:
    """A directory whose scripts/gate is ``body`` (a shell script): the harness's own test."""
    (tmp_path / "scripts").mkdir()
    gate = tmp_path / "scripts" / "gate"
    gate.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    gate.chmod(0o755)
    return tmp_path


def _stale_unless(marker: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        f"import os, sys; ok = os.path.exists({marker!r}); "
        "print('stale; run scripts/gate -s fix -- --write and commit it', file=sys.stderr); "
        "sys.exit(0 if ok else 1)",
    ]


def test_the_harness_fails_a_remedy_that_does_not_work_as_printed(tmp_path: Path) -> None:
    clone = _fake_gate(tmp_path, 'echo "nox > Sessions not found: $2" >&2; exit 1')
    with pytest.raises(AssertionError, match="scripts/gate -s fix -- --write failed as printed"):
        _follow(_stale_unless("fixed"), clone)


def test_the_harness_fails_a_remedy_that_leaves_the_check_red(tmp_path: Path) -> None:
    clone = _fake_gate(tmp_path, "exit 0")
    with pytest.raises(AssertionError, match="remedies loop"):
        _follow(_stale_unless("fixed"), clone)


def test_the_harness_runs_the_remedy_with_its_arguments(tmp_path: Path) -> None:
    clone = _fake_gate(tmp_path, '[ "$*" = "-s fix -- --write" ] && touch fixed')
    assert _follow(_stale_unless("fixed"), clone) == ["scripts/gate -s fix -- --write"]
    with pytest.raises(AssertionError, match="not provoked"):
        _follow(_stale_unless("fixed"), clone)
