"""The ``kms`` backend: AWS KMS through boto3; keys never leave KMS.

Key ids are KMS aliases without the ``alias/`` prefix (``gate-override`` means
``alias/gate-override``); full ARNs, key UUIDs and ``alias/…`` names pass through.
Messages of 1 to 4096 bytes are signed as ``RAW`` (KMS hashes them); empty and
longer ones are hashed here and signed as ``DIGEST``.

Ed25519 keys (``ECC_NIST_EDWARDS25519``) sign the audit log's C2SP checkpoints with
``ED25519_SHA_512`` and ``MessageType=RAW``. The KMS API reference (Sign, ``MessageType``;
the same text is in botocore's KMS service model) says ``ED25519_SHA_512`` requires ``RAW``
while ``ED25519_PH_SHA_512`` takes a ``DIGEST`` and adds the FIPS 186-5 §7.8.1 (HashEdDSA)
prehash, so ``ED25519_SHA_512`` over ``RAW`` is pure Ed25519 (RFC 8032 §5.1.6) of the
message, checkable with the public key from GetPublicKey "outside of KMS" (Sign docs).
Callers do not take that on trust: the checkpoint signer verifies every signature locally.

botocore logs request bodies (plaintexts, data keys) at DEBUG level, so creating
a provider raises the ``botocore``/``boto3``/``urllib3`` loggers to INFO at least.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot4.infrastructure.errors import ConfigError
from bot4.infrastructure.secrets.interface import (
    SIGNING_ALGORITHM,
    DataKey,
    KeyTypeError,
    MissingKeyError,
    SecretBytes,
    SecretsError,
    SecretsProvider,
    Signature,
)

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.literals import SigningAlgorithmSpecType

log = logging.getLogger(__name__)

ENDPOINT_ENV = "BOT4_KMS_ENDPOINT"
REGION_ENVS = ("BOT4_KMS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
RAW_LIMIT = 4096
DELETION_DAYS = 7  # ScheduleKeyDeletion's shortest PendingWindowInDays
ED25519_SPEC: Final = "ECC_NIST_EDWARDS25519"
ED25519_ALGORITHM: Final = "ED25519_SHA_512"  # pure Ed25519 over a RAW message (see above)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_WIRE_LOGGERS = ("botocore", "boto3", "urllib3")

R = TypeVar("R")


def kms_key_ref(key_id: str) -> str:
    """The KeyId KMS expects: ``alias/<key_id>`` unless it already is an alias, ARN or UUID."""
    if key_id.startswith(("alias/", "arn:")) or _UUID.match(key_id):
        return key_id
    return f"alias/{key_id}"


def quiet_wire_logging() -> None:
    """Keep botocore's DEBUG request dumps (which contain plaintexts) out of the logs."""
    for name in _WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


