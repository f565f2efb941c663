"""Signing keys for releases: the engine's secrets providers, so a release key can live
in a file, in AWS KMS or on a PKCS#11 token and the private half never leaves it.

A key is named ``BACKEND:KEY_ID`` (``file:release``, ``kms:release``, ``pkcs11:release``)
or just ``KEY_ID`` for the backend ``BOT4_SECRETS`` selects; each backend is configured
as the engine configures it (``BOT4_SECRETS_DIR``, ``BOT4_KMS_*``, ``BOT4_PKCS11_*``).
Signatures are ECDSA P-256 / SHA-256, DER-encoded — what cosign writes and verifies.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bot4.errors import Bot4Error
from bot4.infrastructure.secrets.interface import SecretsProvider
from bot4.infrastructure.secrets.selection import BACKEND_ENV, BACKENDS, provider_from_env
from ci.release.errors import ReleaseError


class Signer:
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


def open_signer(spec: str, environ: Mapping[str, str]) -> Signer:
    """``BACKEND:KEY_ID`` or ``KEY_ID`` (backend from ``BOT4_SECRETS``) → a ``Signer``."""
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
        return Signer(provider, key_id)
    except ReleaseError:
        provider.close()
        raise


@dataclass(frozen=True)
class PublicKey:
    """A trusted ECDSA P-256 public key (SubjectPublicKeyInfo PEM)."""

    pem: bytes

    def __post_init__(self) -> None:
        load_public_key(self.pem)

    @property
    def fingerprint(self) -> str:
        """``sha256:<hex>`` of the DER SubjectPublicKeyInfo: a stable name for the key."""
        der = load_public_key(self.pem).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "sha256:" + hashlib.sha256(der).hexdigest()

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` (DER) is this key's ECDSA-SHA256 signature of ``message``."""
        try:
            load_public_key(self.pem).verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True


def load_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """Parse a P-256 public key PEM, or a ``ReleaseError`` naming what is wrong."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ReleaseError("not a PEM public key (expected -----BEGIN PUBLIC KEY-----)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ReleaseError("the public key is not an ECDSA P-256 key; cosign keys are P-256")
    return key


def read_public_key(path: Path) -> PublicKey:
    """A public key from a PEM file."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ReleaseError(f"cannot read public key {path}: {exc.strerror}") from None
    try:
        return PublicKey(pem)
    except ReleaseError as exc:
        raise ReleaseError(f"{path}: {exc}") from None


def b64(data: bytes) -> str:
    """Standard base64 with padding (what cosign and DSSE use)."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    """Decode standard base64 strictly; a bad value is a ``ReleaseError`` naming ``what``."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ReleaseError(f"{what} is not valid base64") from None
