"""Release keys: the ``Signer`` protocol every signature goes through, and trusted public
keys. Signatures are ECDSA P-256 / SHA-256, DER-encoded — what cosign writes and verifies.

Why a protocol: signing needs four things of a key (its id, its public half, ``sign``,
``close``), so that is the whole interface the toolkit depends on. The implementation the
CLI uses, ``ci.release.bot4_signer``, adapts bot4's secrets backends (file, AWS KMS,
PKCS#11) so a release key lives where the engine's keys live; it is the only module of
``ci/`` that imports bot4, declared as bot4-ci's ``signing`` extra. Declaring
``bot4[kms,pkcs11]`` for all of the toolkit instead would tie signing, verifying and
deploying to engine internals, when verifying (public keys only) needs no engine at all.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ci.oci.digest import sha256
from ci.release.errors import ReleaseError


class Signer(Protocol):
    """A private key that signs where it lives (its private half never leaves it)."""

    key_id: str
    public_pem: bytes

    def sign(self, message: bytes) -> bytes:
        """A DER ECDSA P-256 signature of SHA-256(``message``)."""
        ...

    def close(self) -> None:
        """Release whatever the key holds open (a session, a client)."""
        ...


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
        return sha256(der)

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
