"""The ``pkcs11`` backend: a hardware or cloud HSM (SoftHSM2 in tests) via python-pkcs11.

Keys are token objects found by label (= key id). Signing hashes with SHA-256 here
and signs the digest with ``CKM_ECDSA`` inside the token (SoftHSM2 lacks
``CKM_ECDSA_SHA256``); signatures are DER-encoded like AWS KMS's. Encryption is
AES-256-GCM inside the token with a random 96-bit nonce and the key id as
associated data. Ed25519 keys (``CKK_EC_EDWARDS``, signed with ``CKM_EDDSA`` inside the
token, raw 64-byte signatures) sign the audit log's C2SP signed-note checkpoints.
One logged-in session is shared behind a lock (PKCS#11 sessions
are not thread-safe). PKCS#11 logins are per process: while one provider is open,
another provider for the same token reuses that login.

Configuration: ``BOT4_PKCS11_LIBRARY`` (module path), ``BOT4_PKCS11_TOKEN`` (token
label), ``BOT4_PKCS11_PIN_FILE`` (a 0600 file holding the user PIN).
"""

from __future__ import annotations

import hashlib
import stat
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import NoSuchKey, PKCS11Error, UserAlreadyLoggedIn
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import (
    decode_ecdsa_signature,
    encode_ec_public_key,
    encode_ecdsa_signature,
    encode_named_curve_parameters,
)

from bot4.infrastructure.errors import ConfigError
from bot4.infrastructure.secrets.interface import (
    SIGNING_ALGORITHM,
    DataKey,
    SecretBytes,
    SecretsError,
    SecretsProvider,
    Signature,
    check_key_id,
)

LIBRARY_ENV = "BOT4_PKCS11_LIBRARY"
LABEL_ENV = "BOT4_PKCS11_TOKEN"
PIN_FILE_ENV = "BOT4_PKCS11_PIN_FILE"
_MAGIC = b"B4P1"
_NONCE_BITS = 96
_NONCE = _NONCE_BITS // 8
# CKA_EC_PARAMS of an Ed25519 key: DER of the OID id-Ed25519 {1 3 101 112}, RFC 8410.
_ED25519_PARAMS = bytes.fromhex("06032b6570")
_ED25519_LEN = 32

R = TypeVar("R")


def ed25519_point(value: bytes) -> bytes | None:
    """The 32-byte key of a ``CKA_EC_POINT``: a DER OCTET STRING (PKCS#11 3.0, SoftHSM2)
    or, as some tokens return it, the raw bytes; None when it is neither."""
    if len(value) == _ED25519_LEN + 2 and value[:2] == b"\x04\x20":
        return value[2:]
    return value if len(value) == _ED25519_LEN else None


