"""``python -m ci sbom``: the CycloneDX 1.6 SBOM of an environment installed from locks.

The SBOM must describe exactly the given locks (bot4: ``locks/runtime.txt``), on any
machine, byte for byte. So it is not taken from whatever environment happens to run the
gate: a throwaway venv is installed from the locks alone (``uv pip install
--require-hashes --no-deps``) — or ``--venv`` names one already installed from them —
then ``cyclonedx-py environment --output-reproducible`` reads that venv (its output names
no path), with an optional ``pyproject.toml`` as the root component. The result is
enriched with the locks: every component gets the sha256 hashes the lock accepts for it
and the purl packageurl-python's PyPI rules give, and a component the locks do not name
(or an applicable pin with no component) is an error. A pin whose environment marker
does not hold for the venv's interpreter (a ``--universal`` lock's ``colorama ;
sys_platform == 'win32'``) is not installed there and is reported, not required.
It is validated with cyclonedx-python-lib's strict JSON validator and serialized with
sorted keys, so two runs give the same bytes. ``--check`` compares with the committed file
and summarises what changed.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclonedx.schema import SchemaVersion
from packageurl import PackageURL
from packaging.utils import NormalizedName, canonicalize_name

from ci.errors import GateError
from ci.gate.requirements import Pin, read_lock

DEFAULT_OUTPUT = "sbom/bot4-python.cdx.json"  # bot4's (the noxfile passes it)
DEFAULT_LOCK = "locks/runtime.txt"
SPEC = "1.6"
HASHES_NOTE = "the lock's sha256 of every artifact it accepts for this release (any one installs)"


def _run(argv: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> None:
    try:
        subprocess.run(  # noqa: S603  # nosec B603
            list(argv), check=True, capture_output=True, text=True, timeout=900, env=env
        )
    except subprocess.CalledProcessError as exc:
        lines = [line for line in (exc.stderr or exc.stdout or "").splitlines() if line.strip()]
        raise GateError(
            f"{what} failed: {lines[-1] if lines else f'exit {exc.returncode}'}"
        ) from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GateError(f"{what} failed: {exc}") from None


def install_runtime(
    uv: str, locks: Sequence[Path], venv: Path, index_args: Sequence[str] = ()
) -> Path:
    """A fresh venv holding exactly the locks' (applicable) pins; returns its interpreter.

    ``index_args`` (e.g. ``--no-index --find-links DIR``) go to uv as they are; by default
    uv uses its default index or ``UV_DEFAULT_INDEX``.
    """
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
    _run([uv, "venv", "-q", "--python", sys.executable, str(venv)], "uv venv", env)
    python = venv / "bin" / "python"
    requirements = [arg for lock in locks for arg in ("-r", str(lock))]
    what = ", ".join(str(lock) for lock in locks)
    _run(
        [uv, "pip", "install", "-q", "--python", str(python), "--require-hashes", "--no-deps",
         *index_args, *requirements],
        f"installing {what} with uv",
        env,
    )  # fmt: skip
    return python


# The PEP 508 marker environment of an interpreter, computed by that interpreter with the
# standard library only (the venv described need not have packaging installed).
_MARKER_ENV = """
import json, os, platform, sys
impl = sys.implementation
v = impl.version
iver = f"{v.major}.{v.minor}.{v.micro}"
if v.releaselevel != "final":
    iver += v.releaselevel[0] + str(v.serial)
print(json.dumps({
    "implementation_name": impl.name, "implementation_version": iver, "os_name": os.name,
    "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
}))
"""


def marker_environment(python: Path) -> dict[str, str]:
    """What environment markers evaluate against for the venv of ``python``."""
    try:
        done = subprocess.run(  # noqa: S603  # nosec B603
            [str(python), "-I", "-c", _MARKER_ENV],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        env: dict[str, str] = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
        raise GateError(f"{python}: cannot read its marker environment: {exc}") from None
    return env


def cyclonedx_environment(python: Path, pyproject: Path | None, out: Path) -> dict[str, Any]:
    """Run ``cyclonedx-py environment`` on a venv's interpreter and read its JSON."""
    root = ["--pyproject", str(pyproject)] if pyproject is not None else []
    # --no-validate: the enriched result is validated strictly by validate(); validating
    # twice would load the schema validator twice (most of the time either run takes).
    _run(
        [sys.executable, "-m", "cyclonedx_py", "environment", "--output-reproducible",
         "--sv", SPEC, "--of", "JSON", "--no-validate", *root, "-o", str(out), str(python)],
        "cyclonedx-py environment",
    )  # fmt: skip
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def pypi_purl(name: str, version: str) -> str:
    """The purl spec's PyPI form, by packageurl-python's own normalisation.

    It lower-cases and turns ``_`` into ``-`` but keeps dots: ``jaraco.classes`` stays
    ``pkg:pypi/jaraco.classes`` (PEP 503's canonical name, ``jaraco-classes``, is not it).
    """
    return PackageURL(type="pypi", name=name, version=version).to_string()


