"""Release keys from the engine's secrets providers: a file, AWS KMS (moto's server over
real HTTP on loopback) and PKCS#11 (SoftHSM2). The private key never leaves KMS or the
token; the signatures verify with the public key alone, as cosign verifies them."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from bot4.infrastructure.secrets.kms import KmsSecrets
from bot4.infrastructure.secrets.pkcs11 import Pkcs11Secrets
from ci.release import cosign, dsse, layout, sign, verify
from ci.release.errors import ReleaseError
from ci.release.keys import PublicKey, Signer, open_signer, read_public_key
from ci.release.policy import DeployPolicy, TrustedKey
from ci.release.reference import parse
from ci.release.registry import Registry

SOFTHSM_LIBRARIES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)


@pytest.fixture(scope="module")
def kms_env() -> Iterator[dict[str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret - moto dummy credentials
        "AWS_SESSION_TOKEN": "testing",
        "BOT4_KMS_REGION": "eu-west-1",
        "BOT4_KMS_ENDPOINT": f"http://{host}:{port}",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        yield env
    server.stop()


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    library = next((path for path in SOFTHSM_LIBRARIES if Path(path).exists()), None)
    util = shutil.which("softhsm2-util")
    if library is None or util is None:
        pytest.skip("SoftHSM2 is not installed (Debian package softhsm2)")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n")
    pin_file = base / "pin"
    pin_file.write_bytes(b"5678\n")
    pin_file.chmod(0o600)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))
        subprocess.run(
            [
                util,
                "--init-token",
                "--free",
                "--label",
                "bot4-release",
                "--so-pin",
                "1234",
                "--pin",
                "5678",
            ],
            check=True,
            capture_output=True,
        )
        yield {
            "BOT4_PKCS11_LIBRARY": library,
            "BOT4_PKCS11_TOKEN": "bot4-release",
            "BOT4_PKCS11_PIN_FILE": str(pin_file),
        }


def _sign_and_verify(registry: Registry, repo: str, src: Path, signer: Signer) -> None:
    ref = parse(f"{registry.host}/{repo}:k")
    pinned = ref.with_digest(layout.push(registry, layout.Layout(src), ref))
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