def read_pin_file(path: Path) -> SecretBytes:
    """The PIN from a private file (0600, owned by this user); trailing newline ignored."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise ConfigError(f"PKCS#11 PIN file {path} does not exist; set {PIN_FILE_ENV}") from None
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode) or mode & 0o077:
        raise SecretsError(
            f"PKCS#11 PIN file {path} must be a regular file closed to group and others "
            f"(mode {mode:04o}); run: chmod 600 {path}"
        )
    return SecretBytes(path.read_bytes().rstrip(b"\r\n"))


class Pkcs11Secrets(SecretsProvider):
    """Keys on a PKCS#11 token; private and secret keys are created non-extractable."""

    backend = "pkcs11"

    def __init__(self, library: str, token_label: str, pin: SecretBytes) -> None:
        self._token = token_label
        self._lock = threading.Lock()
        try:
            lib = pkcs11.lib(library)
        except PKCS11Error as exc:
            raise ConfigError(
                f"cannot load the PKCS#11 module {library}: {exc}; set {LIBRARY_ENV}"
            ) from None
        try:
            token = lib.get_token(token_label=token_label)
            try:
                self._session = token.open(user_pin=pin.reveal().decode(), rw=True)
            except UserAlreadyLoggedIn:
                # PKCS#11 logins are per process: another session of ours already logged in.
                self._session = token.open(rw=True)
        except PKCS11Error as exc:
            raise SecretsError(
                f"cannot open a session on PKCS#11 token {token_label!r}: {type(exc).__name__}"
            ) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Pkcs11Secrets:
        """Build from ``BOT4_PKCS11_LIBRARY``, ``BOT4_PKCS11_TOKEN``, ``BOT4_PKCS11_PIN_FILE``."""
        missing = [name for name in (LIBRARY_ENV, LABEL_ENV, PIN_FILE_ENV) if not environ.get(name)]
        if missing:
            raise ConfigError(f"the pkcs11 secrets backend needs {', '.join(missing)}")
        pin = read_pin_file(Path(environ[PIN_FILE_ENV]))
        return cls(environ[LIBRARY_ENV], environ[LABEL_ENV], pin)

    def __repr__(self) -> str:
        return f"Pkcs11Secrets(token={self._token!r})"

    def close(self) -> None:
        with self._lock:
            self._session.close()

    def _run(self, operation: str, key_id: str, call: Callable[[], R]) -> R:
        check_key_id(key_id)
        with self._lock:
            try:
                return call()
            except NoSuchKey:
                raise SecretsError(
                    f"PKCS#11 {operation}: no suitable key labelled {key_id!r} on token "
                    f"{self._token!r}; create it first"
                ) from None
            except PKCS11Error as exc:
                raise SecretsError(
                    f"PKCS#11 {operation} with key {key_id!r} failed: {type(exc).__name__}"
                ) from None

    def _key(self, key_id: str, object_class: ObjectClass, key_type: KeyType) -> Any:  # noqa: ANN401
        return self._session.get_key(label=key_id, object_class=object_class, key_type=key_type)

    def _refuse_existing(self, key_id: str) -> None:
        if any(True for _ in self._session.get_objects({Attribute.LABEL: key_id})):
            raise SecretsError(
                f"key {key_id!r} already exists on token {self._token!r}; refusing to add another"
            )

    def create_signing_key(self, key_id: str) -> None:
        def create() -> None:
            self._refuse_existing(key_id)
            params = self._session.create_domain_parameters(
                KeyType.EC,
                {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True,
            )
            params.generate_keypair(store=True, label=key_id)

        self._run("create signing key", key_id, create)

    def create_encryption_key(self, key_id: str) -> None:
        def create() -> None:
            self._refuse_existing(key_id)
            self._session.generate_key(KeyType.AES, 256, store=True, label=key_id)

        self._run("create encryption key", key_id, create)

    def encrypt(self, key_id: str, plaintext: bytes | SecretBytes) -> bytes:
        raw = plaintext.reveal() if isinstance(plaintext, SecretBytes) else plaintext

        def encrypt() -> bytes:
            key = self._key(key_id, ObjectClass.SECRET_KEY, KeyType.AES)
            nonce: bytes = self._session.generate_random(_NONCE_BITS)
            params = GCMParams(nonce, key_id.encode(), 128)
            body: bytes = key.encrypt(raw, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            return _MAGIC + nonce + body

        return self._run("encrypt", key_id, encrypt)

    def decrypt(self, key_id: str, ciphertext: bytes) -> SecretBytes:
        if not ciphertext.startswith(_MAGIC) or len(ciphertext) < len(_MAGIC) + _NONCE + 16:
            raise SecretsError(f"cannot decrypt with key {key_id!r}: not a bot4 PKCS#11 ciphertext")
        nonce = ciphertext[len(_MAGIC) : len(_MAGIC) + _NONCE]
        body = ciphertext[len(_MAGIC) + _NONCE :]

        def decrypt() -> SecretBytes:
            key = self._key(key_id, ObjectClass.SECRET_KEY, KeyType.AES)
            params = GCMParams(nonce, key_id.encode(), 128)
            return SecretBytes(
                key.decrypt(body, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            )

        return self._run("decrypt", key_id, decrypt)

    def generate_data_key(self, key_id: str) -> DataKey:
        raw: bytes = self._run(
            "generate data key", key_id, lambda: self._session.generate_random(256)
        )
        plaintext = SecretBytes(raw)
        return DataKey(key_id, plaintext, self.encrypt(key_id, plaintext))

    def sign(self, key_id: str, message: bytes) -> Signature:
        digest = hashlib.sha256(message).digest()

        def sign() -> bytes:
            key = self._key(key_id, ObjectClass.PRIVATE_KEY, KeyType.EC)
            raw: bytes = key.sign(digest, mechanism=Mechanism.ECDSA)
            return encode_ecdsa_signature(raw)

        return Signature(key_id, self._run("sign", key_id, sign))

    def verify(self, key_id: str, message: bytes, signature: Signature) -> bool:
        if signature.algorithm != SIGNING_ALGORITHM:
            return False
        try:
            raw = decode_ecdsa_signature(signature.der)
        except (ValueError, TypeError, IndexError):
            return False
        digest = hashlib.sha256(message).digest()

        def verify() -> bool:
            key = self._key(key_id, ObjectClass.PUBLIC_KEY, KeyType.EC)
            return bool(key.verify(digest, raw, mechanism=Mechanism.ECDSA))

        return self._run("verify", key_id, verify)

    def public_key_pem(self, key_id: str) -> bytes:
        def export() -> bytes:
            der = encode_ec_public_key(self._key(key_id, ObjectClass.PUBLIC_KEY, KeyType.EC))
            key = serialization.load_der_public_key(der)
            return key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )

        return self._run("export public key", key_id, export)

    # Ed25519 (the audit log's checkpoint key): the same three operations as FileSecrets.

    def create_ed25519_key(self, key_id: str) -> None:
        """Generate a non-extractable Ed25519 key pair on the token, labelled ``key_id``."""

        def create() -> None:
            self._refuse_existing(key_id)
            params = self._session.create_domain_parameters(
                KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: _ED25519_PARAMS}, local=True
            )
            params.generate_keypair(
                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN, store=True, label=key_id
            )

        self._run("create Ed25519 key", key_id, create)

    def ed25519_public(self, key_id: str) -> Ed25519PublicKey:
        """The public half, from the token's ``CKA_EC_POINT`` (DER octet string or raw)."""

        def export() -> bytes:
            key = self._key(key_id, ObjectClass.PUBLIC_KEY, KeyType.EC_EDWARDS)
            point: bytes = key[Attribute.EC_POINT]
            return point

        raw = ed25519_point(self._run("export Ed25519 public key", key_id, export))
        if raw is None:
            raise SecretsError(f"PKCS#11 key {key_id!r} has no usable Ed25519 public point")
        return Ed25519PublicKey.from_public_bytes(raw)

    def sign_ed25519(self, key_id: str, message: bytes) -> bytes:
        """A raw 64-byte Ed25519 (pure EdDSA) signature of ``message``, made in the token."""

        def sign() -> bytes:
            key = self._key(key_id, ObjectClass.PRIVATE_KEY, KeyType.EC_EDWARDS)
            signature: bytes = key.sign(message, mechanism=Mechanism.EDDSA)
            return signature

        return self._run("sign (Ed25519)", key_id, sign)
