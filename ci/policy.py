"""Reading one section of ``ci/policy.toml`` (the analogue of cargo-deny's deny.toml).

Each command owns its section; this module only turns a missing or malformed file into
one actionable line instead of a traceback.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ci.compat import tomllib
from ci.errors import GateError


def load_section(path: Path, section: str) -> dict[str, Any]:
    """The ``[section]`` table of a policy file; an absent section is an empty table."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(f"{path}: policy file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GateError(f"{path}: malformed policy TOML: {exc}") from None
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise GateError(f"{path}: [{section}] must be a table")
    return table


def strings(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A list of strings, or an empty tuple when the key is absent."""
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GateError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def text(entry: Mapping[str, Any], key: str, where: str) -> str:
    """A required non-empty string field of a policy entry."""
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise GateError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def entries(table: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    """An array of tables (``[[section.key]]`` or ``key = [{…}]``)."""
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise GateError(f"{where}: {key} must be an array of tables")
    return value


def date(entry: Mapping[str, Any], key: str, where: str) -> dt.date:
    """A TOML date (``2027-01-31``, unquoted) or an ISO date string."""
    value = entry.get(key)
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise GateError(f"{where}: {key} must be a date like 2027-01-31")
