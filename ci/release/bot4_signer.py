"""Release keys held in bot4's secrets backends (``file``, AWS ``kms``, ``pkcs11``), as
``ci.release.keys.Signer``: the private half never leaves its backend.

The one module of ``ci/`` that imports the engine (``tests/structure`` holds it so), and
through the backends' public face only (selection, the provider interface, the file
backend); bot4-ci declares it as the ``signing`` extra (``bot4[kms,pkcs11]``).

A key is named ``BACKEND:KEY_ID`` (``file:release``, ``kms:release``, ``pkcs11:release``)
or just ``KEY_ID`` for the backend ``BOT4_SECRETS`` selects; each backend is configured
as the engine configures it (``BOT4_SECRETS_DIR``, ``BOT4_KMS_*``, ``BOT4_PKCS11_*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bot4.errors import Bot4Error
from bot4.infrastructure.secrets.file import FileSecrets
from bot4.infrastructure.secrets.interface import SecretsProvider
from bot4.infrastructure.secrets.selection import BACKEND_ENV, BACKENDS, provider_from_env
from ci.release.errors import ReleaseError


class BackendSigner:
    """A key that signs inside its backend; holds the provider (a session or client)."""

    def __init__(self, provider: SecretsProvider, key_id: str) -> None:
        self._provider = provider
        self.key_id = key_id
        try:
            self.public_pem = provider.public_key_pem(key_id)
        except Bot4Error as exc:
            raise ReleaseError(f"signing key {key_id!r} ({provider.backend}): {exc}") from None

    def __repr__(self) -> str:
        return f"Signer({self._provider.backend}:{self.key_id})"

    def sign(self, message: bytes) -> bytes:
        """A DER ECDSA P-256 signature of SHA-256(``message``), made inside the backend."""
        try:
            return self._provider.sign(self.key_id, message).der
        except Bot4Error as exc:
            raise ReleaseError(f"signing with {self!r} failed: {exc}") from None

    def close(self) -> None:
        """Release the backend's session."""
        self._provider.close()


def open_signer(spec: str, environ: Mapping[str, str]) -> BackendSigner:
    """``BACKEND:KEY_ID`` or ``KEY_ID`` (backend from ``BOT4_SECRETS``) → a signer."""
    backend, sep, key_id = spec.partition(":")
    if not sep:
        backend, key_id = environ.get(BACKEND_ENV, "file"), spec
    if backend not in BACKENDS or not key_id:
        raise ReleaseError(
            f"invalid signing key {spec!r}: use BACKEND:KEY_ID with BACKEND one of "
            f"{', '.join(BACKENDS)} (e.g. kms:release)"
        )
    try:
        provider = provider_from_env({**environ, BACKEND_ENV: backend})
    except Bot4Error as exc:
        raise ReleaseError(f"signing key {spec!r}: {exc}") from None
    try:
        return BackendSigner(provider, key_id)
    except ReleaseError:
        provider.close()
        raise


def create_file_key(directory: Path, name: str) -> None:
    """A new ECDSA P-256 key ``name`` in a ``file`` backend directory (throwaway keys for
    the deploy check)."""
    FileSecrets(directory).create_signing_key(name)