@dataclass(frozen=True)
class Locked:
    """A pin that applies to the described environment, and the lock it comes from."""

    pin: Pin
    lock: str


def applicable_pins(
    locks: Sequence[tuple[str, Sequence[Pin]]], environment: Mapping[str, str]
) -> tuple[dict[NormalizedName, Locked], list[str]]:
    """The pins each lock installs on ``environment``, and those its markers leave out.

    Two locks pinning one name to different versions cannot describe one venv: an error.
    """
    chosen: dict[NormalizedName, Locked] = {}
    skipped: list[str] = []
    for lock_name, pins in locks:
        for pin in pins:
            if not pin.applies(dict(environment)):
                skipped.append(f"{pin.name} {pin.version} ; {pin.marker}")
                continue
            earlier = chosen.get(pin.name)
            if earlier is not None and earlier.pin.version != pin.version:
                raise GateError(
                    f"{pin.name} is pinned to {earlier.pin.version} in {earlier.lock} and to "
                    f"{pin.version} in {lock_name}; one environment cannot hold both"
                )
            chosen.setdefault(pin.name, Locked(pin, f"{lock_name}:{pin.line}"))
    return chosen, sorted(set(skipped))


def enrich(bom: dict[str, Any], by_name: Mapping[NormalizedName, Locked]) -> dict[str, Any]:
    """Add the locks' hashes and canonical purls; the components must equal the pins."""
    lock_names = ", ".join(sorted({item.lock.rsplit(":", 1)[0] for item in by_name.values()}))
    seen: set[NormalizedName] = set()
    for component in bom.get("components", []):
        raw_name = str(component.get("name", ""))
        name = canonicalize_name(raw_name)
        locked = by_name.get(name)
        if locked is None:
            raise GateError(f"SBOM component {name} is not pinned in {lock_names or 'the locks'}")
        pin = locked.pin
        if str(component.get("version")) != str(pin.version):
            raise GateError(
                f"SBOM component {name} {component.get('version')} differs from "
                f"{locked.lock.rsplit(':', 1)[0]} ({pin.version})"
            )
        seen.add(name)
        component["purl"] = pypi_purl(raw_name, str(pin.version))
        component["hashes"] = [
            {"alg": "SHA-256", "content": h.removeprefix("sha256:")} for h in sorted(pin.hashes)
        ]
        properties = [
            p for p in component.get("properties", []) if not str(p.get("name")).startswith("bot4:")
        ]
        properties += [
            {"name": "bot4:lock", "value": locked.lock},
            {"name": "bot4:hashes", "value": HASHES_NOTE},
        ]
        component["properties"] = sorted(properties, key=lambda p: (p["name"], p["value"]))
    missing = sorted(set(by_name) - seen)
    if missing:
        raise GateError(
            f"{lock_names} pins {', '.join(missing)} for this environment but the SBOM has "
            "no such component"
        )
    bom["components"] = sorted(bom.get("components", []), key=lambda c: str(c.get("purl")))
    return bom


def serialize(bom: Mapping[str, Any]) -> str:
    """Byte-stable JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(bom, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class _ParserOnFirstUse:
    """Stands in for ``lark.Lark`` while rfc3987_syntax is imported: the same parser, with
    the same grammar and options, built when it first parses."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._args = args
        self._kwargs = kwargs
        self._parser: Any = None

    def parse(self, *args: object, **kwargs: object) -> object:
        if self._parser is None:
            self._parser = _LARK(*self._args, **self._kwargs)
        return self._parser.parse(*args, **kwargs)


_LARK: Any = None


