"""bot4's gate: one short session per concern; `nox -l` lists them, `nox` runs every gate.

Every session installs only from the hash-pinned locks (toolchain.lock → locks/*.txt)
with --require-hashes, and never downloads an interpreter. The work is done by the
tools themselves or by `python -m ci <command>`; nothing here decides a verdict.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

import nox

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


def install_locked(session: nox.Session) -> None:
    """The locked toolchain (hashes required), then bot4 and ci editable without deps."""
    session.install("--require-hashes", "-r", TOOLCHAIN_LOCK)
    session.install("--no-deps", "--no-build-isolation", "-e", ".", "-e", "./ci")


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
    """bandit over src and ci (JSON kept in reports/), then IP-literal and secret scan."""
    install_locked(session)
    REPORTS.mkdir(exist_ok=True)
    session.run(
        "bandit",
        "-q",
        "-c",
        "pyproject.toml",
        "-r",
        "src",
        "ci",
        "-f",
        "json",
        "-o",
        "reports/bandit.json",
        "--exit-zero",
    )
    session.run("bandit", "-q", "-c", "pyproject.toml", "-r", "src", "ci")
    session.run("python", "-m", "ci", "security-scan")


@nox.session(python=PYTHON, tags=["gate"])
def tests(session: nox.Session) -> None:
    """pytest under branch coverage over src/bot4 and ci, then the per-package coverage gate."""
    install_locked(session)
    REPORTS.mkdir(exist_ok=True)
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs, env=pinned_uv())
    session.run("coverage", "json", "-q")
    session.run("coverage", "xml", "-q")
    session.run("coverage", "html", "-q")
    gate = (
        ["--diff", os.environ["BOT4_COVERAGE_DIFF_BASE"]]
        if "BOT4_COVERAGE_DIFF_BASE" in os.environ
        else []
    )
    session.run("python", "-m", "ci", "coverage-gate", *gate)


@nox.session(python=False, default=False, tags=["maintenance"])
def lock(session: nox.Session) -> None:
    """Regenerate locks/*.txt (uv pip compile --generate-hashes) and toolchain.lock."""
    uv = Path(sys.executable).parent / "uv"
    session.run(sys.executable, "-m", "ci", "lock", "--uv", str(uv), *session.posargs)


@nox.session(python=PYTHON, default=False, tags=["bench"])
def bench(session: nox.Session) -> None:
    """Run every benchmark script (benchmarks/*/bench_*.py); pass --quick for a short run."""
    install_locked(session)
    for script in sorted((ROOT / "benchmarks").glob("*/bench_*.py")):
        session.run("python", str(script.relative_to(ROOT)), *session.posargs, env=pinned_uv())


@nox.session(python=PYTHON, tags=["gate"])
def audit(session: nox.Session) -> None:
    """Audit every locked pin: PyPA advisory snapshot, strict pip-audit, yanked = deny."""
    install_locked(session)
    session.run("python", "-m", "ci", "audit", *bot4_inputs(), *session.posargs)


@nox.session(python=PYTHON, tags=["gate"])
def licenses(session: nox.Session) -> None:
    """Licence policy over this venv (installed from the lock) and source policy over the locks."""
    install_locked(session)
    session.run(
        "python", "-m", "ci", "licenses", *bot4_inputs(), "--runtime-lock", "locks/runtime.txt",
        *session.posargs,
    )  # fmt: skip


@nox.session(python=PYTHON, tags=["gate"])
def sbom(session: nox.Session) -> None:
    """CycloneDX SBOM of locks/runtime.txt; fails when sbom/ is stale (`-- --write` updates it)."""
    install_locked(session)
    mode = [] if "--write" in session.posargs else ["--check"]
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
    session.run("pytest", "tests/ops", "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHON, tags=["gate"])
def workflows(session: nox.Session) -> None:
    """zizmor --offline, actionlint and the project check over .github/workflows."""
    install_locked(session)
    session.run("python", "-m", "ci.workflows", "check", *session.posargs)


@nox.session(python=PYTHON, default=False, tags=["drills"])
def chaos(session: nox.Session) -> None:
    """Chaos drills on simulated time (-- partition|component-failure|load-spike; default all)."""
    install_locked(session)
    drills = session.posargs or ["all"]
    session.run("bot4", "chaos", *drills, "--report-dir", "artifacts/chaos")


PROFILE_TARGETS = {
    "simulator": "benchmarks/simulator/bench_matching.py",
    "risk-batch": "benchmarks/risk/bench_risk.py",
    "engine-loop": "benchmarks/trading_engine/bench_engine.py",
}


@nox.session(python=PYTHON, default=False, tags=["bench"])
def profile(session: nox.Session) -> None:
    """py-spy flamegraphs (SVG + speedscope) of the simulator, risk batch path and engine loop."""
    install_locked(session)
    out = ROOT / "artifacts" / "flamegraphs"
    out.mkdir(parents=True, exist_ok=True)
    for name, script in PROFILE_TARGETS.items():
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
            )


GATE_PIP = str(
    Path(sys.executable).parent / "pip"
)  # the runner's pip reads the machine's pip config
IMAGE_OUT = "build/image"


def ensure_image(session: nox.Session) -> None:
    """Build the image into build/image unless a previous session already did."""
    if not (ROOT / IMAGE_OUT / "oci" / "index.json").exists():
        session.run("python", "-m", "ci.image", "--pip", GATE_PIP, "build", "--out", IMAGE_OUT)


@nox.session(name="image-lock", python=PYTHON, default=False, tags=["image"])
def image_lock(session: nox.Session) -> None:
    """Resolve ci/image/image.toml into image.lock (apt indexes + the package index)."""
    install_locked(session)
    if os.geteuid() == 0:
        session.run("apt-get", "update", "-qq", external=True)
    session.run("python", "-m", "ci.image", "--pip", GATE_PIP, "lock")


@nox.session(python=PYTHON, tags=["image"])
def image(session: nox.Session) -> None:
    """Build the image twice (umask/TZ/locale differ): same digest or fail; smoke under runc."""
    install_locked(session)
    refresh = ["--refresh-superseded"] if os.environ.get("CI") else []
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
    else:
        session.warn("smoke run skipped: needs root and runc (apt-get install runc)")
    session.run("python", "-c", f"print(open('{IMAGE_OUT}/digest').read().strip())")


@nox.session(python=PYTHON, tags=["image"])
def scan(session: nox.Session) -> None:
    """Scan the image: OSV (PyPI + Debian), pending security updates, hygiene; JSON + SARIF."""
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
        "tests/ci/release/test_ci_release_dockerfile.py",
        *session.posargs,
        env={"BOT4_DOCKERFILE_CHECK": "1", "BOT4_DOCKERFILE_PIP": GATE_PIP},
    )


@nox.session(python=PYTHON, default=False, tags=["release"])
def release(session: nox.Session) -> None:
    """Push build/image, sign with the project key, attest SBOM + SLSA provenance (-- REF …)."""
    install_locked(session)
    session.run("python", "-m", "ci.release", "release", f"{IMAGE_OUT}/oci", *session.posargs)
