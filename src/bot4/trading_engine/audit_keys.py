"""The audit log's checkpoint key, from the configured secrets backend.

Checkpoints are C2SP signed notes, which sign with Ed25519. Of the secrets backends only
``file`` holds Ed25519 keys: the AWS KMS and PKCS#11 backends here create and use ECDSA
P-256 keys (what moto and SoftHSM exercise), so with them ``bot4 run`` refuses to start
with signed audit rather than sign with something a signed-note verifier cannot check.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial

from bot4.infrastructure.secrets.file import FileSecrets
from bot4.infrastructure.secrets.interface import SecretsError
from bot4.infrastructure.secrets.selection import BACKEND_ENV, default_secrets_dir
from bot4.trading_engine.checkpoint import NoteSigner, NoteVerifier
from bot4.trading_engine.errors import AuditError

KEY_ENV = "BOT4_AUDIT_KEY"
DEFAULT_KEY_ID = "audit-checkpoint"


def key_id_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``BOT4_AUDIT_KEY`` or ``audit-checkpoint``."""
    env = os.environ if environ is None else environ
    return env.get(KEY_ENV) or DEFAULT_KEY_ID


def _is_file(environ: Mapping[str, str]) -> bool:
    return (environ.get(BACKEND_ENV, "file").strip().lower() or "file") == "file"


def _file_backend(environ: Mapping[str, str], *, create_dir: bool = False) -> FileSecrets:
    if not _is_file(environ):
        backend = environ.get(BACKEND_ENV, "")
        raise AuditError(
            f"audit checkpoints need an Ed25519 key, which only {BACKEND_ENV}=file provides "
            f"(the {backend} backend signs ECDSA P-256 only)"
        )
    directory = default_secrets_dir(environ)
    if create_dir:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return FileSecrets(directory)
    except SecretsError as exc:
        raise AuditError(str(exc)) from None


def load_signer(key_id: str, environ: Mapping[str, str] | None = None) -> NoteSigner:
    """The checkpoint signer named ``key_id``; the private key stays with the backend."""
    env = os.environ if environ is None else environ
    try:
        secrets = _file_backend(env)  # a non-file backend is refused as it is, without a remedy
        public = secrets.ed25519_public(key_id)
    except (SecretsError, AuditError) as exc:
        if not _is_file(env):
            raise
        raise AuditError(
            f"no audit signing key ({exc}); create one with: bot4 audit keygen --key-id "
            f"{key_id} (or run with --unsigned-audit)"
        ) from None
    return NoteSigner(key_id, public, partial(secrets.sign_ed25519, key_id))


def keygen(key_id: str, environ: Mapping[str, str] | None = None) -> NoteVerifier:
    """Create the key in the file backend and return its public verifier."""
    env = os.environ if environ is None else environ
    secrets = _file_backend(env, create_dir=True)
    try:
        secrets.create_ed25519_key(key_id)
        return NoteVerifier(secrets.ed25519_public(key_id), key_id)
    except SecretsError as exc:
        raise AuditError(str(exc)) from None
