"""The checkpoint key in each secrets backend: file, PKCS#11 (real SoftHSM2), and KMS refused."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pkcs11 import Attribute, KeyType, ObjectClass

from bot4 import cli
from bot4.infrastructure.secrets.pkcs11 import Pkcs11Secrets, ed25519_point
from bot4.trading_engine.audit_cli import load_verifier
from bot4.trading_engine.audit_keys import KMS_REFUSAL, load_signer
from bot4.trading_engine.audit_log import AuditLog, FsyncPolicy, verify
from bot4.trading_engine.checkpoint import Checkpoint
from bot4.trading_engine.errors import AuditError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def pkcs11_env(
    softhsm_tokens: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    backend = {"BOT4_SECRETS": "pkcs11"}  # pragma: allowlist secret - a backend name
    env = {**softhsm_tokens["bot4-test"], **backend}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_pkcs11_key_signs_checkpoints_that_the_file_key_verifier_accepts(
    pkcs11_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    pub = tmp_path / "audit.pub"
    argv = ["run", str(EXAMPLES / "reverting.toml"), "--audit-log", str(log), "--duration", "5"]
    key = ["--audit-key", "audit-hsm-run"]
    # Attacker's first: no key on the token → refused before anything runs, remedy printed.
    code, out, err = run(capsys, *argv, *key)
    assert (code, out) == (2, "")
    assert err.startswith("bot4: error: no audit signing key (PKCS#11 export Ed25519 public key")
    assert err.endswith(
        "create one with: bot4 audit keygen --key-id audit-hsm-run (or run with --unsigned-audit)\n"
    )
    assert not log.exists()
    # The printed remedy, as printed (plus where to put the public half).
    code, vkey, _ = run(
        capsys, "audit", "keygen", "--key-id", "audit-hsm-run", "--public-out", str(pub)
    )
    assert code == 0 and vkey.startswith("audit-hsm-run+")
    assert run(capsys, *argv, *key)[0] == 0
    # Signed in the token, checked with nothing but the exported public key.
    code, out, _ = run(capsys, "audit", "verify", str(log), "--key", str(pub))
    assert code == 0 and out.startswith("OK: ") and " 0 checkpoints" not in out
    verifier = load_verifier(pub)
    notes = [
        json.loads(line)["data"]["note"]
        for line in log.read_text().splitlines()
        if json.loads(line)["kind"] == "checkpoint"
    ]
    assert notes and all(isinstance(verifier.open(n), Checkpoint) for n in notes)
    # Another Ed25519 key's public half does not verify the token's signatures.
    other = tmp_path / "other.pub"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    code, out, _ = run(capsys, "audit", "verify", str(log), "--key", str(other))
    assert code == 1 and "does not verify with the given key" in out


def test_pkcs11_ed25519_key_is_not_extractable_and_not_duplicated(
    pkcs11_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "audit", "keygen", "--key-id", "audit-hsm-once")[0] == 0
    code, out, err = run(capsys, "audit", "keygen", "--key-id", "audit-hsm-once")
    assert (code, out) == (2, "")
    assert err == (
        "bot4: error: key 'audit-hsm-once' already exists on token 'bot4-test'; "
        "refusing to add another\n"
    )
    with Pkcs11Secrets.from_env(pkcs11_env) as hsm:
        private = hsm._key("audit-hsm-once", ObjectClass.PRIVATE_KEY, KeyType.EC_EDWARDS)
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        signature = hsm.sign_ed25519("audit-hsm-once", b"m")
        hsm.ed25519_public("audit-hsm-once").verify(signature, b"m")


def test_pkcs11_ecdsa_key_of_the_same_name_is_not_used_for_checkpoints(
    pkcs11_env: dict[str, str],
) -> None:
    with Pkcs11Secrets.from_env(pkcs11_env) as hsm:
        hsm.create_signing_key("audit-hsm-p256")  # ECDSA P-256: no signed-note verifier checks it
    with pytest.raises(AuditError, match=r"no audit signing key .*no suitable key labelled"):
        load_signer("audit-hsm-p256")


def test_checkpoints_signed_through_the_pkcs11_signer_verify_offline(
    pkcs11_env: dict[str, str], tmp_path: Path
) -> None:
    with Pkcs11Secrets.from_env(pkcs11_env) as hsm:
        hsm.create_ed25519_key("audit-hsm-log")
    signer = load_signer("audit-hsm-log")
    log = tmp_path / "a"
    with AuditLog(log, fsync=FsyncPolicy.NEVER, signer=signer, checkpoint_every=3) as audit:
        for i in range(10):
            audit.append("decision", {"i": i})
        audit.append("summary", {})
    signer.close()
    verdict = verify([log], signer.verifier())
    assert verdict.passes() and verdict.checkpoints == 4 and verdict.signed_size == 14


def test_kms_is_refused_because_moto_has_no_ed25519_keys(
    kms_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOT4_SECRETS", "kms")
    log = tmp_path / "audit.jsonl"
    code, out, err = run(
        capsys, "run", str(EXAMPLES / "reverting.toml"), "--audit-log", str(log), "--duration", "1"
    )
    assert (code, out, err) == (2, "", f"bot4: error: {KMS_REFUSAL}\n")
    assert not log.exists()
    # The reason, checked: the moto server the KMS tests use rejects the Ed25519 key spec.
    # When a moto that supports it is locked, this fails and the backend can be added.
    client = boto3.client(
        "kms", region_name=kms_env["BOT4_KMS_REGION"], endpoint_url=kms_env["BOT4_KMS_ENDPOINT"]
    )
    with pytest.raises(ClientError, match="ECC_NIST_EDWARDS25519"):
        client.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")


def test_backend_misconfiguration_is_refused_as_it_is(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="BOT4_SECRETS must be one of file, kms, pkcs11"):
        load_signer("k", {"BOT4_SECRETS": "vault"})  # pragma: allowlist secret - a backend name
    with pytest.raises(AuditError, match=r"^the pkcs11 secrets backend needs BOT4_PKCS11_LIBRARY"):
        load_signer("k", {"BOT4_SECRETS": "pkcs11"})  # pragma: allowlist secret - a backend name
    missing = tmp_path / "nowhere"
    with pytest.raises(AuditError, match=f"no audit signing key .*{missing}.* bot4 audit keygen"):
        load_signer("k", {"BOT4_SECRETS_DIR": str(missing)})


def test_ec_point_forms() -> None:
    key = bytes(range(32))
    assert ed25519_point(b"\x04\x20" + key) == key  # DER OCTET STRING (SoftHSM2)
    assert ed25519_point(key) == key  # raw, as some tokens return it
    assert ed25519_point(b"\x04\x41" + key + key + b"\x00") is None  # an ECDSA point
    assert ed25519_point(b"") is None
