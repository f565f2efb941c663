"""Secrets backends: one contract for file, AWS KMS (moto server over real HTTP) and PKCS#11
(SoftHSM2), plus the promise that secrets never reach logs, reprs, errors or metrics."""

from __future__ import annotations

import base64
import itertools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from bot4.infrastructure.errors import ConfigError
from bot4.infrastructure.metrics import Metrics
from bot4.infrastructure.secrets.file import FileSecrets
from bot4.infrastructure.secrets.interface import (
    SecretBytes,
    SecretsError,
    SecretsProvider,
    Signature,
    verify_offline,
)
from bot4.infrastructure.secrets.kms import KmsSecrets, kms_key_ref, quiet_wire_logging
from bot4.infrastructure.secrets.pkcs11 import Pkcs11Secrets, read_pin_file
from bot4.infrastructure.secrets.selection import default_secrets_dir, provider_from_env

SECRET = b"TOP-SECRET-plaintext-4242"
_ids = itertools.count()


def new_id(prefix: str = "key") -> str:
    return f"{prefix}-{next(_ids)}"


# -- backends --------------------------------------------------------------------------------


@pytest.fixture
def softhsm(softhsm_tokens: dict[str, dict[str, str]]) -> dict[str, str]:
    """The shared SoftHSM2 token of these tests (see tests/conftest.py)."""
    return softhsm_tokens["bot4-test"]


@pytest.fixture
def hsm(softhsm: dict[str, str]) -> Iterator[Pkcs11Secrets]:
    provider = Pkcs11Secrets.from_env(softhsm)
    yield provider
    provider.close()


