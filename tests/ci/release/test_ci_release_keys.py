"""Release keys from the engine's secrets providers: a file, AWS KMS (moto's server over
real HTTP on loopback) and PKCS#11 (SoftHSM2). The private key never leaves KMS or the
token; the signatures verify with the public key alone, as cosign verifies them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from bot4.infrastructure.secrets.kms import KmsSecrets
from bot4.infrastructure.secrets.pkcs11 import Pkcs11Secrets
from ci.oci.layout import Layout
from ci.release import cli, cosign, dsse, sign, transfer, verify
from ci.release.bot4_signer import open_signer
from ci.release.errors import ReleaseError
from ci.release.keys import PublicKey, Signer, read_public_key
from ci.release.reference import parse
from ci.release.registry import Registry
from ci.release.trust_policy import DeployPolicy, TrustedKey


@pytest.fixture
def softhsm(softhsm_tokens: dict[str, dict[str, str]]) -> dict[str, str]:
    """The shared SoftHSM2 token for release keys (see tests/conftest.py)."""
    return softhsm_tokens["bot4-release"]


def _sign_and_verify(registry: Registry, repo: str, src: Path, signer: Signer) -> None:
    ref = parse(f"{registry.host}/{repo}:k")
    pinned = ref.with_digest(transfer.push(registry, Layout(src), ref))
    sign.sign(registry, pinned, signer)
    policy = DeployPolicy((TrustedKey("hsm", PublicKey(signer.public_pem)),))
    assert verify.verify_signature(registry, pinned, policy, dt.date(2026, 11, 30)).name == "hsm"
    # and a DSSE envelope signed in the backend verifies offline too
    envelope = dsse.seal(dsse.INTOTO, b"{}", signer.sign)
    assert envelope.verified_by([PublicKey(signer.public_pem)]) is not None


def test_kms_key_signs_cosign_signatures(
    kms_env: dict[str, str],
    registry: Registry,
    repo: str,
    make_layout: Callable[..., tuple[Path, str]],
) -> None:
    KmsSecrets(KmsSecrets.client_from_env(kms_env)).create_signing_key("release-kms")
    signer = open_signer("kms:release-kms", kms_env)
    try:
        assert repr(signer) == "Signer(kms:release-kms)"
        src, _ = make_layout({"etc/kms": (b"kms\n", 0o644)})
        _sign_and_verify(registry, repo, src, signer)
    finally:
        signer.close()


def test_pkcs11_key_signs_cosign_signatures(
    softhsm: dict[str, str],
    registry: Registry,
    repo: str,
    make_layout: Callable[..., tuple[Path, str]],
) -> None:
    with Pkcs11Secrets.from_env(softhsm) as hsm:
        hsm.create_signing_key("release-hsm")
    signer = open_signer("pkcs11:release-hsm", softhsm)
    try:
        src, _ = make_layout({"etc/hsm": (b"hsm\n", 0o644)})
        _sign_and_verify(registry, repo, src, signer)
    finally:
        signer.close()


def test_key_specs_and_backend_errors(tmp_path: Path, secrets_env: dict[str, str]) -> None:
    signer = open_signer("release", {**secrets_env, "BOT4_SECRETS": "file"})
    assert PublicKey(signer.public_pem).verify(signer.sign(b"m"), b"m")
    signer.close()
    for bad in ("vault:release", "file:", ":x"):
        with pytest.raises(ReleaseError, match="use BACKEND:KEY_ID"):
            open_signer(bad, secrets_env)
    with pytest.raises(
        ReleaseError, match=r"signing key 'absent' \(file\): no signing key 'absent'"
    ):
        open_signer("file:absent", secrets_env)
    with pytest.raises(ReleaseError, match=r"signing key 'file:release': .*does not exist"):
        open_signer("file:release", {"BOT4_SECRETS_DIR": str(tmp_path / "missing")})
    with pytest.raises(ReleaseError, match=r"signing key 'kms:x': .*region"):
        open_signer("kms:x", {})


def test_signing_failures_are_one_line(secrets_env: dict[str, str]) -> None:
    signer = open_signer("file:release", secrets_env)
    key_file = Path(secrets_env["BOT4_SECRETS_DIR"]) / "release.ec.pem"
    key_file.chmod(0o644)  # the backend now refuses to use it
    with pytest.raises(
        ReleaseError, match=r"signing with Signer\(file:release\) failed: .*chmod 600"
    ):
        signer.sign(b"message")


def test_public_key_files(tmp_path: Path, secrets_env: dict[str, str]) -> None:
    signer = open_signer("file:release", secrets_env)
    path = tmp_path / "release.pub"
    path.write_bytes(signer.public_pem)
    assert read_public_key(path).pem == signer.public_pem
    with pytest.raises(ReleaseError, match="cannot read public key"):
        read_public_key(tmp_path / "absent.pub")
    path.write_text("nope")
    with pytest.raises(ReleaseError, match=f"{path}: not a PEM public key"):
        read_public_key(path)
    assert cosign.SIGNATURE_ANNOTATION == "dev.cosignproject.cosign/signature"


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({}, "answered without PublicKey"),
        ({"PublicKey": b"not DER"}, "answered no public key it can read"),
    ],
)
def test_kms_answer_without_a_usable_public_key_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answer: dict[str, bytes],
    says: str,
) -> None:
    """``public-key --key kms:release`` against a KMS-compatible endpoint that answers
    GetPublicKey without the key (botocore's Stubber; every output member is optional)."""
    client = boto3.client(
        "kms",
        region_name="eu-west-1",
        aws_access_key_id="stub",
        aws_secret_access_key="stub",  # pragma: allowlist secret - a dummy; nothing is sent
    )
    monkeypatch.setenv("BOT4_KMS_REGION", "eu-west-1")
    monkeypatch.setattr(KmsSecrets, "client_from_env", staticmethod(lambda _env: client))
    with Stubber(client) as stub:
        stub.add_response("get_public_key", {"KeyId": "k", **answer}, {"KeyId": "alias/release"})
        assert cli.main(["public-key", "--key", "kms:release"]) == 1
        stub.assert_no_pending_responses()
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("ci.release: error: signing key 'release' (kms): AWS KMS GetPublicKey")
    assert err.rstrip().endswith(says)