def _import_rfc3987_syntax() -> None:
    """Import rfc3987_syntax — jsonschema's ``iri`` / ``iri-reference`` format checker —
    with its parsers built on first use.

    At import it compiles 39 Earley parsers of its grammar (≈ 1.5 s CPU, most of ``sbom``'s
    own time), of which jsonschema uses one; each is now compiled when it first parses, so
    the formats are checked exactly as before (tests/ci/supply_chain/test_sbom.py rejects a
    bad IRI). ``lark.Lark`` is swapped only for that one import and put back.
    """
    global _LARK  # noqa: PLW0603
    if "rfc3987_syntax" in sys.modules:
        return
    try:
        import lark  # noqa: PLC0415
    except ImportError:
        return  # no lark, no rfc3987_syntax: jsonschema checks IRIs its other way, if any
    _LARK = lark.Lark
    setattr(lark, "Lark", _ParserOnFirstUse)  # noqa: B010
    try:
        importlib.import_module("rfc3987_syntax")
    except ImportError:
        pass
    finally:
        setattr(lark, "Lark", _LARK)  # noqa: B010


def validate(text: str) -> None:
    """Strict CycloneDX 1.6 JSON schema validation.

    Imported here, not at the top: the validator's format checkers compile dozens of
    grammars on import (seconds), which every other ``python -m ci`` command would pay;
    and those grammars are compiled only when used (:func:`_import_rfc3987_syntax`).
    """
    _import_rfc3987_syntax()
    from cyclonedx.validation.json import JsonStrictValidator  # noqa: PLC0415

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        first = str(error).splitlines()[0]
        raise GateError(f"generated SBOM is not valid CycloneDX {SPEC}: {first}")


@dataclass(frozen=True)
class Built:
    """The SBOM text, and the pins the environment's markers left out."""

    text: str
    not_installed: tuple[str, ...]


def generate(
    root: Path,
    uv: str | None,
    locks: Sequence[Path],
    pyproject: Path | None,
    index_args: Sequence[str] = (),
    venv: Path | None = None,
) -> Built:
    """The SBOM of ``locks``: of ``venv`` when given, else of a throwaway venv built from them."""
    if not locks:
        raise GateError("no lock to describe: pass --lock FILE")
    read = [
        (str(lock.relative_to(root) if lock.is_relative_to(root) else lock), read_lock(lock))
        for lock in locks
    ]
    with tempfile.TemporaryDirectory(prefix="bot4-sbom-") as tmp:
        if venv is None:
            if uv is None:
                raise GateError("uv is needed to build the throwaway venv (or pass --venv)")
            python = install_runtime(uv, locks, Path(tmp) / "venv", index_args)
        else:
            python = venv / "bin" / "python"
            if not python.exists():
                raise GateError(f"{venv}: not a virtualenv (no bin/python)")
        by_name, skipped = applicable_pins(read, marker_environment(python))
        bom = cyclonedx_environment(python, pyproject, Path(tmp) / "bom.json")
    text = serialize(enrich(bom, by_name))
    validate(text)
    return Built(text, tuple(skipped))


def _components(text: str) -> dict[str, Mapping[str, Any]]:
    try:
        data = json.loads(text)
        return {str(c["name"]): c for c in data.get("components", [])}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return {}


def diff_summary(old: str, new: str, limit: int = 12) -> list[str]:
    """A short, human summary of how a committed SBOM differs from a fresh one."""
    before, after = _components(old), _components(new)
    lines: list[str] = []
    lines += [f"+ {n} {after[n].get('version')}" for n in sorted(set(after) - set(before))]
    lines += [f"- {n} {before[n].get('version')}" for n in sorted(set(before) - set(after))]
    for name in sorted(set(before) & set(after)):
        b, a = before[name], after[name]
        if b.get("version") != a.get("version"):
            lines.append(f"~ {name} {b.get('version')} → {a.get('version')}")
        elif b != a:
            keys = sorted(k for k in set(b) | set(a) if b.get(k) != a.get(k))
            lines.append(f"~ {name}: {', '.join(keys)} changed")
    if not lines:
        old_lines, new_lines = old.splitlines(), new.splitlines()
        first = next(
            (i for i, (x, y) in enumerate(zip(old_lines, new_lines, strict=False), 1) if x != y),
            min(len(old_lines), len(new_lines)) + 1,
        )
        lines.append(f"outside the components (first difference at line {first})")
    if len(lines) > limit:
        lines = [*lines[:limit], f"… and {len(lines) - limit} more"]
    return lines
