"""bot4's gate: one short session per concern; `nox -l` lists them, `nox` runs every gate.

Every session installs only from the hash-pinned locks (toolchain.lock → locks/*.txt)
with --require-hashes, and never downloads an interpreter. The work is done by the
tools themselves or by `python -m ci <command>`; nothing here decides a verdict.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import nox
import nox.sessions

nox.needs_version = ">=2025.5.1"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.download_python = "never"
nox.options.error_on_external_run = True
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).parent
PYTHON = "3.11"
TOOLCHAIN_LOCK = "locks/toolchain.txt"
SOURCES = ("src", "ci", "tests", "noxfile.py", "benchmarks")
REPORTS = ROOT / "reports"
# The gate must never fetch interpreters or read a user's uv/pip config.
HERMETIC_ENV = {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
os.environ.update(HERMETIC_ENV)


def _gate_module(name: str) -> ModuleType:
    """A standard-library-only ci/gate module, loaded by path into the runner process.

    By path, not `import ci…`: nothing the runner imports may come from the locks it
    is about to judge, and the runner's venv holds only nox and uv.
    """
    path = ROOT / "ci" / "gate" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bot4_gate_{name}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"gate: error: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


PREINSTALL = _gate_module("preinstall")
VENVCHECK = _gate_module("venvcheck")
PYTHONS = _gate_module("pythons")
# Sessions that install nothing from the locks (`lock` rewrites them from pyproject.toml):
# asked for alone, or with only a listing, they run even when a lock is refused.
NO_INSTALL = frozenset({"lock"})
_LISTING = frozenset({"-l", "--list", "--list-sessions", "--json", "-h", "--help", "--version"})


def _installs_nothing(argv: list[str]) -> bool:
    """Whether nox was asked only to list sessions or run sessions in NO_INSTALL."""
    args = argv[: argv.index("--")] if "--" in argv else argv
    if any(a in _LISTING for a in args):
        return True
    chosen: list[str] = []
    for i, arg in enumerate(args):
        if arg in {"-s", "-e", "--session", "--sessions"}:
            for value in args[i + 1 :]:
                if value.startswith("-"):
                    break
                chosen.append(value)
        elif arg.startswith(("--session=", "--sessions=")):
            chosen += arg.split("=", 1)[1].split(",")
    return bool(chosen) and set(chosen) <= NO_INSTALL and "NOXSESSION" not in os.environ


def refused_locks() -> list[str]:
    """Every problem the pre-install verifier finds in the locks, as printable lines."""
    return [f"gate: refused: {problem}" for problem in PREINSTALL.verify(ROOT)]


# Verify before trust, in the runner and before nox creates or reuses any venv.
if not _installs_nothing(sys.argv[1:]) and (_REFUSED := refused_locks()):
    print("\n".join(_REFUSED), file=sys.stderr)
    raise SystemExit(1)


HELD = "BOT4_GATE_VENV_LOCKS"  # the venv locks this process tree holds


@contextlib.contextmanager
def venv_lock(envdir: Path) -> Iterator[None]:
    """Hold ``flock`` on ``<venv>.lock`` beside the venv while a session creates, fills
    and uses it: a second run of the same session in this clone waits (saying so in one
    line) instead of rebuilding the venv under the first. The kernel drops the lock when
    its holder dies, kill -9 included. A nox started by the holding session itself (a
    test of the gate) runs under its parent's lock instead of waiting for it forever."""
    envdir.parent.mkdir(parents=True, exist_ok=True)
    lock = (envdir.parent / f"{envdir.name}.lock").resolve()
    held = [p for p in os.environ.get(HELD, "").split(os.pathsep) if p]
    if str(lock) in held:
        yield
        return
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"gate: waiting for another run using {envdir} (it holds {lock})",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(handle, fcntl.LOCK_EX)
        os.environ[HELD] = os.pathsep.join([*held, str(lock)])
        try:
            yield
        finally:
            os.environ[HELD] = os.pathsep.join(held)


_execute = nox.sessions.SessionRunner.execute


def _execute_locked(runner: nox.sessions.SessionRunner) -> nox.sessions.Result:
    """Every session, venv creation included, under its venv's lock."""
    with venv_lock(Path(runner.envdir)):
        return _execute(runner)


nox.sessions.SessionRunner.execute = _execute_locked  # type: ignore[method-assign]


