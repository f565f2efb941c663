"""toolchain.lock: the pinned interpreter and the hashed locks, and the drift check against them.

``toolchain.lock`` is a small TOML index over plain hashed requirement files in
``locks/`` (which pip and uv both install with ``--require-hashes``). It records the
interpreter the gate accepts, the sha256 of every lock file (so a hand edit is
caught) and a digest of the dependency declarations in pyproject.toml (so a changed
declaration without a re-lock is caught). ``scripts/gate -s lock`` writes it;
``scripts/gate -s toolchain`` checks every environment against it.
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ci.compat import tomllib
from ci.errors import GateError
from ci.files import atomic_write, sha256_file
from ci.gate import toolkit_pyproject, venvs
from ci.gate.preinstall import check_text as lock_problems
from ci.gate.preinstall import inputs_digest_of, pins_of
from ci.gate.requirements import Pin, applicable, read_lock

LOCK_FILE = "toolchain.lock"
SCHEMA = 1
# Distributions that may sit in an environment without being locked: the project's own
# editable installs, nothing else. A venv tool's seeds are not exempt: scripts/gate replaces
# ensurepip's pip with the locked one and removes setuptools; uv seeds nothing.
UNLOCKED_OK = frozenset({"bot4", "bot4-ci"})
REMEDY = (
    "rerun the session that venv belongs to (scripts/gate rebuilds a session venv that"
    " differs from the lock) or adopt the version with scripts/gate -s lock"
)


@dataclass(frozen=True)
class LockSpec:
    """How one lock file is produced and which environment it governs."""

    name: str
    path: str
    sources: tuple[str, ...]
    governs: str
    purpose: str
    # A universal lock (markers for every platform and Python from this minor version up)
    # instead of one for toolchain.lock's interpreter and platform.
    universal_from: str | None = None


# Order matters: runtime is compiled with the toolchain lock as constraints so the
# engine's packages have the same versions in the gate and in the image.
LOCK_SPECS: tuple[LockSpec, ...] = (
    LockSpec(
        "bootstrap",
        "locks/bootstrap.txt",
        ("--group", "pyproject.toml:bootstrap"),
        "runner",
        "nox and uv, installed by scripts/gate into .venv-gate",
    ),
    LockSpec(
        "toolchain",
        "locks/toolchain.txt",
        ("pyproject.toml", "--all-extras", "--group", "pyproject.toml:toolchain"),
        "session",
        "every gate tool plus the engine's runtime packages, installed into each nox session",
    ),
    LockSpec(
        "runtime",
        "locks/runtime.txt",
        ("pyproject.toml", "--all-extras", "-c", "locks/toolchain.txt"),
        "image",
        "the engine's runtime packages only (the image and the SBOM)",
    ),
    LockSpec(
        "toolkit",
        "locks/toolkit.txt",
        ("--group", "pyproject.toml:toolkit-tests"),
        "toolkit",
        "the toolkit (ci/) and its test runner on Python 3.10–3.13 (the toolkit-pythons session)",
        universal_from="3.10",
    ),
)


@dataclass(frozen=True)
class LockEntry:
    """A lock file as recorded in toolchain.lock."""

    name: str
    path: str
    sha256: str
    governs: str


@dataclass(frozen=True)
class Toolchain:
    """The parsed toolchain.lock."""

    python: str
    implementation: str
    pointer_bits: int
    platform: str
    inputs_sha256: str
    locks: tuple[LockEntry, ...]
    # The exact interpreter versions the gate is run and tested on (empty: any patch).
    interpreters: tuple[str, ...] = ()

    def lock(self, name: str) -> LockEntry:
        """The lock entry called ``name``."""
        for entry in self.locks:
            if entry.name == name:
                return entry
        raise GateError(f"{LOCK_FILE} has no lock named {name!r}; run scripts/gate -s lock")

    def governing(self, role: str) -> tuple[LockEntry, ...]:
        """The locks that govern environments of a role (runner, session, image)."""
        return tuple(entry for entry in self.locks if entry.governs == role)


def inputs_digest(pyproject: Path) -> str:
    """Digest of every dependency declaration the locks are compiled from."""
    return inputs_digest_of(read_pyproject(pyproject))  # one definition: the verifier's


def python_pin(pyproject_data: Mapping[str, Any]) -> str:
    """The interpreter minor version the gate accepts, from [tool.bot4.toolchain]."""
    value = _settings(pyproject_data).get("python")
    if not isinstance(value, str) or value.count(".") != 1:
        raise GateError('pyproject.toml: [tool.bot4.toolchain] python must be like "3.11"')
    return value


def interpreter_pins(pyproject_data: Mapping[str, Any]) -> tuple[str, ...]:
    """The exact interpreter versions the gate runs on, from [tool.bot4.toolchain]."""
    python = python_pin(pyproject_data)
    value = _settings(pyproject_data).get("interpreters", [])
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v.count(".") == 2 and v.startswith(python + ".") for v in value
    ):
        raise GateError(
            f"pyproject.toml: [tool.bot4.toolchain] interpreters must list exact {python}.N "
            'versions, like ["3.11.2"]'
        )
    return tuple(sorted(set(value), key=lambda v: tuple(int(p) for p in v.split("."))))


def platform_pin(pyproject_data: Mapping[str, Any]) -> str:
    """The platform the locks are resolved for, from [tool.bot4.toolchain]."""
    value = _settings(pyproject_data).get("platform")
    if not isinstance(value, str) or not value:
        raise GateError("pyproject.toml: [tool.bot4.toolchain] platform must be a uv platform tag")
    return value


def _settings(pyproject_data: Mapping[str, Any]) -> Mapping[str, Any]:
    section = pyproject_data.get("tool", {}).get("bot4", {}).get("toolchain", {})
    return section if isinstance(section, dict) else {}


def read_pyproject(path: Path) -> dict[str, Any]:
    """pyproject.toml as a dict, with a one-line error when unreadable."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GateError(f"{path}: cannot read ({exc})") from None


