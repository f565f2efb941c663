"""The audit log's checkpoint key, from the configured secrets backend.

Checkpoints are C2SP signed notes, which sign with Ed25519. The ``file`` backend keeps the
key in a 0600 PEM file; the ``pkcs11`` backend keeps it on the token (``CKK_EC_EDWARDS``,
signed in the token with ``CKM_EDDSA``); the ``kms`` backend in AWS KMS (key spec
``ECC_NIST_EDWARDS25519``, ``ED25519_SHA_512`` over the RAW note body). With a token or
KMS the private key never leaves it, so what comes back is checked here: the key must be
an Ed25519 signing key, a probe signature is made and verified before the log is opened,
and every checkpoint signature is verified against the public key before it is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot4.errors import Bot4Error
from bot4.infrastructure.secrets.file import FileSecrets
from bot4.infrastructure.secrets.interface import KeyTypeError, MissingKeyError, SecretsError
from bot4.infrastructure.secrets.selection import BACKEND_ENV, backend_name, default_secrets_dir
from bot4.trading_engine.checkpoint import NoteSigner, NoteVerifier
from bot4.trading_engine.errors import AuditError

KEY_ENV = "BOT4_AUDIT_KEY"
DEFAULT_KEY_ID = "audit-checkpoint"
# Signed once at start-up and verified, so a backend that signs wrongly is refused before
# the log is opened. One line, so it is not a checkpoint body (those have three).
PROBE = b"bot4 audit checkpoint key check\n"


class Ed25519Backend(Protocol):
    """The Ed25519 operations ``FileSecrets``, ``Pkcs11Secrets`` and ``KmsSecrets`` share."""

    def create_ed25519_key(self, key_id: str) -> None: ...
    def ed25519_public(self, key_id: str) -> Ed25519PublicKey: ...
    def sign_ed25519(self, key_id: str, message: bytes) -> bytes: ...
    def close(self) -> None: ...


def key_id_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``BOT4_AUDIT_KEY`` or ``audit-checkpoint``."""
    env = os.environ if environ is None else environ
    return env.get(KEY_ENV) or DEFAULT_KEY_ID


def ed25519_backend(environ: Mapping[str, str], *, create_dir: bool = False) -> Ed25519Backend:
    """The configured backend that holds Ed25519 keys (``file``, ``pkcs11`` or ``kms``)."""
    try:
        choice = backend_name(environ)
    except Bot4Error as exc:
        raise AuditError(str(exc)) from None
    try:
        if choice == "kms":
            from bot4.infrastructure.secrets.kms import KmsSecrets  # noqa: PLC0415

            return KmsSecrets(KmsSecrets.client_from_env(environ))
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
        # KMS: only a missing key is mended by keygen (not a denial, nor another key type).
        if isinstance(exc, KeyTypeError) or (
            backend_name(env) == "kms" and not isinstance(exc, MissingKeyError)
        ):
            raise AuditError(f"audit key {key_id!r}: {exc}") from None
        raise AuditError(f"no audit signing key ({exc}); {remedy}") from None
    sign = partial(_checked_signature, partial(secrets.sign_ed25519, key_id), public, key_id)
    try:
        sign(PROBE)
    except AuditError:
        secrets.close()
        raise
    return NoteSigner(key_id, public, sign, secrets.close)


def _checked_signature(
    sign: Callable[[bytes], bytes], public: Ed25519PublicKey, key_id: str, message: bytes
) -> bytes:
    """The backend's signature of ``message``, only if it verifies with ``public``."""
    try:
        signature = sign(message)
    except SecretsError as exc:
        raise AuditError(f"audit checkpoint signing failed: {exc}") from None
    try:
        public.verify(signature, message)
    except InvalidSignature:
        raise AuditError(
            f"audit key {key_id!r}: the secrets backend returned a signature that does not "
            "verify with the key's public half; refusing to write a checkpoint with it"
        ) from None
    return signature


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
