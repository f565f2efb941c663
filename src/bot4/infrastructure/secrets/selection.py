"""Pick the secrets backend from ``BOT4_SECRETS`` (``file`` by default, ``kms`` or ``pkcs11``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bot4.infrastructure.errors import ConfigError
from bot4.infrastructure.secrets.interface import SecretsProvider

BACKEND_ENV = "BOT4_SECRETS"
DIR_ENV = "BOT4_SECRETS_DIR"
BACKENDS = ("file", "kms", "pkcs11")


def default_secrets_dir(environ: Mapping[str, str]) -> Path:
    """``BOT4_SECRETS_DIR``, else ``$XDG_CONFIG_HOME/bot4/secrets`` (``~/.config/bot4/secrets``)."""
    if environ.get(DIR_ENV):
        return Path(environ[DIR_ENV])
    base = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else None
    return (base or Path.home() / ".config") / "bot4" / "secrets"


def backend_name(environ: Mapping[str, str]) -> str:
    """The backend ``BOT4_SECRETS`` names (default ``file``); unknown → ``ConfigError``."""
    choice = environ.get(BACKEND_ENV, "file").strip().lower() or "file"
    if choice not in BACKENDS:
        raise ConfigError(f"{BACKEND_ENV} must be one of {', '.join(BACKENDS)}; got {choice!r}")
    return choice


def provider_from_env(environ: Mapping[str, str] | None = None) -> SecretsProvider:
    """The configured backend; an unknown ``BOT4_SECRETS`` is a ``ConfigError``."""
    env = os.environ if environ is None else environ
    choice = backend_name(env)
    if choice == "file":
        from bot4.infrastructure.secrets.file import FileSecrets  # noqa: PLC0415

        return FileSecrets(default_secrets_dir(env))
    if choice == "kms":
        from bot4.infrastructure.secrets.kms import KmsSecrets  # noqa: PLC0415

        return KmsSecrets(KmsSecrets.client_from_env(env))
    from bot4.infrastructure.secrets.pkcs11 import Pkcs11Secrets  # noqa: PLC0415

    return Pkcs11Secrets.from_env(env)
