"""``ci/pyproject.toml``'s ``dependencies``, generated from the root ``pyproject.toml``'s
``toolkit`` dependency group: one declaration (the one the locks are compiled from), never
a hand-kept copy.

``scripts/gate -s lock`` writes the list (``sync``); ``scripts/gate -s toolchain`` reports a
file that differs (``drift``). Only the ``dependencies = [...]`` array of ``[project]`` is
generated; every other byte of the file is kept as written. Standard library and
``packaging`` only: this runs in the runner's venv (``python -m ci.gate.lock``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from ci.compat import tomllib
from ci.errors import GateError
from ci.files import atomic_write

PATH = "ci/pyproject.toml"
GROUP = "toolkit"
REMEDY = "scripts/gate -s lock"


def declared(pyproject: Mapping[str, Any]) -> list[str] | None:
    """The ``toolkit`` group's requirements (None when the project has no such group)."""
    group = pyproject.get("dependency-groups", {}).get(GROUP)
    if group is None:
        return None
    if not isinstance(group, list):
        raise GateError(f"pyproject.toml: dependency group {GROUP!r} is not a list")
    out = []
    for item in group:
        if not isinstance(item, str):
            raise GateError(
                f"pyproject.toml: dependency group {GROUP!r} must list requirements only "
                f"(found {item!r}); {PATH} is generated from it"
            )
        try:
            Requirement(item)
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0]  # packaging adds a caret diagram below
            raise GateError(f"pyproject.toml: {GROUP!r} group: {item!r}: {reason}") from None
        out.append(item)
    return out


def _block(lines: Sequence[str]) -> tuple[int, int]:
    """(first, last) line index of ``[project]``'s ``dependencies = [...]``."""
    table = ""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            table = stripped
        elif table == "[project]" and stripped.split("=")[0].strip() == "dependencies":
            for j in range(i, len(lines)):
                if lines[j].split("#")[0].rstrip().endswith("]"):
                    return i, j
            break
    raise GateError(f"{PATH}: no [project] dependencies = [...] array to generate")


def render(text: str, requirements: Sequence[str]) -> str:
    """``text`` with its ``[project] dependencies`` array replaced by ``requirements``."""
    lines = text.splitlines(keepends=True)
    first, last = _block(lines)
    block = ["dependencies = [\n", *(f"  {json.dumps(r)},\n" for r in requirements), "]\n"]
    return "".join([*lines[:first], *block, *lines[last + 1 :]])


def _read(root: Path) -> tuple[list[str] | None, str]:
    try:
        pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GateError(f"pyproject.toml: unreadable ({exc})") from None
    requirements = declared(pyproject)
    if requirements is None:
        return None, ""
    try:
        text = (root / PATH).read_text(encoding="utf-8")
    except OSError as exc:
        raise GateError(f"{PATH}: unreadable ({exc.strerror}); run {REMEDY}") from None
    return requirements, text


def sync(root: Path) -> bool:
    """Write the generated list into ``ci/pyproject.toml``; True when the file changed."""
    requirements, text = _read(root)
    if requirements is None:
        return False
    wanted = render(text, requirements)
    if wanted == text:
        return False
    atomic_write(root / PATH, wanted)
    return True


def drift(root: Path) -> list[str]:
    """One line (with the remedy) when ``ci/pyproject.toml`` differs from the group."""
    try:
        requirements, text = _read(root)
        if requirements is None or render(text, requirements) == text:
            return []
    except GateError as exc:
        return [str(exc)]
    return [
        f"{PATH}'s dependencies differ from pyproject.toml's {GROUP!r} dependency group"
        f" (generated, not edited) — run {REMEDY}"
    ]
