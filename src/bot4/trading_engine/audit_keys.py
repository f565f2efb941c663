"""The audit log's checkpoint key, from the configured secrets backend.

Checkpoints are C2SP signed notes, which sign with Ed25519. The ``file`` backend keeps the
key in a 0600 PEM file; the ``pkcs11`` backend keeps it on the token (``CKK_EC_EDWARDS``,
signed in the token with ``CKM_EDDSA``): the private key never leaves it. AWS KMS offers
Ed25519 keys (key spec ``ECC_NIST_EDWARDS25519``, algorithm ``ED25519_SHA_512``), but the
moto this project tests KMS against (5.2.5) rejects that key spec, so the ``kms`` backend
is refused for checkpoints rather than shipped untested.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot4.errors import Bot4Error
from bot4.infrastructure.secrets.file import FileSecrets
from bot4.infrastructure.secrets.interface import SecretsError
from bot4.infrastructure.secrets.selection import BACKEND_ENV, backend_name, default_secrets_dir
from bot4.trading_engine.checkpoint import NoteSigner, NoteVerifier
from bot4.trading_engine.errors import AuditError

KEY_ENV = "BOT4_AUDIT_KEY"
DEFAULT_KEY_ID = "audit-checkpoint"
KMS_REFUSAL = (
    f"{BACKEND_ENV}=kms cannot sign audit checkpoints: they need an Ed25519 key, and AWS "
    "KMS's (ECC_NIST_EDWARDS25519 / ED25519_SHA_512) is untested here because moto 5.2.5 "
    f"does not support it; use {BACKEND_ENV}=file or {BACKEND_ENV}=pkcs11"
)


class Ed25519Backend(Protocol):
    """The three Ed25519 operations ``FileSecrets`` and ``Pkcs11Secrets`` share."""

    def create_ed25519_key(self, key_id: str) -> None: ...
    def ed25519_public(self, key_id: str) -> Ed25519PublicKey: ...
    def sign_ed25519(self, key_id: str, message: bytes) -> bytes: ...
    def close(self) -> None: ...


def key_id_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``BOT4_AUDIT_KEY`` or ``audit-checkpoint``."""
    env = os.environ if environ is None else environ
    return env.get(KEY_ENV) or DEFAULT_KEY_ID


def ed25519_backend(environ: Mapping[str, str], *, create_dir: bool = False) -> Ed25519Backend:
    """The configured backend that holds Ed25519 keys (``file`` or ``pkcs11``)."""
    try:
        choice = backend_name(environ)
    except Bot4Error as exc:
        raise AuditError(str(exc)) from None
    if choice == "kms":
        raise AuditError(KMS_REFUSAL)
    try:
        if choice == "pkcs11":
            from bot4.infrastructure.secrets.pkcs11 import Pkcs11Secrets  # noqa: PLC0415

            return Pkcs11Secrets.from_env(environ)
        directory = default_secrets_dir(environ)
        if create_dir:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return FileSecrets(directory)
    except Bot4Error as exc:
        raise AuditError(str(exc)) from None


def load_signer(key_id: str, environ: Mapping[str, str] | None = None) -> NoteSigner:
    """The checkpoint signer named ``key_id``; the private key stays with the backend
    (``close()`` the signer to release it)."""
    env = os.environ if environ is None else environ
    remedy = f"create one with: bot4 audit keygen --key-id {key_id} (or run with --unsigned-audit)"
    try:
        secrets = ed25519_backend(env)
    except AuditError as exc:
        if (env.get(BACKEND_ENV, "file").strip().lower() or "file") != "file":
            raise  # kms, a pkcs11 setup keygen would not mend, a bad name: refused as it is
        raise AuditError(f"no audit signing key ({exc}); {remedy}") from None  # no directory
    try:
        public = secrets.ed25519_public(key_id)
    except SecretsError as exc:
        secrets.close()
        raise AuditError(f"no audit signing key ({exc}); {remedy}") from None
    return NoteSigner(key_id, public, partial(secrets.sign_ed25519, key_id), secrets.close)


def keygen(key_id: str, environ: Mapping[str, str] | None = None) -> NoteVerifier:
    """Create the key in the configured backend and return its public verifier."""
    env = os.environ if environ is None else environ
    secrets = ed25519_backend(env, create_dir=True)
    try:
        secrets.create_ed25519_key(key_id)
        return NoteVerifier(secrets.ed25519_public(key_id), key_id)
    except SecretsError as exc:
        raise AuditError(str(exc)) from None
    finally:
        secrets.close()
