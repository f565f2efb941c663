"""The engine's environment settings, read and checked once at start-up by every command.

Why up front: a setting that is only parsed when the code that uses it runs is accepted
silently by every command that does not (``doctor``, ``simulate``), and fails late in the one
that does. ``bot4`` calls :func:`load_settings` before any subcommand runs, so a bad value is
one line and a non-zero exit whatever the command, and ``bot4 doctor`` prints the result.
Reading never contacts anything: the secrets backend is named here, built where it is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from bot4.infrastructure.errors import ConfigError
from bot4.infrastructure.metrics import ADDRESS_ENV, PORT_ENV, MetricsEndpoint
from bot4.infrastructure.platform import FORCE_SCALAR_ENV, force_scalar
from bot4.infrastructure.secrets.selection import (
    BACKEND_ENV,
    DIR_ENV,
    backend_name,
    default_secrets_dir,
)

# Settings that no longer do anything: refused, so nobody tunes a knob that is not connected.
RETIRED = {
    "BOT4_TLS_CACHE_SIZE": (
        "bot4 makes no TLS client contexts of its own (the KMS client's TLS is boto3's), "
        "so the per-thread TLS cache it sized was removed"
    ),
}


@dataclass(frozen=True, slots=True)
class Setting:
    """One effective setting: its variable, the value in force and where it came from."""

    name: str
    value: str
    source: str  # "env" or "default"


def load_settings(environ: Mapping[str, str] | None = None) -> tuple[Setting, ...]:
    """Every engine setting in force; a bad or retired one raises ``ConfigError``."""
    env = os.environ if environ is None else environ
    for name, why in RETIRED.items():
        if name in env:
            raise ConfigError(f"{name} is no longer read: {why}; unset it (unset {name})")

    def source(*names: str) -> str:
        return "env" if any(env.get(n, "").strip() for n in names) else "default"

    endpoint = MetricsEndpoint.from_env(env)
    return (
        Setting(FORCE_SCALAR_ENV, str(force_scalar(env)).lower(), source(FORCE_SCALAR_ENV)),
        Setting(ADDRESS_ENV, endpoint.address, source(ADDRESS_ENV)),
        Setting(PORT_ENV, str(endpoint.port), source(PORT_ENV)),
        Setting(BACKEND_ENV, backend_name(env), source(BACKEND_ENV)),
        Setting(DIR_ENV, str(default_secrets_dir(env)), source(DIR_ENV)),
    )


def format_settings(settings: tuple[Setting, ...]) -> str:
    """One ``NAME = value (source)`` line per setting."""
    width = max(len(s.name) for s in settings)
    return "\n".join(f"{s.name:<{width}} = {s.value} ({s.source})" for s in settings)