class KmsSecrets(SecretsProvider):
    """AWS KMS (or anything speaking its API, e.g. a local emulator at ``BOT4_KMS_ENDPOINT``)."""

    backend = "kms"

    def __init__(self, client: KMSClient | None = None) -> None:
        quiet_wire_logging()
        self._client = client if client is not None else self.client_from_env(os.environ)

    @staticmethod
    def client_from_env(environ: Mapping[str, str]) -> KMSClient:
        """A boto3 KMS client for ``BOT4_KMS_REGION``/``AWS_REGION`` and ``BOT4_KMS_ENDPOINT``."""
        import boto3  # noqa: PLC0415 - optional dependency (bot4[kms])

        region = next((environ[name] for name in REGION_ENVS if environ.get(name)), None)
        if region is None:
            raise ConfigError("the KMS backend needs a region: set BOT4_KMS_REGION or AWS_REGION")
        from botocore.exceptions import BotoCoreError  # noqa: PLC0415

        try:
            return boto3.client("kms", region_name=region, endpoint_url=environ.get(ENDPOINT_ENV))
        except (ValueError, BotoCoreError) as exc:  # a malformed endpoint URL or region name
            raise ConfigError(f"the KMS backend cannot use its settings: {exc}") from None

    def __repr__(self) -> str:
        return f"KmsSecrets(endpoint={self._client.meta.endpoint_url!r})"

    def _call(self, operation: str, key_id: str, call: Callable[[], R]) -> R:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            return call()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            kind = MissingKeyError if error.get("Code") == "NotFoundException" else SecretsError
            raise kind(
                f"AWS KMS {operation} with key {key_id!r} failed: "
                f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
            ) from None
        except BotoCoreError as exc:
            raise SecretsError(f"AWS KMS {operation} with key {key_id!r} failed: {exc}") from None

    def _create(
        self,
        key_id: str,
        spec: Literal["ECC_NIST_P256", "ECC_NIST_EDWARDS25519", "SYMMETRIC_DEFAULT"],
    ) -> None:
        usage: Literal["SIGN_VERIFY", "ENCRYPT_DECRYPT"] = (
            "ENCRYPT_DECRYPT" if spec == "SYMMETRIC_DEFAULT" else "SIGN_VERIFY"
        )
        client = self._client
        created = self._call(
            "CreateKey",
            key_id,
            lambda: client.create_key(KeySpec=spec, KeyUsage=usage, Description=f"bot4 {key_id}"),
        )
        metadata: Mapping[str, Any] = created.get("KeyMetadata", {})
        target = _field(metadata, "KeyId", "CreateKey", key_id, str)
        try:
            self._call(
                "CreateAlias",
                key_id,
                lambda: client.create_alias(AliasName=kms_key_ref(key_id), TargetKeyId=target),
            )
        except SecretsError as exc:  # the new key has no name: nothing would ever use it
            raise type(exc)(f"{exc}; {self._discard(target)}") from None

    def _discard(self, target: str) -> str:
        """Schedule the deletion of a key just created (the shortest window KMS allows);
        what became of it, for the error that says why it is not wanted."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            self._client.schedule_key_deletion(KeyId=target, PendingWindowInDays=DELETION_DAYS)
        except ClientError as exc:
            why = str(exc.response.get("Error", {}).get("Code", "error"))
        except BotoCoreError as exc:
            why = str(exc)
        else:
            return f"the key {target} it created is scheduled for deletion in {DELETION_DAYS} days"
        return (
            f"the key {target} it created could not be scheduled for deletion ({why}): "
            "delete it by hand"
        )

    def create_signing_key(self, key_id: str) -> None:
        self._create(key_id, "ECC_NIST_P256")

    def create_encryption_key(self, key_id: str) -> None:
        self._create(key_id, "SYMMETRIC_DEFAULT")

    def encrypt(self, key_id: str, plaintext: bytes | SecretBytes) -> bytes:
        raw = plaintext.reveal() if isinstance(plaintext, SecretBytes) else plaintext
        client = self._client
        out = self._call(
            "Encrypt", key_id, lambda: client.encrypt(KeyId=kms_key_ref(key_id), Plaintext=raw)
        )
        return _answered(out, "CiphertextBlob", "Encrypt", key_id)

    def decrypt(self, key_id: str, ciphertext: bytes) -> SecretBytes:
        client = self._client
        out = self._call(
            "Decrypt",
            key_id,
            lambda: client.decrypt(KeyId=kms_key_ref(key_id), CiphertextBlob=ciphertext),
        )
        return SecretBytes(_answered(out, "Plaintext", "Decrypt", key_id))

    def generate_data_key(self, key_id: str) -> DataKey:
        client = self._client
        out = self._call(
            "GenerateDataKey",
            key_id,
            lambda: client.generate_data_key(KeyId=kms_key_ref(key_id), KeySpec="AES_256"),
        )
        plaintext = _answered(out, "Plaintext", "GenerateDataKey", key_id)
        return DataKey(
            key_id,
            SecretBytes(plaintext),
            _answered(out, "CiphertextBlob", "GenerateDataKey", key_id),
        )

    @staticmethod
    def _message(message: bytes) -> dict[str, Any]:
        if 0 < len(message) <= RAW_LIMIT:  # KMS refuses empty RAW messages
            return {"Message": message, "MessageType": "RAW"}
        return {"Message": hashlib.sha256(message).digest(), "MessageType": "DIGEST"}

    def _sign(
        self, key_id: str, algorithm: SigningAlgorithmSpecType, message: Mapping[str, Any]
    ) -> bytes:
        """KMS ``Sign`` with ``algorithm`` over ``message`` (``Message`` and ``MessageType``)."""
        client = self._client
        out = self._call(
            "Sign",
            key_id,
            lambda: client.sign(KeyId=kms_key_ref(key_id), SigningAlgorithm=algorithm, **message),
        )
        return _answered(out, "Signature", "Sign", key_id)

    def _get_public_key(self, key_id: str) -> Mapping[str, Any]:
        client = self._client
        out: Mapping[str, Any] = self._call(
            "GetPublicKey", key_id, lambda: client.get_public_key(KeyId=kms_key_ref(key_id))
        )
        return out

    def sign(self, key_id: str, message: bytes) -> Signature:
        return Signature(key_id, self._sign(key_id, SIGNING_ALGORITHM, self._message(message)))

    def verify(self, key_id: str, message: bytes, signature: Signature) -> bool:
        if signature.algorithm != SIGNING_ALGORITHM:
            return False
        client = self._client
        try:
            out = self._call(
                "Verify",
                key_id,
                lambda: client.verify(
                    KeyId=kms_key_ref(key_id),
                    Signature=signature.der,
                    SigningAlgorithm=SIGNING_ALGORITHM,
                    **self._message(message),
                ),
            )
        except SecretsError as exc:
            # Real KMS answers an invalid signature with this error (moto returns false).
            if "KMSInvalidSignatureException" in str(exc):  # pragma: no cover - not emulated
                return False
            raise
        return _field(out, "SignatureValid", "Verify", key_id, bool)

    def public_key_pem(self, key_id: str) -> bytes:
        out = self._get_public_key(key_id)
        der = _answered(out, "PublicKey", "GetPublicKey", key_id)
        try:
            key = serialization.load_der_public_key(der)
        except (ValueError, UnsupportedAlgorithm):
            raise SecretsError(
                f"AWS KMS GetPublicKey with key {key_id!r} answered no public key it can read"
            ) from None
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # Ed25519 (the audit log's checkpoint key): the same three operations as FileSecrets.

    def create_ed25519_key(self, key_id: str) -> None:
        """Create an ``ECC_NIST_EDWARDS25519`` signing key in KMS under ``alias/<key_id>``."""
        self._create(key_id, "ECC_NIST_EDWARDS25519")

    def ed25519_public(self, key_id: str) -> Ed25519PublicKey:
        """The public half, after checking KMS says it is an Ed25519 signing key."""
        out = self._get_public_key(key_id)
        spec, usage = out.get("KeySpec"), out.get("KeyUsage")
        algorithms = out.get("SigningAlgorithms", [])
        if spec != ED25519_SPEC or usage != "SIGN_VERIFY" or ED25519_ALGORITHM not in algorithms:
            raise KeyTypeError(
                f"AWS KMS key {key_id!r} is {spec} for {usage} "
                f"(algorithms: {', '.join(algorithms) or 'none'}), not an Ed25519 signing key "
                f"({ED25519_SPEC} for SIGN_VERIFY with {ED25519_ALGORITHM})"
            )
        try:
            key = serialization.load_der_public_key(
                _answered(out, "PublicKey", "GetPublicKey", key_id)
            )
        except ValueError:
            key = None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyTypeError(f"AWS KMS key {key_id!r}: GetPublicKey returned no Ed25519 key")
        return key

    def sign_ed25519(self, key_id: str, message: bytes) -> bytes:
        """A raw 64-byte Ed25519 signature of ``message`` (1–4096 bytes), made in KMS."""
        if not 0 < len(message) <= RAW_LIMIT:
            raise SecretsError(
                f"AWS KMS signs Ed25519 RAW messages of 1 to {RAW_LIMIT} bytes, not {len(message)}"
            )
        return self._sign(key_id, ED25519_ALGORITHM, {"Message": message, "MessageType": "RAW"})


A = TypeVar("A", bytes, str, bool)


def _field(out: Mapping[str, Any], field: str, operation: str, key_id: str, kind: type[A]) -> A:
    """A value the answer must carry (a non-empty blob or string, or a flag): botocore's
    model makes every output member optional, so an endpoint answering without it would
    otherwise surface as a KeyError traceback."""
    value = out.get(field)
    if not isinstance(value, kind) or (kind is not bool and not value):
        raise SecretsError(f"AWS KMS {operation} with key {key_id!r} answered without {field}")
    return value


def _answered(out: Mapping[str, Any], field: str, operation: str, key_id: str) -> bytes:
    """A blob the answer must carry (``_field``)."""
    return _field(out, field, operation, key_id, bytes)
