"""The file secrets backend's permission rules, key ids, and the SecretBytes value type."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot4.infrastructure.secrets.file import FileSecrets
from bot4.infrastructure.secrets.interface import (
    DataKey,
    SecretBytes,
    SecretsError,
    Signature,
    check_key_id,
    verify_offline,
)


@pytest.fixture
def store(tmp_path: Path) -> FileSecrets:
    directory = tmp_path / "secrets"
    directory.mkdir(mode=0o700)
    return FileSecrets(directory)


def test_directory_must_exist_and_be_private(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match="does not exist; create it with mkdir -m 700"):
        FileSecrets(tmp_path / "missing")
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(
        SecretsError, match=r"accessible by group or others \(mode 0755\); run: chmod 700"
    ):
        FileSecrets(open_dir)
    a_file = tmp_path / "file"
    a_file.write_bytes(b"")
    a_file.chmod(0o600)
    with pytest.raises(SecretsError, match="is not a directory"):
        FileSecrets(a_file)


def test_key_files_must_be_private_regular_files(store: FileSecrets, tmp_path: Path) -> None:
    store.create_encryption_key("k")
    path = tmp_path / "secrets" / "k.aes"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    path.chmod(0o640)
    with pytest.raises(
        SecretsError, match=r"k.aes is accessible by group or others \(mode 0640\); run: chmod 600"
    ):
        store.encrypt("k", b"x")
    path.chmod(0o600)
    target = tmp_path / "elsewhere.aes"
    target.write_bytes(os.urandom(32))
    (tmp_path / "secrets" / "link.aes").symlink_to(target)
    with pytest.raises(SecretsError, match="is a symbolic link"):
        store.encrypt("link", b"x")


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_key_files_must_belong_to_this_user(store: FileSecrets, tmp_path: Path) -> None:
    store.create_encryption_key("k")
    os.chown(tmp_path / "secrets" / "k.aes", 4242, -1)
    with pytest.raises(SecretsError, match="owned by uid 4242, not by this user"):
        store.encrypt("k", b"x")


def test_keys_are_never_replaced(store: FileSecrets) -> None:
    store.create_encryption_key("k")
    with pytest.raises(SecretsError, match=r"already exists .* refusing to replace it"):
        store.create_encryption_key("k")


@pytest.mark.parametrize("key_id", ["", "../escape", ".hidden", "a/b", "x" * 129, "ключ", 7])
def test_key_ids_are_plain_names(store: FileSecrets, key_id: object) -> None:
    with pytest.raises(SecretsError, match="invalid key id"):
        store.create_signing_key(key_id)  # type: ignore[arg-type]


def test_valid_key_ids() -> None:
    assert check_key_id("gate-override_v2.1") == "gate-override_v2.1"


def test_foreign_ciphertext_and_non_ec_signing_keys(store: FileSecrets, tmp_path: Path) -> None:
    store.create_encryption_key("k")
    with pytest.raises(SecretsError, match="not a bot4 file-backend ciphertext"):
        store.decrypt("k", b"plain text")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "secrets" / "rsa.ec.pem"
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(SecretsError, match="'rsa' is not an elliptic-curve key"):
        store.sign("rsa", b"m")
    public = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SecretsError, match="not an elliptic-curve key"):
        verify_offline(public, b"m", Signature("rsa", b"sig"))


def test_garbage_signature_verifies_false(store: FileSecrets) -> None:
    store.create_signing_key("s")
    assert not store.verify("s", b"m", Signature("s", b"\x00garbage"))
    assert repr(store).startswith("FileSecrets(")


def test_secret_bytes_hide_their_value() -> None:
    secret = SecretBytes(b"hunter2")
    assert repr(secret) == str(secret) == "SecretBytes(<redacted, 7 bytes>)"
    assert len(secret) == 7
    assert secret.equals(b"hunter2")
    assert secret.equals(SecretBytes(b"hunter2"))
    assert not secret.equals(b"hunter3")
    assert "hunter2" not in repr(DataKey("k", secret, b"\x01\x02"))
    assert "x01" not in repr(DataKey("k", secret, b"\x01\x02"))