def interpreter_of(venv: Path) -> str:
    """'CPython 3.11.7 (/usr/bin/python3.11)': the interpreter a session venv runs on."""
    cfg = {}
    for line in (venv / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            cfg[key.strip()] = value.strip()
    version = cfg.get("version_info") or cfg.get("version") or "unknown version"
    base = cfg.get("executable") or cfg.get("home", "unknown location")
    return f"CPython {version} ({base})"


def install_locked(session: nox.Session) -> None:
    """The locked toolchain (hashes required, wheels only), then bot4 and ci editable.

    The locks are verified again first (a `lock` session earlier in the same run may
    have rewritten them). Wheels only: a wrong hash is a refusal, never an sdist build.
    The editables are built by hatchling from the lock, without an index.
    """
    problems = refused_locks()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        session.error("the locks were refused before installing (see above)")
    venv = Path(session.virtualenv.location)
    session.log(f"interpreter: {interpreter_of(venv)}")
    pins = PREINSTALL.lock_pins(ROOT / TOOLCHAIN_LOCK)
    state = venv.parent / ".bot4-verified" / f"{venv.name}.json"
    inputs = PREINSTALL.files_digest(ROOT, [TOOLCHAIN_LOCK, "pyproject.toml", "ci/pyproject.toml"])
    dirty, complete = VENVCHECK.check(venv, pins, state, inputs)
    if dirty:  # a reused venv that is not what the lock installs: never run anything in it
        more = f" (and {len(dirty) - 1} more)" if len(dirty) > 1 else ""
        session.warn(f"rebuilding {venv.name} from the lock: {dirty[0]}{more}")
        shutil.rmtree(venv)
        state.unlink(missing_ok=True)
        session.virtualenv.reuse_existing = False  # type: ignore[attr-defined]
        session.virtualenv.create()
    if complete:  # verified file by file against the lock it was installed from
        return
    session.install("--require-hashes", "--only-binary", ":all:", "-r", TOOLCHAIN_LOCK)
    session.install("--no-deps", "--no-build-isolation", "--no-index", "-e", ".", "-e", "./ci")
    left = VENVCHECK.record(venv, pins, state, inputs)
    if left:
        session.error(f"{venv.name} differs from the lock after installing: {left[0]}")


def bot4_inputs() -> list[str]:
    """bot4's own inputs to the supply-chain commands: its policy and every lock
    toolchain.lock lists (the toolkit itself assumes neither)."""
    data = tomllib.loads((ROOT / "toolchain.lock").read_text(encoding="utf-8"))
    paths = [str(entry["path"]) for entry in data["locks"].values()]
    return ["--policy", "ci/policy.toml", *(arg for path in paths for arg in ("--lock", path))]


def pinned_uv() -> dict[str, str]:
    """$UV for tools that drive uv themselves: the pinned uv nox runs with."""
    return {"UV": str(Path(sys.executable).parent / "uv")}


@nox.session(python=PYTHON, tags=["gate"])
def toolchain(session: nox.Session) -> None:
    """Check the interpreter, the lock files and every installed tool against toolchain.lock."""
    install_locked(session)
    venvs = []
    if sys.prefix != sys.base_prefix:  # nox itself runs from a venv: check nox and uv too
        venvs += ["--venv", f"runner={sys.prefix}"]
    for cfg in sorted((ROOT / ".nox").glob("*/pyvenv.cfg")):
        if cfg.parent.resolve() != Path(session.virtualenv.location).resolve():
            venvs += ["--venv", f"session={cfg.parent.relative_to(ROOT)}"]
    session.run("python", "-m", "ci", "toolchain", *venvs)


@nox.session(python=PYTHON, tags=["gate"])
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the Python trees; hadolint over the Dockerfile."""
    install_locked(session)
    paths = [p for p in SOURCES if (ROOT / p).exists()]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("hadolint", "Dockerfile")


@nox.session(python=PYTHON, tags=["gate"])
def types(session: nox.Session) -> None:
    """mypy --strict over src/bot4, ci and tests."""
    install_locked(session)
    session.run("mypy")


@nox.session(python=PYTHON, tags=["gate"])
def security(session: nox.Session) -> None:
    """bandit (once; JSON kept in reports/), IP-literal and secret scan: all run, all reported."""
    install_locked(session)
    session.run("python", "-m", "ci.gate.security")


# Coverage data of the two measured runs (`tests`, `e2e`), combined by `coverage`.
COVERAGE_DATA = REPORTS / "coverage-data"
CHANGED = "--changed"


# Bytecode kept in the session's venv despite PYTHONDONTWRITEBYTECODE (ci.testing.bytecode).
BYTECODE = ["-p", "ci.testing.bytecode"]


def _test_workers() -> list[str]:
    """pytest-xdist arguments: one worker per core unless BOT4_TEST_WORKERS says (0: serial)."""
    workers = os.environ.get("BOT4_TEST_WORKERS", "auto")
    return ["-n", workers, "--dist", "loadgroup"] if workers != "0" else []


def _measured_run(
    session: nox.Session, name: str, args: list[str], env: dict[str, str], *, full: bool = True
) -> None:
    """pytest under coverage with each line's tests recorded (--cov-context=test, what
    `tests -- --changed` selects by), into reports/coverage-data/NAME, stamped with the
    sources it measured (`coverage` refuses data measured on other sources)."""
    COVERAGE_DATA.mkdir(parents=True, exist_ok=True)
    data = COVERAGE_DATA / name
    # the stamp vouches for a finished full run: gone until this run earns it again
    data.with_name(data.name + ".sources").unlink(missing_ok=True)
    session.run("coverage", "erase", f"--data-file={data}")
    session.run(
        "pytest", "--cov", "--cov-report=", "--cov-context=test", *BYTECODE, *_test_workers(),
        *args,
        env={**pinned_uv(), **env, "COVERAGE_FILE": str(data)},
    )  # fmt: skip
    if not full:
        session.log(
            f"{name}: a run with pytest arguments measured only part of the suite; its data is "
            f"not stamped, so `coverage` refuses it until a full `scripts/gate -s {name}`"
        )
        return
    session.run("python", "-m", "ci.gate.coverage_data", "stamp", str(data))


@nox.session(python=PYTHON, tags=["gate"])
def tests(session: nox.Session) -> None:
    """pytest under branch coverage over src/bot4 and ci, without the slow `e2e` tests.

    The full run is parallel (pytest-xdist, one worker per core; BOT4_TEST_WORKERS=N or 0
    overrides), its data in reports/coverage-data/tests; the floors are applied by
    `coverage` to it combined with `e2e`'s. With pytest arguments (`-- tests/bot4/test_cli.py`,
    `-- -k audit`) it is a subset run: serial unless `-n` is given, coverage goes to
    reports/subset/, the floors are not applied, the full report stays. `-- --changed[=REF]`
    is the subset of tests that ran the files changed against REF (default HEAD),
    by the last full runs' coverage contexts.
    """
    install_locked(session)
    REPORTS.mkdir(exist_ok=True)
    if not session.posargs:
        _measured_run(session, "tests", [], {})
        session.log(
            "coverage floors not applied yet: `scripts/gate -s e2e coverage` runs the e2e "
            "tests and applies them to both runs combined"
        )
        return
    subset = REPORTS / "subset"
    data = subset / ".coverage"
    subset.mkdir(exist_ok=True)
    args, env = list(session.posargs), {**pinned_uv(), "COVERAGE_FILE": str(data)}
    changed = [a for a in args if a == CHANGED or a.startswith(CHANGED + "=")]
    if changed:
        selected = subset / "changed.txt"
        base = changed[-1].partition("=")[2] or "HEAD"
        session.run(
            "python", "-m", "ci.testing.changed", f"--base={base}", "--out", str(selected),
            "--data", str(COVERAGE_DATA / "tests"), "--data", str(COVERAGE_DATA / "e2e"),
        )  # fmt: skip
        if not selected.read_text(encoding="utf-8").strip():
            session.log("changed-only run: no test is affected; nothing to run")
            return
        args = [a for a in args if a not in changed] + [f"@{selected}"]
        env["BOT4_E2E"] = "1"  # an affected e2e test runs too
    session.run("coverage", "erase", f"--data-file={data}")
    session.run("pytest", "--cov", "--cov-report=", *BYTECODE, *args, env=env)
    session.run(
        "coverage", "html", "-q", f"--data-file={data}", "-d", str(subset / "coverage-html")
    )
    session.log(
        "subset run: coverage floors not applied; its report is "
        f"{subset / 'coverage-html' / 'index.html'} (the last full run's report is kept)"
    )


@nox.session(python=PYTHON, tags=["gate"])
def e2e(session: nox.Session) -> None:
    """The slow tests `tests` leaves out (marked `e2e`: fresh venvs, image builds, runc, the
    registry, real daemons, CLIs run as subprocesses, whole-repository scans, the CPU-heavy
    property tests at full strength), measured for `coverage`. With pytest arguments it
    measures a part only: that data is not stamped, so `coverage` refuses it (a part would
    pass for the whole)."""
    install_locked(session)
    _measured_run(
        session, "e2e", ["-m", "e2e", *session.posargs], {"BOT4_E2E": "1"},
        full=not session.posargs,
    )  # fmt: skip


@nox.session(python=PYTHON, tags=["gate"])
def coverage(session: nox.Session) -> None:
    """The per-package coverage gate over `tests` and `e2e` combined (each refused unless
    it measured these sources); the JSON, XML and HTML reports of the combination."""
    install_locked(session)
    parts = [(COVERAGE_DATA / "tests", "tests"), (COVERAGE_DATA / "e2e", "e2e")]
    session.run("python", "-m", "ci.gate.coverage_data", "check", *(f"{d}={s}" for d, s in parts))
    session.run("coverage", "erase")
    session.run("coverage", "combine", "-q", "--keep", *(str(d) for d, _ in parts))
    session.run("coverage", "json", "-q")
    session.run("coverage", "xml", "-q")
    session.run("coverage", "html", "-q")
    gate = (
        ["--diff", os.environ["BOT4_COVERAGE_DIFF_BASE"]]
        if "BOT4_COVERAGE_DIFF_BASE" in os.environ
        else []
    )
    session.run("python", "-m", "ci", "coverage-gate", *gate)
    session.log(f"coverage report: {REPORTS / 'coverage-html' / 'index.html'}")


# The Pythons the toolkit supports (ci/pyproject.toml requires-python), each tested alone.
TOOLKIT_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
TOOLKIT_LOCK = "locks/toolkit.txt"
# The toolkit's own tests, without bot4's conftest (engine fixtures: moto, SoftHSM) and
# without the one test of bot4's repository policy over bot4's gate venv (numpy & co.).
# All of them on the oldest and the newest Python; on those between (3.11 also runs them
# all in `tests`), the real-project suite and the any-project commands (README's three).
TOOLKIT_TESTS = (
    "-p", "ci.testing.skips", "--confcutdir", "tests/ci", "-q", "-p", "no:cacheprovider",
)  # fmt: skip
TOOLKIT_TESTS_ALL = (
    "tests/ci/supply_chain", "tests/ci/test_cli_inputs.py",
    "--deselect",
    "tests/ci/supply_chain/test_licenses.py::test_repository_policy_passes_this_environment",
)  # fmt: skip
TOOLKIT_TESTS_CORE = ("tests/ci/supply_chain/test_corpus.py", "tests/ci/test_cli_inputs.py")
FROM_WHEEL = (
    "import ci, pathlib, sys; here = pathlib.Path(ci.__file__).resolve(); "
    "venv = pathlib.Path(sys.argv[1]).resolve(); "
    "sys.exit(0 if venv in here.parents else f'ci imported from {here}, not the wheel')"
)


@nox.session(name="toolkit-pythons", python=PYTHON, tags=["gate"])
def toolkit_pythons(session: nox.Session) -> None:
    """The toolkit alone on each Python it supports (3.10–3.13): ci/ built as a wheel,
    installed with hashes from locks/toolkit.txt into a fresh venv per interpreter; there,
    its supply-chain tests (all on 3.10 and 3.13; the real-project suite and the README's
    three commands on each). A missing interpreter fails unless declared:
    BOT4_ABSENT=python3.10 (comma-separated)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    absent = PYTHONS.absent_words(os.environ.get("BOT4_ABSENT", ""))
    found, declared, failure = PYTHONS.resolve(
        TOOLKIT_PYTHONS, os.environ.get("PATH", ""), pyenv_root, absent
    )
    if failure:  # before any work: a missing interpreter is never a silent skip
        session.error(failure)
    for version in declared:
        session.warn(f"Python {version} not tested: declared absent (BOT4_ABSENT)")
    install_locked(session)  # hatchling: the wheel is built without an index
    uv = str(Path(sys.executable).parent / "uv")
    work = Path(session.create_tmp()).resolve() / "toolkit-pythons"
    shutil.rmtree(work, ignore_errors=True)
    session.run(
        uv, "build", "--quiet", "--wheel", "--no-build-isolation", "--python",
        str(Path(session.bin) / "python"), "--out-dir", str(work / "dist"), "ci", external=True,
    )  # fmt: skip
    (wheel,) = (work / "dist").glob("*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    requirement = work / "bot4-ci.txt"
    requirement.write_text(f"bot4-ci @ {wheel.as_uri()} --hash=sha256:{digest}\n", encoding="utf-8")
    for version, python in found.items():
        venv = work / f"py{version}"
        vpython = str(venv / "bin" / "python")
        session.log(f"Python {version}: {python}")
        session.run(uv, "venv", "--quiet", "--python", python, str(venv), external=True)
        session.run(
            uv, "pip", "install", "--quiet", "--python", vpython, "--require-hashes",
            "--only-binary", ":all:", "-r", TOOLKIT_LOCK, "-r", str(requirement), external=True,
        )  # fmt: skip
        session.run(vpython, "-I", "-c", FROM_WHEEL, str(venv), external=True)
        edge = version in {TOOLKIT_PYTHONS[0], TOOLKIT_PYTHONS[-1]}
        chosen = TOOLKIT_TESTS_ALL if edge else TOOLKIT_TESTS_CORE
        pytest = str(venv / "bin" / "pytest")
        basetemp = f"--basetemp={work / f'tmp{version}'}"  # its own, not the user's shared one
        # BOT4_E2E=1: the chosen files' slow tests (real venvs, pip-audit, the CLIs) are
        # marked e2e for `tests`' sake; here every one of them runs
        env = {**pinned_uv(), "BOT4_E2E": "1"}
        session.run(pytest, *TOOLKIT_TESTS, basetemp, *chosen, env=env, external=True)


@nox.session(python=False, default=False, tags=["maintenance"])
def dev(session: nox.Session) -> None:
    """A developer venv (.venv) from the locks: the pinned toolchain, bot4 and ci editable."""
    uv = str(Path(sys.executable).parent / "uv")
    venv = ROOT / ".venv"
    session.run(uv, "venv", "--quiet", "--allow-existing", "--python", PYTHON, str(venv))
    python = ["--python", str(venv / "bin" / "python")]
    session.run(uv, "pip", "install", *python, "--require-hashes", "-r", TOOLCHAIN_LOCK)
    session.run(
        uv, "pip", "install", *python, "--no-deps", "--no-build-isolation", "-e", ".", "-e", "./ci"
    )
    session.log(f"ready: {venv}/bin/bot4, {venv}/bin/pytest (or: source .venv/bin/activate)")


@nox.session(python=False, default=False, tags=["maintenance"])
def lock(session: nox.Session) -> None:
    """Regenerate locks/*.txt (uv pip compile --generate-hashes) and toolchain.lock."""
    uv = Path(sys.executable).parent / "uv"
    # ci.gate.lock, not `ci lock`: the runner has no PyYAML & co. for the rest of ci.cli.
    session.run(sys.executable, "-m", "ci.gate.lock", "--uv", str(uv), *session.posargs)


@nox.session(python=PYTHON, default=False, tags=["bench"])
def bench(session: nox.Session) -> None:
    """Like-for-like rows vs in-run peers (benchmarks/suite.py) → reports/bench.json; fails
    when a ratio drops below benchmarks/floors.toml. `-- --quick` for a short run."""
    install_locked(session)
    session.run("python", "benchmarks/suite.py", *session.posargs, env=pinned_uv())


@nox.session(python=PYTHON, tags=["gate"])
def audit(session: nox.Session) -> None:
    """Audit every locked pin: PyPA advisory snapshot, strict pip-audit, yanked = deny; and
    the installer packages of the venvs the gate runs in: the runner (.venv-gate, whose
    pip is locked and whose seed setuptools scripts/gate removes) and this session's own
    (uv-made, like every session venv: no seed packages)."""
    install_locked(session)
    venvs = [str(Path(sys.prefix)), str(session.virtualenv.location)]
    session.run(
        "python", "-m", "ci", "audit", *bot4_inputs(),
        *(arg for venv in venvs for arg in ("--venv", venv)), *session.posargs,
    )  # fmt: skip


@nox.session(python=PYTHON, tags=["gate"])
def licenses(session: nox.Session) -> None:
    """Licence policy over this venv (installed from the lock) and source policy over the locks."""
    install_locked(session)
    session.run(
        "python", "-m", "ci", "licenses", *bot4_inputs(), "--runtime-lock", "locks/runtime.txt",
        *session.posargs,
    )  # fmt: skip


SBOM_WRITE = "scripts/gate -s sbom -- --write"


@nox.session(python=PYTHON, tags=["gate"])
def sbom(session: nox.Session) -> None:
    """CycloneDX SBOM of locks/runtime.txt; fails when sbom/ is stale (`-- --write` updates it)."""
    install_locked(session)
    # A fresh clone has no venv with ci's dependencies: the remedy is this session's own.
    mode = [] if "--write" in session.posargs else ["--check", "--remedy", SBOM_WRITE]
    args = [a for a in session.posargs if a != "--write"]
    inputs = ["--lock", "locks/runtime.txt", "--pyproject", "pyproject.toml"]
    output = ["--output", "sbom/bot4-python.cdx.json"]
    session.run("python", "-m", "ci", "sbom", *inputs, *output, *mode, *args, env=pinned_uv())


@nox.session(name="advisories-update", python=PYTHON, default=False, tags=["maintenance"])
def advisories_update(session: nox.Session) -> None:
    """Rebuild ci/advisories/ from a copy of the PyPA advisory database (`-- --from PATH`)."""
    install_locked(session)
    session.run("python", "-m", "ci", "advisories-update", *session.posargs)


@nox.session(python=PYTHON, tags=["gate"])
def ops(session: nox.Session) -> None:
    """promtool/amtool checks and rule unit tests, dashboard drift, runbooks, live Prometheus."""
    install_locked(session)
    session.run("python", "-m", "ci.ops", "check")
    # BOT4_E2E=1: the live Prometheus and `python -m ci.ops` tests are marked e2e (for
    # `tests`' sake); this session runs every test of tests/ci/ops
    session.run(
        "pytest", "tests/ci/ops", "-q", "-p", "no:cacheprovider", *session.posargs,
        env={"BOT4_E2E": "1"},
    )  # fmt: skip


@nox.session(python=PYTHON, default=False, tags=["maintenance"])
def dashboards(session: nox.Session) -> None:
    """Rewrite ops/dashboards/*.json from ci/ops/dashboards.py (the remedy `ops` prints)."""
    install_locked(session)
    session.run("python", "-m", "ci.ops", "dashboards", "--write")


@nox.session(python=PYTHON, tags=["gate"])
def workflows(session: nox.Session) -> None:
    """zizmor --offline, actionlint and the project check over .github/workflows."""
    install_locked(session)
    session.run("python", "-m", "ci.workflows", "check", *session.posargs)


@nox.session(python=PYTHON, default=False, tags=["maintenance"])
def vendor(session: nox.Session) -> None:
    """Vendor a pinned action's files for act (-- --git-dir CLONE OWNER/REPO@SHA FILE…)."""
    install_locked(session)
    session.run("python", "-m", "ci.workflows", "vendor", *session.posargs)


@nox.session(python=PYTHON, default=False, tags=["runners"])
def act(session: nox.Session) -> None:
    """The workflows' jobs run under act (host mode, non-root runner user, local action copies)."""
    install_locked(session)
    session.run("python", "-m", "ci.workflows", "act", *session.posargs)


@nox.session(python=PYTHON, default=False, tags=["drills"])
def chaos(session: nox.Session) -> None:
    """Chaos drills on simulated time (-- partition|component-failure|load-spike; default all)."""
    install_locked(session)
    drills = session.posargs or ["all"]
    session.run("bot4", "chaos", *drills, "--report-dir", "artifacts/chaos")


PROFILE_TARGETS: dict[str, tuple[str, ...]] = {
    "simulator": ("benchmarks/simulator/bench_matching.py",),
    "risk-batch": ("benchmarks/risk/bench_risk.py",),
    # the loop as users run it: gate on, signed audit log, the engine's fsync policy
    "engine-loop": ("benchmarks/trading_engine/bench_engine.py", "--gate", "--audit"),
}


@nox.session(python=PYTHON, default=False, tags=["bench"])
def profile(session: nox.Session) -> None:
    """py-spy flamegraphs (SVG + speedscope) of the simulator, risk batch path and engine loop."""
    install_locked(session)
    out = ROOT / "artifacts" / "flamegraphs"
    out.mkdir(parents=True, exist_ok=True)
    for name, (script, *args) in PROFILE_TARGETS.items():
        for fmt, suffix in (("flamegraph", "svg"), ("speedscope", "speedscope.json")):
            target = out / f"{name}.{suffix}"
            session.run(
                "py-spy",
                "record",
                "--format",
                fmt,
                "--rate",
                "250",
                "-o",
                str(target),
                "--",
                "python",
                script,
                "--quick",
                *args,
            )


GATE_PIP = str(
    Path(sys.executable).parent / "pip"
)  # the runner's pip reads the machine's pip config
IMAGE_OUT = "build/image"


def ensure_image(session: nox.Session) -> None:
    """Build the image into build/image unless it is complete and its marker names this
    commit, these locks and this toolkit (a killed or stale build is rebuilt)."""
    session.run(
        "python", "-m", "ci.image", "--pip", GATE_PIP, "build", "--out", IMAGE_OUT, "--reuse"
    )


@nox.session(name="image-lock", python=PYTHON, default=False, tags=["image"])
def image_lock(session: nox.Session) -> None:
    """Resolve ci/image/image.toml into image.lock (apt indexes + the package index)."""
    install_locked(session)
    if os.geteuid() == 0:
        session.run("apt-get", "update", "-qq", external=True)
    session.run("python", "-m", "ci.image", "--pip", GATE_PIP, "lock")


@nox.session(python=PYTHON, tags=["image"])
def image(session: nox.Session) -> None:
    """Build in two clones (path/remote/umask/TZ/locale/host/user differ): one digest; smoke.

    ``-- --digest sha256:…`` (release.yml's `rebuild`): build once in a fresh clone and fail
    unless it gives that digest (`reproduce --digest`); the first build smoke-ran it."""
    if session.posargs and (len(session.posargs) != 2 or session.posargs[0] != "--digest"):
        session.error(f"image takes no arguments or --digest sha256:…, not {session.posargs}")
    install_locked(session)
    refresh = ["--refresh-superseded"] if os.environ.get("CI") else []
    if session.posargs:
        session.run(
            "python", "-m", "ci.image", "--pip", GATE_PIP, *refresh, "reproduce", *session.posargs
        )
        session.run("python", "-m", "ci.image", "sbom", "--check")
        return
    session.run(
        "python", "-m", "ci.image", "--pip", GATE_PIP, *refresh, "reproduce", "--out", IMAGE_OUT
    )
    session.run("python", "-m", "ci.image", "sbom", "--check")
    if os.geteuid() == 0 and shutil.which("runc"):
        session.run(
            "python",
            "-m",
            "ci.image",
            "smoke",
            "--layout",
            f"{IMAGE_OUT}/oci",
            "--bind",
            "examples:/examples",
            "--run",
            "simulate --orders 200 /examples/basic.toml",
        )
    elif "runc" in os.environ.get("BOT4_ABSENT", "").split(","):
        session.warn("smoke run not done: runc declared absent (BOT4_ABSENT=runc)")
    else:
        session.error(
            "the smoke run needs root and runc (apt-get install runc), "
            "or declare the absence with BOT4_ABSENT=runc"
        )
    session.run("python", "-c", f"print(open('{IMAGE_OUT}/digest').read().strip())")


@nox.session(name="image-sbom", python=PYTHON, default=False, tags=["maintenance"])
def image_sbom(session: nox.Session) -> None:
    """Rewrite sbom/bot4-image.cdx.json from the built image (the remedy `image` prints)."""
    install_locked(session)
    ensure_image(session)
    session.run("python", "-m", "ci.image", "sbom")


@nox.session(python=PYTHON, default=False, tags=["maintenance"])
def refresh(session: nox.Session) -> None:
    """Re-lock image.lock, rebuild, rewrite the SBOMs, scan before and after: the patch and
    the pull-request body (lock diff + scan delta) in reports/refresh/ (scheduled workflow)."""
    install_locked(session)
    out = REPORTS / "refresh"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    scan = ["python", "-m", "ci.image", "scan", "--layout", f"{IMAGE_OUT}/oci", "--json"]
    ensure_image(session)
    session.run(*scan, str(out / "scan-before.json"), success_codes=[0, 1])
    shutil.copy2(ROOT / "image.lock", out / "image.lock.before")
    if os.geteuid() == 0:
        session.run("apt-get", "update", "-qq", external=True)
    session.run("python", "-m", "ci.image", "--pip", GATE_PIP, "lock")
    ensure_image(session)
    session.run("python", "-m", "ci.image", "sbom")
    runtime = ["--lock", "locks/runtime.txt", "--pyproject", "pyproject.toml"]
    session.run(
        "python", "-m", "ci", "sbom", *runtime, "--output", "sbom/bot4-python.cdx.json",
        env=pinned_uv(),
    )  # fmt: skip
    session.run(*scan, str(out / "scan-after.json"), success_codes=[0, 1])
    session.run(
        "python", "-m", "ci.image", "refresh-report", "--old-lock", str(out / "image.lock.before"),
        "--before", str(out / "scan-before.json"), "--after", str(out / "scan-after.json"),
        "--out", str(out / "pr.md"),
    )  # fmt: skip
    session.run(
        "git", "diff", "--binary", f"--output={out / 'changes.patch'}", "--",
        "image.lock", "sbom", external=True,
    )  # fmt: skip


@nox.session(name="refresh-pr", python=PYTHON, default=False, tags=["maintenance"])
def refresh_pr(session: nox.Session) -> None:
    """Open the refresh's pull request from reports/refresh/ (git + gh: on GitHub only)."""
    install_locked(session)
    session.run("python", "-m", "ci.image", "refresh-pr", "--dir", "reports/refresh")


@nox.session(name="image-tests", python=PYTHON, tags=["image"])
def image_tests(session: nox.Session) -> None:
    """Run tests/bot4 with the image's own interpreter and libraries (runc, no network)."""
    install_locked(session)
    ensure_image(session)
    session.run(
        "python",
        "-m",
        "ci.image",
        "--pip",
        GATE_PIP,
        "test",
        "--layout",
        f"{IMAGE_OUT}/oci",
        *(["--", *session.posargs] if session.posargs else []),
    )


@nox.session(python=PYTHON, tags=["image"])
def scan(session: nox.Session) -> None:
    """Scan the image: its wheels against the PyPA OSV snapshot (no Debian advisory data is
    committed, so its .debs are checked only for pending security updates), hygiene."""
    install_locked(session)
    REPORTS.mkdir(exist_ok=True)
    session.run(
        "python",
        "-m",
        "ci.image",
        "scan",
        "--layout",
        f"{IMAGE_OUT}/oci",
        "--json",
        "reports/image-scan.json",
        "--sarif",
        "reports/image-scan.sarif",
    )


@nox.session(name="deploy-check", python=PYTHON, tags=["image"])
def deploy_check(session: nox.Session) -> None:
    """Push, sign, attest, refuse, verify and run the built image against a throwaway registry."""
    install_locked(session)
    ensure_image(session)
    session.run(
        "python",
        "-m",
        "ci.release",
        "deploy-check",
        "--layout",
        f"{IMAGE_OUT}/oci",
        *session.posargs,
    )


@nox.session(name="host-check", python=PYTHON, tags=["image"])
def host_check(session: nox.Session) -> None:
    """Podman enforcing policy.json (GPG signedBy) and Docker (verify, pull by digest) run the
    built image hardened; unsigned, wrong-key and tampered images refused (needs root)."""
    install_locked(session)
    ensure_image(session)
    session.run(
        "python", "-m", "ci.release", "host-check", "--layout", f"{IMAGE_OUT}/oci", *session.posargs
    )


@nox.session(python=PYTHON, tags=["image"])
def dockerfile(session: nox.Session) -> None:
    """Build the Dockerfile on a private dockerd on our own base; compare with the image."""
    install_locked(session)
    ensure_image(session)
    # The check itself is the test marked `dockerfile` (deselected from `tests`).
    session.run(
        "pytest",
        "-m",
        "dockerfile",
        "-p",
        "no:cacheprovider",
        "tests/ci/release/test_ci_release_dockerfile_check.py",
        *session.posargs,
        env={"BOT4_DOCKERFILE_CHECK": "1", "BOT4_DOCKERFILE_PIP": GATE_PIP},
    )


@nox.session(python=PYTHON, tags=["image"])
def remedies(session: nox.Session) -> None:
    """In a fresh clone, provoke each failure whose remedy the gate prints, run the printed
    `scripts/gate -s …` exactly as printed, and show the check green (package indexes)."""
    install_locked(session)
    # The tests marked `remedies` in tests/ci/test_remedies.py (deselected from `tests`).
    session.run(
        "pytest",
        "-m",
        "remedies",
        "-p",
        "no:cacheprovider",
        "tests/ci/test_remedies.py",
        *session.posargs,
        env={"BOT4_REMEDIES_CHECK": "1"},
    )


@nox.session(python=PYTHON, default=False, tags=["release"])
def release(session: nox.Session) -> None:
    """Push build/image, sign with the project key, attest SBOM + SLSA provenance (-- REF …)."""
    install_locked(session)
    session.run("python", "-m", "ci.release", "release", f"{IMAGE_OUT}/oci", *session.posargs)
