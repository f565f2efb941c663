"""The ``file`` backend: keys in a private directory, for local use and tests.

Layout: ``<dir>/<key_id>.ec.pem`` (an unencrypted PKCS#8 P-256 private key) and
``<dir>/<key_id>.aes`` (32 random bytes). The directory must be owned by the user
and closed to group and others (0700), every key file too (0600); anything more
open is refused with the ``chmod`` to run. New keys are written to a temporary file
and renamed into place, never overwriting an existing key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot4.infrastructure.secrets.interface import (
    DataKey,
    SecretBytes,
    SecretsError,
    SecretsProvider,
    Signature,
    check_key_id,
    verify_offline,
)

_MAGIC = b"B4F1"
_NONCE = 12


def _check_private(path: Path, kind: str, want: int) -> os.stat_result:
    info = path.lstat()  # FileNotFoundError is the caller's to explain
    if stat.S_ISLNK(info.st_mode):
        raise SecretsError(f"{kind} {path} is a symbolic link; secrets must be regular files")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise SecretsError(
            f"{kind} {path} is accessible by group or others (mode {mode:04o}); "
            f"run: chmod {want:o} {path}"
        )
    if info.st_uid != os.getuid():
        raise SecretsError(f"{kind} {path} is owned by uid {info.st_uid}, not by this user")
    return info


class FileSecrets(SecretsProvider):
    """Keys as private files in one directory (``BOT4_SECRETS_DIR``)."""

    backend = "file"

    def __init__(self, directory: Path) -> None:
        try:
            info = _check_private(directory, "secrets directory", 0o700)
        except FileNotFoundError:
            raise SecretsError(
                f"secrets directory {directory} does not exist; create it with "
                f"mkdir -m 700 {directory}"
            ) from None
        if not stat.S_ISDIR(info.st_mode):
            raise SecretsError(f"secrets directory {directory} is not a directory")
        self._dir = directory

    def __repr__(self) -> str:
        return f"FileSecrets({str(self._dir)!r})"

    def _read(self, key_id: str, suffix: str, kind: str) -> bytes:
        path = self._dir / f"{check_key_id(key_id)}{suffix}"
        try:
            _check_private(path, "key file", 0o600)
        except FileNotFoundError:
            raise SecretsError(
                f"no {kind} key {key_id!r} in {self._dir}; create it first"
            ) from None
        return path.read_bytes()

    def _write(self, key_id: str, suffix: str, data: bytes) -> None:
        path = self._dir / f"{check_key_id(key_id)}{suffix}"
        if path.exists():
            raise SecretsError(
                f"key {key_id!r} already exists in {self._dir}; refusing to replace it"
            )
        temp = path.with_name(f".{path.name}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        temp.replace(path)

    def _aes(self, key_id: str) -> AESGCM:
        return AESGCM(self._read(key_id, ".aes", "encryption"))

    def _private(self, key_id: str) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self._read(key_id, ".ec.pem", "signing"), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SecretsError(f"signing key {key_id!r} is not an elliptic-curve key")
        return key

    def create_signing_key(self, key_id: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._write(key_id, ".ec.pem", pem)

    def create_encryption_key(self, key_id: str) -> None:
        self._write(key_id, ".aes", AESGCM.generate_key(bit_length=256))

    def encrypt(self, key_id: str, plaintext: bytes | SecretBytes) -> bytes:
        raw = plaintext.reveal() if isinstance(plaintext, SecretBytes) else plaintext
        nonce = os.urandom(_NONCE)
        return _MAGIC + nonce + self._aes(key_id).encrypt(nonce, raw, key_id.encode())

    def decrypt(self, key_id: str, ciphertext: bytes) -> SecretBytes:
        aes = self._aes(key_id)
        if not ciphertext.startswith(_MAGIC) or len(ciphertext) < len(_MAGIC) + _NONCE + 16:
            raise SecretsError(
                f"cannot decrypt with key {key_id!r}: not a bot4 file-backend ciphertext"
            )
        nonce = ciphertext[len(_MAGIC) : len(_MAGIC) + _NONCE]
        try:
            return SecretBytes(
                aes.decrypt(nonce, ciphertext[len(_MAGIC) + _NONCE :], key_id.encode())
            )
        except InvalidTag:
            raise SecretsError(
                f"cannot decrypt with key {key_id!r}: wrong key or corrupted ciphertext"
            ) from None

    def generate_data_key(self, key_id: str) -> DataKey:
        plaintext = SecretBytes(AESGCM.generate_key(bit_length=256))
        return DataKey(key_id, plaintext, self.encrypt(key_id, plaintext))

    def sign(self, key_id: str, message: bytes) -> Signature:
        der = self._private(key_id).sign(message, ec.ECDSA(hashes.SHA256()))
        return Signature(key_id, der)

    def verify(self, key_id: str, message: bytes, signature: Signature) -> bool:
        return verify_offline(self.public_key_pem(key_id), message, signature)

    def public_key_pem(self, key_id: str) -> bytes:
        return (
            self._private(key_id)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    # Ed25519 keys (also on PKCS#11 tokens and in AWS KMS): the audit log's C2SP
    # signed-note checkpoints need Ed25519.

    def create_ed25519_key(self, key_id: str) -> None:
        """Create an Ed25519 signing key ``<dir>/<key_id>.ed25519.pem`` (0600, never replaced)."""
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._write(key_id, ".ed25519.pem", pem)

    def _ed25519(self, key_id: str) -> ed25519.Ed25519PrivateKey:
        key = serialization.load_pem_private_key(
            self._read(key_id, ".ed25519.pem", "Ed25519 signing"), None
        )
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise SecretsError(f"signing key {key_id!r} is not an Ed25519 key")
        return key

    def ed25519_public(self, key_id: str) -> ed25519.Ed25519PublicKey:
        """The public half of an Ed25519 key."""
        return self._ed25519(key_id).public_key()

    def sign_ed25519(self, key_id: str, message: bytes) -> bytes:
        """A raw 64-byte Ed25519 signature of ``message``."""
        return self._ed25519(key_id).sign(message)
