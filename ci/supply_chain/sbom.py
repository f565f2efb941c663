"""``python -m ci sbom``: the CycloneDX 1.6 SBOM of the engine's runtime environment.

The SBOM must describe exactly ``locks/runtime.txt``, on any machine, byte for byte. So
it is not taken from whatever environment happens to run the gate: a throwaway venv is
installed from the lock alone (``uv pip install --require-hashes --no-deps``), then
``cyclonedx-py environment --output-reproducible`` reads that venv (its output names no
path), with ``pyproject.toml`` as the root component. The result is enriched with the
lock: every component gets the sha256 hashes the lock accepts for it and a canonical
purl, and a component the lock does not name (or a pin with no component) is an error.
It is validated with cyclonedx-python-lib's strict JSON validator and serialized with
sorted keys, so two runs give the same bytes. ``--check`` compares with the committed file
and summarises what changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from packaging.utils import NormalizedName, canonicalize_name

from ci.errors import GateError
from ci.gate.requirements import Pin, read_lock

DEFAULT_OUTPUT = "sbom/bot4-python.cdx.json"
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


def install_runtime(uv: str, lock: Path, venv: Path, index_args: Sequence[str] = ()) -> Path:
    """A fresh venv holding exactly the lock's pins; returns its interpreter.

    ``index_args`` (e.g. ``--no-index --find-links DIR``) go to uv as they are; by default
    uv uses its default index or ``UV_DEFAULT_INDEX``.
    """
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
    _run([uv, "venv", "-q", "--python", sys.executable, str(venv)], "uv venv", env)
    python = venv / "bin" / "python"
    _run(
        [uv, "pip", "install", "-q", "--python", str(python), "--require-hashes", "--no-deps",
         *index_args, "-r", str(lock)],
        f"installing {lock} with uv",
        env,
    )  # fmt: skip
    return python


def cyclonedx_environment(python: Path, pyproject: Path, out: Path) -> dict[str, Any]:
    """Run ``cyclonedx-py environment`` on a venv's interpreter and read its JSON."""
    _run(
        [sys.executable, "-m", "cyclonedx_py", "environment", "--output-reproducible",
         "--sv", SPEC, "--of", "JSON", "--pyproject", str(pyproject), "-o", str(out),
         str(python)],
        "cyclonedx-py environment",
    )  # fmt: skip
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def enrich(bom: dict[str, Any], pins: Sequence[Pin], lock_name: str) -> dict[str, Any]:
    """Add the lock's hashes and canonical purls; the components must equal the pins."""
    by_name: dict[NormalizedName, Pin] = {pin.name: pin for pin in pins}
    seen: set[NormalizedName] = set()
    for component in bom.get("components", []):
        name = canonicalize_name(str(component.get("name", "")))
        pin = by_name.get(name)
        if pin is None:
            raise GateError(f"SBOM component {name} is not pinned in {lock_name}")
        if str(component.get("version")) != str(pin.version):
            raise GateError(
                f"SBOM component {name} {component.get('version')} differs from "
                f"{lock_name} ({pin.version})"
            )
        seen.add(name)
        component["purl"] = PackageURL(type="pypi", name=name, version=str(pin.version)).to_string()
        component["hashes"] = [
            {"alg": "SHA-256", "content": h.removeprefix("sha256:")} for h in sorted(pin.hashes)
        ]
        properties = [
            p for p in component.get("properties", []) if not str(p.get("name")).startswith("bot4:")
        ]
        properties += [
            {"name": "bot4:lock", "value": f"{lock_name}:{pin.line}"},
            {"name": "bot4:hashes", "value": HASHES_NOTE},
        ]
        component["properties"] = sorted(properties, key=lambda p: (p["name"], p["value"]))
    missing = sorted(set(by_name) - seen)
    if missing:
        raise GateError(f"{lock_name} pins {', '.join(missing)} but the SBOM has no such component")
    bom["components"] = sorted(bom.get("components", []), key=lambda c: str(c.get("purl")))
    return bom


def serialize(bom: Mapping[str, Any]) -> str:
    """Byte-stable JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(bom, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def validate(text: str) -> None:
    """Strict CycloneDX 1.6 JSON schema validation."""
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        first = str(error).splitlines()[0]
        raise GateError(f"generated SBOM is not valid CycloneDX {SPEC}: {first}")


def generate(
    root: Path, uv: str, lock: Path, pyproject: Path, index_args: Sequence[str] = ()
) -> str:
    """The SBOM text for ``lock``, built in a throwaway venv."""
    pins = read_lock(lock)
    with tempfile.TemporaryDirectory(prefix="bot4-sbom-") as tmp:
        python = install_runtime(uv, lock, Path(tmp) / "venv", index_args)
        bom = cyclonedx_environment(python, pyproject, Path(tmp) / "bom.json")
    rel = lock.relative_to(root) if lock.is_relative_to(root) else lock
    text = serialize(enrich(bom, pins, str(rel)))
    validate(text)
    return text


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