@pytest.fixture(params=["file", "kms", "pkcs11"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SecretsProvider]:
    if request.param == "file":
        directory = tmp_path / "secrets"
        directory.mkdir(mode=0o700)
        yield FileSecrets(directory)
    elif request.param == "kms":
        env = request.getfixturevalue("kms_env")
        yield KmsSecrets(KmsSecrets.client_from_env(env))
    else:
        yield request.getfixturevalue("hsm")


# -- the contract ----------------------------------------------------------------------------


def test_encrypt_decrypt_round_trip(provider: SecretsProvider) -> None:
    key = new_id()
    provider.create_encryption_key(key)
    ciphertext = provider.encrypt(key, SECRET)
    assert SECRET not in ciphertext
    assert provider.decrypt(key, ciphertext).equals(SECRET)
    again = provider.encrypt(key, SecretBytes(SECRET))
    assert again != ciphertext  # fresh nonce every time
    assert provider.decrypt(key, again).reveal() == SECRET


def test_wrong_key_or_tampering_is_a_clean_error(provider: SecretsProvider) -> None:
    key, other = new_id(), new_id()
    provider.create_encryption_key(key)
    provider.create_encryption_key(other)
    ciphertext = provider.encrypt(key, SECRET)
    tampered = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
    for key_id, blob in [(other, ciphertext), (key, tampered), (key, b"B4F1B4P1" + b"\0" * 40)]:
        with pytest.raises(SecretsError) as info:
            provider.decrypt(key_id, blob)
        assert SECRET.decode() not in str(info.value)


def test_data_keys(provider: SecretsProvider) -> None:
    key = new_id()
    provider.create_encryption_key(key)
    data_key = provider.generate_data_key(key)
    assert len(data_key.plaintext) == 32
    assert data_key.key_id == key
    assert provider.decrypt(key, data_key.ciphertext).equals(data_key.plaintext)
    assert not provider.generate_data_key(key).plaintext.equals(data_key.plaintext)


@pytest.mark.parametrize("size", [0, 100, 10_000])
def test_sign_and_verify_in_the_backend_and_offline(provider: SecretsProvider, size: int) -> None:
    key = new_id()
    provider.create_signing_key(key)
    message = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    signature = provider.sign(key, message)
    assert signature.algorithm == "ECDSA_SHA_256"
    assert provider.verify(key, message, signature)
    assert not provider.verify(key, message + b"!", signature)
    pem = provider.public_key_pem(key)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    if not (provider.backend == "kms" and size in (0, 10_000)):  # moto mis-emulates DIGEST
        assert verify_offline(pem, message, signature)
    assert not verify_offline(pem, message + b"!", signature)


def test_bad_signatures_verify_false(provider: SecretsProvider) -> None:
    key = new_id()
    provider.create_signing_key(key)
    good = provider.sign(key, b"order")
    wrong_algorithm = Signature(key, good.der, "RSASSA_PSS_SHA_256")
    assert not provider.verify(key, b"order", wrong_algorithm)
    assert not verify_offline(provider.public_key_pem(key), b"order", wrong_algorithm)
    other = new_id()
    provider.create_signing_key(other)
    assert not provider.verify(other, b"order", good)


def test_missing_keys_and_duplicates(provider: SecretsProvider) -> None:
    with pytest.raises(SecretsError, match="never-created"):
        provider.encrypt("never-created", b"x")
    with pytest.raises(SecretsError, match="never-created-sig"):
        provider.sign("never-created-sig", b"x")
    key = new_id()
    provider.create_signing_key(key)
    with pytest.raises(SecretsError, match=key):
        provider.create_signing_key(key)


def test_secrets_never_reach_logs_reprs_errors_or_metrics(
    provider: SecretsProvider, caplog: pytest.LogCaptureFixture
) -> None:
    forms = [SECRET, SECRET.hex().encode(), base64.b64encode(SECRET)]
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        quiet_wire_logging()
        key, sig_key = new_id(), new_id()
        provider.create_encryption_key(key)
        provider.create_signing_key(sig_key)
        ciphertext = provider.encrypt(key, SECRET)
        plain = provider.decrypt(key, ciphertext)
        data_key = provider.generate_data_key(key)
        provider.sign(sig_key, SECRET)
        texts += [repr(plain), str(plain), repr(data_key), repr(provider), f"{plain}"]
        try:
            provider.decrypt(key, ciphertext[:-2])
        except SecretsError as exc:
            texts += [str(exc), repr(exc)]
        logging.getLogger("bot4.test").info("decrypted %s / %r", plain, data_key)
    texts.append(caplog.text)
    texts.append(Metrics().exposition().decode())
    dk_forms = [
        data_key.plaintext.reveal().hex(),
        base64.b64encode(data_key.plaintext.reveal()).decode(),
    ]
    for text in texts:
        for form in forms:
            assert form.decode() not in text
        for form_text in dk_forms:
            assert form_text not in text
    assert "redacted" in repr(plain)


# -- backend specifics ----------------------------------------------------------------------


def test_kms_key_refs() -> None:
    assert kms_key_ref("gate-override") == "alias/gate-override"
    assert kms_key_ref("alias/x") == "alias/x"
    assert kms_key_ref("arn:aws:kms:eu-west-1:1:key/abc") == "arn:aws:kms:eu-west-1:1:key/abc"
    uuid = "0b6a7f1e-2b3c-4d5e-8f90-123456789abc"
    assert kms_key_ref(uuid) == uuid


def test_kms_needs_a_region() -> None:
    with pytest.raises(ConfigError, match="needs a region"):
        KmsSecrets.client_from_env({})


def test_kms_unreachable_endpoint_is_a_clean_error() -> None:
    client = boto3.client(
        "kms",
        region_name="eu-west-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # pragma: allowlist secret - dummy, nothing listens
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    provider = KmsSecrets(client)
    assert "127.0.0.1:9" in repr(provider)
    with pytest.raises(
        SecretsError, match=r"AWS KMS Encrypt with key 'k' failed: Could not connect"
    ):
        provider.encrypt("k", SECRET)


def test_kms_invalid_signature_from_the_service_is_false(kms_env: dict[str, str]) -> None:
    provider = KmsSecrets()  # client from the environment
    key = new_id()
    provider.create_signing_key(key)
    assert not provider.verify(key, b"order", Signature(key, b"\x30\x02\x01\x01"))
    with pytest.raises(SecretsError, match="AWS KMS Verify with key 'never-made' failed"):
        provider.verify("never-made", b"order", Signature("never-made", b"\x30\x02\x01\x01"))


def test_quiet_wire_logging_raises_botocore_to_info() -> None:
    logger = logging.getLogger("botocore")
    before = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        quiet_wire_logging()
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(before)


def test_pkcs11_configuration_errors(softhsm: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs BOT4_PKCS11_LIBRARY, BOT4_PKCS11_TOKEN"):
        Pkcs11Secrets.from_env({})
    with pytest.raises(ConfigError, match=r"PIN file .* does not exist"):
        read_pin_file(tmp_path / "nope")
    loose = tmp_path / "pin"
    loose.write_bytes(b"5678")
    loose.chmod(0o644)
    with pytest.raises(SecretsError, match="chmod 600"):
        read_pin_file(loose)
    with pytest.raises(
        SecretsError, match="cannot open a session on PKCS#11 token 'bot4-test': PinIncorrect"
    ) as info:
        Pkcs11Secrets(softhsm["BOT4_PKCS11_LIBRARY"], "bot4-test", SecretBytes(b"0000"))
    assert "0000" not in str(info.value)
    with pytest.raises(SecretsError, match="token 'no-such-token'"):
        Pkcs11Secrets(softhsm["BOT4_PKCS11_LIBRARY"], "no-such-token", SecretBytes(b"5678"))


def test_pkcs11_bad_module_path(softhsm: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"cannot load the PKCS#11 module /nonexistent/lib\.so"):
        Pkcs11Secrets("/nonexistent/lib.so", "bot4-test", SecretBytes(b"5678"))


def test_pkcs11_second_provider_shares_the_login(
    softhsm: dict[str, str], hsm: Pkcs11Secrets
) -> None:
    assert repr(hsm) == "Pkcs11Secrets(token='bot4-test')"
    key = new_id()
    hsm.create_encryption_key(key)
    with Pkcs11Secrets.from_env(softhsm) as second:
        assert second.decrypt(key, hsm.encrypt(key, SECRET)).equals(SECRET)


def test_pkcs11_garbage_signature_is_false(hsm: Pkcs11Secrets) -> None:
    key = new_id()
    hsm.create_signing_key(key)
    assert not hsm.verify(key, b"m", Signature(key, b"not der"))
    with pytest.raises(SecretsError, match="not a bot4 PKCS#11 ciphertext"):
        hsm.decrypt(key, b"short")
    with pytest.raises(SecretsError, match="invalid key id"):
        hsm.sign("../etc", b"m")


def test_provider_selection(
    tmp_path: Path, kms_env: dict[str, str], softhsm: dict[str, str]
) -> None:
    directory = tmp_path / "s"
    directory.mkdir(mode=0o700)
    assert isinstance(provider_from_env({"BOT4_SECRETS_DIR": str(directory)}), FileSecrets)
    chosen = provider_from_env({"BOT4_SECRETS": " KMS ", **kms_env})
    assert isinstance(chosen, KmsSecrets)
    selection = {"BOT4_SECRETS": "pkcs11", **softhsm}  # pragma: allowlist secret - a backend name
    with provider_from_env(selection) as hsm_provider:
        assert hsm_provider.backend == "pkcs11"
    with pytest.raises(
        ConfigError, match="BOT4_SECRETS must be one of file, kms, pkcs11; got 'vault'"
    ):
        provider_from_env({"BOT4_SECRETS": "vault"})  # pragma: allowlist secret - a backend name


def test_default_secrets_dir() -> None:
    assert default_secrets_dir({"BOT4_SECRETS_DIR": "/srv/keys"}) == Path("/srv/keys")
    assert default_secrets_dir({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/bot4/secrets")
    assert default_secrets_dir({}) == Path.home() / ".config" / "bot4" / "secrets"
    assert os.sep in str(default_secrets_dir({}))


# -- a KMS answer without a field it must carry ----------------------------------------------
#
# botocore's model makes every output member optional, so a KMS-compatible endpoint
# (BOT4_KMS_ENDPOINT) answering 200 without one gets through the client. The real boto3
# client under botocore's Stubber (requests and answers validated against the model).

STUB_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def stubbed_kms() -> Iterator[tuple[KmsSecrets, Stubber]]:
    client = boto3.client(
        "kms",
        region_name="eu-west-1",
        aws_access_key_id="stub",
        aws_secret_access_key="stub",  # pragma: allowlist secret - a dummy; nothing is sent
    )
    with Stubber(client) as stub:
        yield KmsSecrets(client), stub
        stub.assert_no_pending_responses()


ANSWERS: dict[str, tuple[str, dict[str, object], Callable[[KmsSecrets], object]]] = {
    "CiphertextBlob": ("encrypt", {"KeyId": STUB_ARN}, lambda p: p.encrypt("k", SECRET)),
    "Plaintext": ("decrypt", {"KeyId": STUB_ARN}, lambda p: p.decrypt("k", b"blob")),
    "data key Plaintext": (
        "generate_data_key",
        {"KeyId": STUB_ARN, "CiphertextBlob": b"wrapped"},
        lambda p: p.generate_data_key("k"),
    ),
    "data key CiphertextBlob": (
        "generate_data_key",
        {"KeyId": STUB_ARN, "Plaintext": b"\x01" * 32},
        lambda p: p.generate_data_key("k"),
    ),
    "Signature": (
        "sign",
        {"KeyId": STUB_ARN, "SigningAlgorithm": "ECDSA_SHA_256"},
        lambda p: p.sign("k", b"order"),
    ),
    "SignatureValid": (
        "verify",
        {"KeyId": STUB_ARN, "SigningAlgorithm": "ECDSA_SHA_256"},
        lambda p: p.verify("k", b"order", Signature("k", b"\x30\x02\x01\x01")),
    ),
    "PublicKey": ("get_public_key", {"KeyId": STUB_ARN}, lambda p: p.public_key_pem("k")),
    "KeyMetadata": ("create_key", {}, lambda p: p.create_encryption_key("k")),
}
OPERATIONS = {
    "encrypt": "Encrypt",
    "decrypt": "Decrypt",
    "generate_data_key": "GenerateDataKey",
    "sign": "Sign",
    "verify": "Verify",
    "get_public_key": "GetPublicKey",
    "create_key": "CreateKey",
}


@pytest.mark.parametrize("missing", sorted(ANSWERS))
def test_kms_answer_without_a_field_is_a_one_line_error(
    stubbed_kms: tuple[KmsSecrets, Stubber], missing: str
) -> None:
    provider, stub = stubbed_kms
    method, answer, call = ANSWERS[missing]
    stub.add_response(method, answer)
    field = missing.rsplit(maxsplit=1)[-1]
    if field == "KeyMetadata":
        field = "KeyId"  # the key's id is what CreateKey's answer must carry
    with pytest.raises(SecretsError) as info:
        call(provider)
    assert str(info.value) == f"AWS KMS {OPERATIONS[method]} with key 'k' answered without {field}"


def test_kms_public_key_that_is_not_der_is_a_one_line_error(
    stubbed_kms: tuple[KmsSecrets, Stubber],
) -> None:
    provider, stub = stubbed_kms
    stub.add_response("get_public_key", {"KeyId": STUB_ARN, "PublicKey": b"not DER"})
    with pytest.raises(SecretsError, match=r"^AWS KMS GetPublicKey with key 'k' answered no "):
        provider.public_key_pem("k")


def test_kms_key_whose_alias_fails_is_scheduled_for_deletion(kms_env: dict[str, str]) -> None:
    """moto's server: a second key under a taken alias. CreateKey made the key, CreateAlias
    refused: the key nobody can name is scheduled for deletion (the shortest window), the
    error says so in one line, and the alias still names the first key."""
    client = KmsSecrets.client_from_env(kms_env)
    provider = KmsSecrets(client)
    key = new_id()
    provider.create_signing_key(key)
    first = client.describe_key(KeyId=kms_key_ref(key))["KeyMetadata"]["KeyId"]
    with pytest.raises(SecretsError) as info:
        provider.create_signing_key(key)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"AWS KMS CreateAlias with key '{key}'")
    orphans = [
        k["KeyId"]
        for k in client.list_keys()["Keys"]
        if client.describe_key(KeyId=k["KeyId"])["KeyMetadata"].get("Description") == f"bot4 {key}"
        and k["KeyId"] != first
    ]
    assert len(orphans) == 1
    state = client.describe_key(KeyId=orphans[0])["KeyMetadata"]
    assert state["KeyState"] == "PendingDeletion"
    assert message.endswith(f"key {orphans[0]} it created is scheduled for deletion in 7 days")
    assert client.describe_key(KeyId=kms_key_ref(key))["KeyMetadata"]["KeyId"] == first
    provider.sign(key, b"still signs")  # the first key is untouched


def test_kms_orphan_whose_deletion_cannot_be_sent_is_named_for_deletion_by_hand(
    stubbed_kms: tuple[KmsSecrets, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CreateAlias refused, then the endpoint drops before ScheduleKeyDeletion: the one
    line names the key to delete by hand."""
    provider, stub = stubbed_kms
    stub.add_response("create_key", {"KeyMetadata": {"KeyId": STUB_ARN}})
    stub.add_client_error("create_alias", "AlreadyExistsException", "alias exists")

    def unreachable(**_: object) -> None:
        raise EndpointConnectionError(endpoint_url="https://kms.invalid")

    monkeypatch.setattr(provider._client, "schedule_key_deletion", unreachable)
    with pytest.raises(SecretsError) as info:
        provider.create_encryption_key("k")
    assert str(info.value) == (
        "AWS KMS CreateAlias with key 'k' failed: AlreadyExistsException: alias exists; "
        f"the key {STUB_ARN} it created could not be scheduled for deletion "
        '(Could not connect to the endpoint URL: "https://kms.invalid"): delete it by hand'
    )