def _get(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:  # noqa: ANN401
    value = table.get(key)
    if not isinstance(value, kind):
        raise GateError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
    return value


def load_toolchain(path: Path) -> Toolchain:
    """Parse toolchain.lock with a one-line error for every malformed part."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(f"{path}: not found; run scripts/gate -s lock") from None
    except tomllib.TOMLDecodeError as exc:
        raise GateError(f"{path}: invalid TOML ({exc})") from None
    if data.get("schema") != SCHEMA:
        raise GateError(f"{path}: schema must be {SCHEMA}, got {data.get('schema')!r}")
    py = _get(data, "python", dict, str(path))
    locks = _get(data, "locks", dict, str(path))
    interpreters = py.get("interpreters", [])
    if not isinstance(interpreters, list) or not all(isinstance(v, str) for v in interpreters):
        raise GateError(f"{path}: python.interpreters must be a list of versions")
    entries = []
    for name, table in locks.items():
        where = f"{path}: locks.{name}"
        if not isinstance(table, dict):
            raise GateError(f"{where} must be a table")
        entries.append(
            LockEntry(
                name=name,
                path=_get(table, "path", str, where),
                sha256=_get(table, "sha256", str, where),
                governs=_get(table, "governs", str, where),
            )
        )
    return Toolchain(
        python=_get(py, "version", str, f"{path}: python"),
        implementation=_get(py, "implementation", str, f"{path}: python"),
        pointer_bits=_get(py, "pointer_bits", int, f"{path}: python"),
        platform=_get(py, "platform", str, f"{path}: python"),
        inputs_sha256=_get(data, "inputs_sha256", str, str(path)),
        locks=tuple(entries),
        interpreters=tuple(interpreters),
    )


def render_toolchain(tc: Toolchain) -> str:
    """toolchain.lock's text: stable, sorted, commented for the reader."""
    lines = [
        "# bot4 toolchain lock. Generated by `scripts/gate -s lock`: do not edit.",
        "# The interpreter the gate accepts, and the hashed requirement files it installs",
        "# with --require-hashes. Change dependencies in pyproject.toml, then re-lock.",
        f"schema = {SCHEMA}",
        f'inputs_sha256 = "{tc.inputs_sha256}"',
        "",
        "[python]",
        f'implementation = "{tc.implementation}"',
        f'version = "{tc.python}"',
        "# exact versions the gate runs and is tested on (Debian's is the image's)",
        "interpreters = [" + ", ".join(f'"{v}"' for v in tc.interpreters) + "]",
        f"pointer_bits = {tc.pointer_bits}",
        f'platform = "{tc.platform}"',
    ]
    purposes = {spec.name: spec.purpose for spec in LOCK_SPECS}
    for entry in tc.locks:
        lines += [
            "",
            f"# {purposes.get(entry.name, entry.name)}",
            f"[locks.{entry.name}]",
            f'path = "{entry.path}"',
            f'sha256 = "{entry.sha256}"',
            f'governs = "{entry.governs}"',
        ]
    return "\n".join(lines) + "\n"


# --- lock generation ------------------------------------------------------------------------

Runner = Callable[[Sequence[str], Path], None]


def _run_uv(argv: Sequence[str], cwd: Path) -> None:
    result = subprocess.run(  # noqa: S603  # nosec B603
        argv, cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise GateError(f"uv pip compile failed: {detail}")


def find_uv(explicit: str | None) -> str:
    """uv from --uv, $UV, PATH, or next to this interpreter, in that order."""
    for candidate in (explicit, os.environ.get("UV"), shutil.which("uv")):
        if candidate:
            return candidate
    beside = Path(sys.executable).parent / "uv"
    if beside.exists():
        return str(beside)
    raise GateError("uv not found: pass --uv PATH or install the bootstrap lock (scripts/gate)")


def compile_locks(
    root: Path,
    uv: str,
    python: str,
    platform_tag: str,
    upgrade: bool = False,
    run: Runner = _run_uv,
    log: Callable[[str], None] = lambda _msg: None,
) -> Toolchain:
    """Regenerate every lock with uv, then toolchain.lock; all or nothing.

    Each lock is compiled into a temp directory; only when all succeeded are they moved
    into place, so a failed resolution leaves the previous locks untouched.
    """
    with tempfile.TemporaryDirectory(prefix="bot4-lock-", dir=root) as tmp:
        staged: list[tuple[LockSpec, Path]] = []
        for spec in LOCK_SPECS:
            out = Path(tmp) / Path(spec.path).name
            sources = [
                str(Path(tmp) / Path(s).name) if s in {x.path for x, _ in staged} else s
                for s in spec.sources
            ]
            argv = [
                uv,
                "pip",
                "compile",
                "--quiet",
                "--generate-hashes",
                *(
                    ["--universal", "--python-version", spec.universal_from]
                    if spec.universal_from
                    else ["--python-version", python, "--python-platform", platform_tag]
                ),
                "--custom-compile-command",
                "scripts/gate -s lock",
                "--no-emit-index-url",
                *(["--upgrade"] if upgrade else []),
                *sources,
                "-o",
                str(out),
            ]
            existing = root / spec.path
            if existing.exists() and not upgrade:
                # uv prefers the pins already in its output file: a re-lock moves only what
                # the changed declarations require (--upgrade moves everything). A lock the
                # pre-install verifier refuses seeds only its name==version pins, never its
                # options (an index, find-links …).
                seed = existing.read_text(encoding="utf-8")
                if lock_problems(seed, spec.path):
                    seed = "".join(f"{n}=={v}\n" for n, v in sorted(pins_of(seed).items()))
                out.write_text(seed, encoding="utf-8")
            log(f"locking {spec.name} ({spec.purpose})")
            run(argv, root)
            # uv annotates "via -c <staged path>": name the final path so output is stable.
            text = out.read_text(encoding="utf-8")
            for staged_spec, staged_out in staged:
                text = text.replace(str(staged_out.relative_to(root)), staged_spec.path).replace(
                    str(staged_out), staged_spec.path
                )
            out.write_text(text, encoding="utf-8")
            read_lock(out)  # a lock that does not parse is never installed
            staged.append((spec, out))
        entries = []
        for spec, out in staged:
            target = root / spec.path
            target.parent.mkdir(parents=True, exist_ok=True)
            out.replace(target)
            entries.append(LockEntry(spec.name, spec.path, sha256_file(target), spec.governs))
    tc = Toolchain(
        python=python,
        implementation="cpython",
        pointer_bits=64,
        platform=platform_tag,
        inputs_sha256=inputs_digest(root / "pyproject.toml"),
        locks=tuple(entries),
        interpreters=interpreter_pins(read_pyproject(root / "pyproject.toml")),
    )
    atomic_write(root / LOCK_FILE, render_toolchain(tc))
    return tc


# --- drift check ----------------------------------------------------------------------------


def installed(site_packages: Path) -> dict[str, str]:
    """Installed distributions in one site-packages directory: canonical name → version."""
    found: dict[str, str] = {}
    for dist in metadata.distributions(path=[str(site_packages)]):
        name = dist.metadata["Name"]
        if name:
            found[canonicalize_name(name)] = dist.version
    return found


def check_interpreter(
    tc: Toolchain,
    version: str,
    implementation: str,
    pointer_bits: int,
    label: str,
) -> list[str]:
    """Problems with an interpreter against the locked one."""
    problems = []
    if implementation != tc.implementation:
        problems.append(
            f"{label}: interpreter is {implementation}, {LOCK_FILE} pins {tc.implementation}"
        )
    major_minor = ".".join(version.split(".")[:2])
    if major_minor != tc.python:
        problems.append(
            f"{label}: Python {version} in use, {LOCK_FILE} pins {tc.python}.x — "
            f"install Python {tc.python} (Debian 12: apt-get install python{tc.python}-venv)"
        )
    elif tc.interpreters and version not in tc.interpreters:
        problems.append(
            f"{label}: Python {version} in use, {LOCK_FILE} pins "
            f"{' or '.join(tc.interpreters)} — run the gate on a pinned interpreter "
            f"(BOT4_PYTHON=…), or add {version} to [tool.bot4.toolchain] interpreters in "
            "pyproject.toml, test on it, then scripts/gate -s lock"
        )
    if pointer_bits != tc.pointer_bits:
        problems.append(
            f"{label}: {pointer_bits}-bit interpreter, {LOCK_FILE} pins {tc.pointer_bits}-bit"
        )
    return problems


def check_files(root: Path, tc: Toolchain) -> list[str]:
    """Lock files unchanged since toolchain.lock was written; inputs unchanged since locking."""
    problems = []
    for entry in tc.locks:
        path = root / entry.path
        if not path.exists():
            problems.append(f"{entry.path} is missing — run scripts/gate -s lock")
            continue
        if sha256_file(path) != entry.sha256:
            problems.append(
                f"{entry.path} differs from the sha256 in {LOCK_FILE} (edited by hand?)"
                " — run scripts/gate -s lock"
            )
    if inputs_digest(root / "pyproject.toml") != tc.inputs_sha256:
        problems.append(
            f"pyproject.toml's dependency declarations changed since {LOCK_FILE} was written"
            " — run scripts/gate -s lock"
        )
    return problems


def check_environment(
    env: venvs.Environment,
    pins: Mapping[str, Pin],
    lock_name: str,
    present: Mapping[str, str],
) -> list[str]:
    """Every locked package installed at its exact version; nothing unlocked installed."""
    problems = []
    for name, pin in sorted(pins.items()):
        have = present.get(name)
        if have is None:
            problems.append(
                f"{name} not installed in {env.label}, {LOCK_FILE} pins {pin.version}"
                f" ({lock_name}) — {REMEDY}"
            )
        elif have != str(pin.version):
            problems.append(
                f"{name} {have} installed in {env.label}, {LOCK_FILE} pins {pin.version}"
                f" ({lock_name}) — {REMEDY}"
            )
    for name, have in sorted(present.items()):
        if name not in pins and name not in UNLOCKED_OK:
            problems.append(
                f"{name} {have} installed in {env.label} but not in any lock — "
                "remove it or add it to pyproject.toml and run scripts/gate -s lock"
            )
    return problems


def check(root: Path, environments: Iterable[venvs.Environment]) -> list[str]:
    """All drift problems: interpreter, lock files, and each environment."""
    tc = load_toolchain(root / LOCK_FILE)
    problems = check_interpreter(
        tc,
        platform.python_version(),
        sys.implementation.name,
        struct.calcsize("P") * 8,
        "running interpreter",
    )
    problems += check_files(root, tc)
    problems += toolkit_pyproject.drift(root)
    by_role: dict[str, tuple[dict[str, Pin], str]] = {}  # each lock parsed once per role
    for env in environments:
        problems += check_interpreter(
            tc, env.python_version, tc.implementation, tc.pointer_bits, env.label
        )
        if env.role not in by_role:
            entries = tc.governing(env.role)
            if not entries:
                raise GateError(f"{LOCK_FILE} has no lock governing {env.role!r} environments")
            pins: dict[str, Pin] = {}
            for entry in entries:
                pins.update(applicable(read_lock(root / entry.path)))
            by_role[env.role] = (pins, ", ".join(entry.path for entry in entries))
        role_pins, names = by_role[env.role]
        problems += check_environment(env, role_pins, names, installed(env.site_packages))
    return problems
