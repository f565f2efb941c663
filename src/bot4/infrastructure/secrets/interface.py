"""The secrets provider interface: key operations that never hand out private keys.

Backends (``file``, ``kms``, ``pkcs11``) implement the same operations, so the gate's
override key and the toolkit's image-signing key work with any of them: encrypt and
decrypt (envelope data keys), and ECDSA P-256 / SHA-256 signatures whose private key
stays inside the backend. Secret bytes travel as ``SecretBytes``, whose repr never
shows them, and no error message or log line includes key material or plaintext.
"""

from __future__ import annotations

import abc
import hmac
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Final, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bot4.infrastructure.errors import InfrastructureError

SIGNING_ALGORITHM: Final = "ECDSA_SHA_256"
"""ECDSA over NIST P-256 with SHA-256; signatures are DER-encoded (as AWS KMS returns them)."""


class SecretsError(InfrastructureError):
    """A secrets backend refused or failed (messages name key ids, never secret material)."""


class MissingKeyError(SecretsError):
    """The backend holds no key of that name (creating one mends it)."""


class KeyTypeError(SecretsError):
    """The backend holds a key of that name, but not of the kind asked for."""


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class SecretBytes:
    """Secret material that does not leak through ``repr``/``str``/logging."""

    _value: bytes = field(repr=False)

    def reveal(self) -> bytes:
        """The secret bytes; call it where they are used, never to log or print."""
        return self._value

    def equals(self, other: bytes | SecretBytes) -> bool:
        """Constant-time comparison."""
        raw = other.reveal() if isinstance(other, SecretBytes) else other
        return hmac.compare_digest(self._value, raw)

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"SecretBytes(<redacted, {len(self._value)} bytes>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class DataKey:
    """An envelope key: use ``plaintext`` locally, store only ``ciphertext`` next to the data."""

    key_id: str
    plaintext: SecretBytes
    ciphertext: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Signature:
    """A DER-encoded ECDSA P-256 signature made by ``key_id``."""

    key_id: str
    der: bytes
    algorithm: str = SIGNING_ALGORITHM


class SecretsProvider(abc.ABC):
    """One secrets backend, chosen by ``BOT4_SECRETS`` (``selection.provider_from_env``)."""

    backend: ClassVar[str]

    @abc.abstractmethod
    def create_signing_key(self, key_id: str) -> None:
        """Create an ECDSA P-256 signing key named ``key_id`` inside the backend."""

    @abc.abstractmethod
    def create_encryption_key(self, key_id: str) -> None:
        """Create a symmetric (AES-256) key named ``key_id`` inside the backend."""

    @abc.abstractmethod
    def encrypt(self, key_id: str, plaintext: bytes | SecretBytes) -> bytes:
        """Encrypt with ``key_id``; the ciphertext is only meaningful to this backend."""

    @abc.abstractmethod
    def decrypt(self, key_id: str, ciphertext: bytes) -> SecretBytes:
        """Decrypt; a wrong key or tampered ciphertext is a ``SecretsError``."""

    @abc.abstractmethod
    def generate_data_key(self, key_id: str) -> DataKey:
        """A fresh 256-bit data key, plus its ciphertext under ``key_id``."""

    @abc.abstractmethod
    def sign(self, key_id: str, message: bytes) -> Signature:
        """Sign ``message`` (SHA-256 over the whole message) inside the backend."""

    @abc.abstractmethod
    def verify(self, key_id: str, message: bytes, signature: Signature) -> bool:
        """True when ``signature`` is ``key_id``'s signature of ``message``."""

    @abc.abstractmethod
    def public_key_pem(self, key_id: str) -> bytes:
        """The signing key's public half (SubjectPublicKeyInfo PEM) for offline checks."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release sessions or connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def verify_offline(public_key_pem: bytes, message: bytes, signature: Signature) -> bool:
    """Check a signature with only the public key (no backend access needed)."""
    if signature.algorithm != SIGNING_ALGORITHM:
        return False
    key = load_pem_public_key(public_key_pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SecretsError("the public key is not an elliptic-curve key; expected NIST P-256")
    try:
        key.verify(signature.der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def check_key_id(key_id: str) -> str:
    """Key ids are names (letters, digits, ``._-``, 1–128 chars); refuse anything else."""
    if (
        not isinstance(key_id, str)
        or not 1 <= len(key_id) <= 128
        or key_id.startswith(".")
        or not all(c.isascii() and (c.isalnum() or c in "._-") for c in key_id)
    ):
        raise SecretsError(
            f"invalid key id {key_id!r}: use 1-128 letters, digits, '.', '_' or '-' "
            "(not starting with '.')"
        )
    return key_id
