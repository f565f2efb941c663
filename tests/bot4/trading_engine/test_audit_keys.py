"""The checkpoint key in each secrets backend: file, PKCS#11 (real SoftHSM2), AWS KMS (Stubber)."""

from __future__ import annotations

import base64
import json
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from botocore.validate import validate_parameters
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pkcs11 import Attribute, KeyType, ObjectClass

from bot4 import cli
from bot4.infrastructure.secrets.interface import SecretsError
from bot4.infrastructure.secrets.kms import KmsSecrets
from bot4.infrastructure.secrets.pkcs11 import Pkcs11Secrets, ed25519_point
from bot4.trading_engine.audit_cli import load_verifier
from bot4.trading_engine.audit_keys import PROBE, load_signer
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


# --- AWS KMS (ECC_NIST_EDWARDS25519 / ED25519_SHA_512) --------------------------------------
#
# moto (5.2.5, the newest) has no Ed25519 keys, so these run the real boto3 client under
# botocore's Stubber: every request is validated against botocore's KMS service model and
# serialized to the real JSON wire format, every response against the operation's output
# shape. The answers come from a local Ed25519 key: GetPublicKey returns its
# SubjectPublicKeyInfo DER, Sign a real signature over the Message as it was serialized.
# Not tested against AWS itself.

KMS_KEY = "audit-kms"
KMS_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


class LocalKms:
    """A stubbed KMS client whose Ed25519 key is local (see above)."""

    def __init__(self, env: dict[str, str], private: Ed25519PrivateKey | None = None) -> None:
        self.client = KmsSecrets.client_from_env(env)  # the real client bot4 would build
        self.stubber = Stubber(self.client)
        self.private = private or Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
        self.signed: list[bytes] = []  # every Message Sign received, off the wire
        self._signs: deque[tuple[dict[str, Any], Callable[[bytes], bytes]]] = deque()
        # Ahead of the Stubber's own before-call handler, which returns the queued answer.
        self.client.meta.events.register_first("before-call.*.*", self._answer_sign)
        self.stubber.activate()

    def public_key(
        self,
        key_id: str = KMS_KEY,
        *,
        spec: str = "ECC_NIST_EDWARDS25519",
        der: bytes | None = None,
        algorithms: tuple[str, ...] = ("ED25519_SHA_512", "ED25519_PH_SHA_512"),
    ) -> None:
        public = self.private.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        self.stubber.add_response(
            "get_public_key",
            {
                "KeyId": KMS_ARN,
                "PublicKey": public if der is None else der,
                "KeySpec": spec,
                "KeyUsage": "SIGN_VERIFY",
                "SigningAlgorithms": list(algorithms),
            },
            {"KeyId": f"alias/{key_id}"},
        )

    def signs(
        self, count: int, key_id: str = KMS_KEY, sign: Callable[[bytes], bytes] | None = None
    ) -> None:
        """Queue ``count`` Sign answers, each computed when the request arrives."""
        for _ in range(count):
            response: dict[str, Any] = {
                "KeyId": KMS_ARN,
                "Signature": b"\0" * 64,  # replaced by _answer_sign
                "SigningAlgorithm": "ED25519_SHA_512",
            }
            expected = {
                "KeyId": f"alias/{key_id}",
                "Message": ANY,
                "MessageType": "RAW",
                "SigningAlgorithm": "ED25519_SHA_512",
            }
            self.stubber.add_response("sign", response, expected)
            self._signs.append((response, sign or self.private.sign))

    def error(self, method: str, code: str, status: int = 400) -> None:
        self.stubber.add_client_error(method, code, f"{code} (stubbed)", status)

    @property
    def unused_signs(self) -> int:
        return len(self._signs)

    def _answer_sign(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name != "Sign" or not self._signs:
            return  # another operation, a queued error, or nothing queued (the Stubber says so)
        body = json.loads(params["body"])  # the request as botocore put it on the wire
        assert params["headers"]["X-Amz-Target"] == "TrentService.Sign"
        assert (body["MessageType"], body["SigningAlgorithm"]) == ("RAW", "ED25519_SHA_512")
        message = base64.b64decode(body["Message"])
        self.signed.append(message)
        response, sign = self._signs.popleft()
        response["Signature"] = sign(message)
        validate_parameters(response, model.output_shape)


@pytest.fixture
def kms_stub_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """BOT4_SECRETS=kms with dummy credentials; nothing here reaches a network."""
    env = {
        "BOT4_SECRETS": "kms",  # pragma: allowlist secret - a backend name
        "BOT4_KMS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "stub",
        "AWS_SECRET_ACCESS_KEY": "stub",  # pragma: allowlist secret - a dummy
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BOT4_KMS_ENDPOINT", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


@pytest.fixture
def local_kms(kms_stub_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalKms]:
    kms = LocalKms(kms_stub_env)
    monkeypatch.setattr(KmsSecrets, "client_from_env", staticmethod(lambda _env: kms.client))
    yield kms
    kms.stubber.deactivate()


def kms_run(capsys: pytest.CaptureFixture[str], log: Path, *extra: str) -> tuple[int, str, str]:
    argv = ["run", str(EXAMPLES / "reverting.toml"), "--audit-log", str(log), "--duration", "5"]
    return run(capsys, *argv, "--audit-key", KMS_KEY, *extra)


def checkpoint_notes(log: Path) -> list[str]:
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return [r["data"]["note"] for r in records if r["kind"] == "checkpoint"]


def test_kms_ed25519_key_signs_checkpoints_that_verify_offline(
    local_kms: LocalKms, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, pub = tmp_path / "audit.jsonl", tmp_path / "audit.pub"
    local_kms.public_key()
    local_kms.signs(40)
    code, _, err = kms_run(capsys, log, "--checkpoint-every", "2")
    assert (code, err) == (0, "")
    notes = checkpoint_notes(log)
    # KMS signed the start-up probe, then exactly each checkpoint body written, in order.
    assert local_kms.signed == [PROBE] + [n.partition("\n\n")[0].encode() + b"\n" for n in notes]
    assert len(notes) >= 2 and local_kms.unused_signs == 40 - 1 - len(notes)
    # Checked with nothing but the public half, as an outside verifier would hold it.
    pub.write_bytes(
        local_kms.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    code, out, _ = run(capsys, "audit", "verify", str(log), "--key", str(pub))
    assert code == 0 and out.startswith("OK: ") and f" {len(notes)} checkpoints" in out
    verifier = load_verifier(pub)
    assert all(verifier.open(n).origin for n in notes)


def test_kms_keygen_creates_an_ed25519_sign_verify_key(
    local_kms: LocalKms, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub = local_kms.stubber
    stub.add_response(
        "create_key",
        {"KeyMetadata": {"KeyId": KMS_ARN.rpartition("/")[2]}},
        {"KeySpec": "ECC_NIST_EDWARDS25519", "KeyUsage": "SIGN_VERIFY", "Description": ANY},
    )
    stub.add_response(
        "create_alias",
        {},
        {"AliasName": f"alias/{KMS_KEY}", "TargetKeyId": KMS_ARN.rpartition("/")[2]},
    )
    local_kms.public_key()
    pub = tmp_path / "k.pub"
    code, vkey, err = run(capsys, "audit", "keygen", "--key-id", KMS_KEY, "--public-out", str(pub))
    assert (code, err) == (0, "") and vkey.startswith(f"{KMS_KEY}+")
    stub.assert_no_pending_responses()
    assert load_verifier(pub).public == local_kms.private.public_key()


@pytest.mark.parametrize(
    ("spec", "algorithms", "key_type"),
    [
        ("ECC_NIST_P256", ("ECDSA_SHA_256",), "p256"),
        ("ECC_NIST_EDWARDS25519", ("ED25519_PH_SHA_512",), "ed25519"),  # no pure Ed25519
        ("ECC_NIST_EDWARDS25519", ("ED25519_SHA_512",), "p256"),  # says Ed25519, sends P-256
    ],
)
def test_kms_key_that_is_not_an_ed25519_signing_key_is_refused_before_anything_runs(
    local_kms: LocalKms,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spec: str,
    algorithms: tuple[str, ...],
    key_type: str,
) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = p256.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    local_kms.public_key(spec=spec, algorithms=algorithms, der=der if key_type == "p256" else None)
    log = tmp_path / "audit.jsonl"
    code, out, err = kms_run(capsys, log)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"bot4: error: audit key '{KMS_KEY}': AWS KMS key '{KMS_KEY}'")
    assert "bot4 audit keygen" not in err  # keygen would not mend it: the alias is taken
    if key_type == "p256" and spec != "ECC_NIST_P256":
        assert err.endswith("GetPublicKey returned no Ed25519 key\n")
    else:
        assert err.endswith(
            "not an Ed25519 signing key (ECC_NIST_EDWARDS25519 for SIGN_VERIFY with "
            "ED25519_SHA_512)\n"
        )
    local_kms.stubber.assert_no_pending_responses()  # and no Sign was sent
    assert local_kms.signed == [] and not log.exists()


def test_kms_signature_that_does_not_verify_is_refused_at_start(
    local_kms: LocalKms, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Ed25519PrivateKey.from_private_bytes(b"\x08" * 32)
    local_kms.public_key()
    local_kms.signs(1, sign=other.sign)  # a real signature, by another key
    log = tmp_path / "audit.jsonl"
    code, out, err = kms_run(capsys, log)
    assert (code, out) == (2, "")
    assert err == (
        f"bot4: error: audit key '{KMS_KEY}': the secrets backend returned a signature that "
        "does not verify with the key's public half; refusing to write a checkpoint with it\n"
    )
    local_kms.stubber.assert_no_pending_responses()
    assert local_kms.signed == [PROBE] and not log.exists()


def test_kms_garbage_signature_mid_run_writes_no_checkpoint(
    local_kms: LocalKms, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local_kms.public_key()
    local_kms.signs(1)  # the probe verifies; every checkpoint signature after it is garbage
    local_kms.signs(2, sign=lambda _m: bytes(64))
    log = tmp_path / "audit.jsonl"
    code, out, err = kms_run(capsys, log, "--checkpoint-every", "2")
    assert (code, out) == (2, "")
    assert err.startswith(f"bot4: error: audit key '{KMS_KEY}': the secrets backend returned")
    assert err.count("\n") == 1
    assert local_kms.unused_signs == 0  # the failed checkpoint, and close()'s second try
    assert checkpoint_notes(log) == []  # records up to there, but no checkpoint over them
    code, out, _ = run(capsys, "audit", "verify", str(log))
    assert code == 1 and "unsigned tail" in out and "does not verify" not in out


@pytest.mark.parametrize(
    ("where", "code_name"),
    [
        ("get_public_key", "AccessDeniedException"),
        ("get_public_key", "ThrottlingException"),
        ("sign", "AccessDeniedException"),
        ("sign", "ThrottlingException"),
    ],
)
def test_kms_errors_are_one_line_and_nothing_is_written(
    local_kms: LocalKms,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    where: str,
    code_name: str,
) -> None:
    if where == "sign":
        local_kms.public_key()
    local_kms.error(where, code_name)
    log = tmp_path / "audit.jsonl"
    code, out, err = kms_run(capsys, log)
    assert (code, out) == (2, "")
    operation = {"get_public_key": "GetPublicKey", "sign": "Sign"}[where]
    failed = f"AWS KMS {operation} with key '{KMS_KEY}' failed: {code_name}: {code_name} (stubbed)"
    if where == "sign":
        assert err == f"bot4: error: audit checkpoint signing failed: {failed}\n"
    else:
        assert err == f"bot4: error: audit key '{KMS_KEY}': {failed}\n"
    local_kms.stubber.assert_no_pending_responses()
    assert not log.exists()


def test_kms_throttled_mid_run_is_one_line_and_no_checkpoint(
    local_kms: LocalKms, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local_kms.public_key()
    local_kms.signs(1)
    local_kms.error("sign", "ThrottlingException")  # the first checkpoint
    local_kms.error("sign", "ThrottlingException")  # the one close() still tries
    log = tmp_path / "audit.jsonl"
    code, out, err = kms_run(capsys, log, "--checkpoint-every", "2")
    assert (code, out) == (2, "")
    assert err == (
        "bot4: error: audit checkpoint signing failed: AWS KMS Sign with key "
        f"'{KMS_KEY}' failed: ThrottlingException: ThrottlingException (stubbed)\n"
    )
    local_kms.stubber.assert_no_pending_responses()
    assert checkpoint_notes(log) == []
    # The writer let go of the log: the next run can open it (and say what it found).
    AuditLog(log, fsync=FsyncPolicy.NEVER).close()


def test_kms_missing_key_prints_the_keygen_remedy(
    local_kms: LocalKms, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local_kms.error("get_public_key", "NotFoundException")
    code, out, err = kms_run(capsys, tmp_path / "audit.jsonl")
    assert (code, out) == (2, "")
    assert err.startswith("bot4: error: no audit signing key (AWS KMS GetPublicKey")
    assert err.endswith(
        f"create one with: bot4 audit keygen --key-id {KMS_KEY} (or run with --unsigned-audit)\n"
    )


def test_kms_sign_refuses_a_message_kms_would_not_take_raw(local_kms: LocalKms) -> None:
    with pytest.raises(SecretsError, match="RAW messages of 1 to 4096 bytes, not 4097"):
        KmsSecrets(local_kms.client).sign_ed25519(KMS_KEY, b"x" * 4097)
    local_kms.stubber.assert_no_pending_responses()


def test_moto_canary_ed25519_keys(kms_env: dict[str, str]) -> None:
    """The KMS checkpoint tests above use botocore's Stubber because moto rejects Ed25519
    keys. When a locked moto accepts them, this fails: then run those tests against moto's
    server as well (a second, independent KMS implementation) and drop this canary."""
    client = boto3.client(
        "kms", region_name=kms_env["BOT4_KMS_REGION"], endpoint_url=kms_env["BOT4_KMS_ENDPOINT"]
    )
    with pytest.raises(ClientError, match="ECC_NIST_EDWARDS25519"):
        client.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")


@pytest.mark.parametrize("missing", ["PublicKey", "Signature"])
def test_kms_answer_without_the_key_or_signature_is_one_line_and_nothing_is_written(
    local_kms: LocalKms, tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: str
) -> None:
    # a KMS-compatible endpoint (BOT4_KMS_ENDPOINT) answering 200 without the field: every
    # member of these outputs is optional in botocore's model, so the client passes it on
    answer = {"KeyId": KMS_ARN, "KeySpec": "ECC_NIST_EDWARDS25519", "KeyUsage": "SIGN_VERIFY"}
    if missing == "PublicKey":
        local_kms.stubber.add_response(
            "get_public_key", {**answer, "SigningAlgorithms": ["ED25519_SHA_512"]}
        )
    else:
        local_kms.public_key()
        local_kms.stubber.add_response(
            "sign", {"KeyId": KMS_ARN, "SigningAlgorithm": "ED25519_SHA_512"}
        )
    log = tmp_path / "audit.jsonl"
    code, out, err = kms_run(capsys, log)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    operation = {"PublicKey": "GetPublicKey", "Signature": "Sign"}[missing]
    assert err.endswith(f"AWS KMS {operation} with key '{KMS_KEY}' answered without {missing}\n")
    local_kms.stubber.assert_no_pending_responses()
    assert not log.exists()


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("BOT4_KMS_ENDPOINT", "not a url", "Invalid endpoint: not a url"),
        ("BOT4_KMS_REGION", "eu west 1", "Provided region_name 'eu west 1' doesn't match"),
    ],
)
def test_kms_misconfigured_endpoint_or_region_is_one_line_and_nothing_is_written(
    kms_stub_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    says: str,
) -> None:
    monkeypatch.setenv(name, value)  # boto3 refuses it while building the client
    log = tmp_path / "audit.jsonl"
    code, out, err = kms_run(capsys, log)
    assert (code, out) == (2, "")
    assert err.startswith("bot4: error: ") and says in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not log.exists()


def test_kms_keygen_answer_without_the_key_id_is_one_line_and_no_alias_is_made(
    local_kms: LocalKms, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # CreateKey answering 200 without KeyMetadata (an endpoint at BOT4_KMS_ENDPOINT): one
    # line, and no CreateAlias is sent (the Stubber would refuse an unqueued call)
    local_kms.stubber.add_response("create_key", {})
    pub = tmp_path / "k.pub"
    code, out, err = run(capsys, "audit", "keygen", "--key-id", KMS_KEY, "--public-out", str(pub))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.endswith(f"AWS KMS CreateKey with key '{KMS_KEY}' answered without KeyId\n")
    local_kms.stubber.assert_no_pending_responses()
    assert not pub.exists()


@pytest.mark.parametrize("deletion", ["scheduled", "refused"])
def test_kms_keygen_whose_alias_fails_leaves_no_orphaned_key(
    local_kms: LocalKms, tmp_path: Path, capsys: pytest.CaptureFixture[str], deletion: str
) -> None:
    """CreateKey made the key, CreateAlias failed: keygen schedules the new key's deletion
    (the shortest window) and says so in one line; if that fails too, the line names the
    key to delete by hand."""
    key_uuid = KMS_ARN.rpartition("/")[2]
    stub = local_kms.stubber
    stub.add_response("create_key", {"KeyMetadata": {"KeyId": key_uuid}})
    local_kms.error("create_alias", "LimitExceededException")
    if deletion == "scheduled":
        stub.add_response(
            "schedule_key_deletion",
            {"KeyId": KMS_ARN, "KeyState": "PendingDeletion", "PendingWindowInDays": 7},
            {"KeyId": key_uuid, "PendingWindowInDays": 7},
        )
    else:
        local_kms.error("schedule_key_deletion", "AccessDeniedException")
    pub = tmp_path / "k.pub"
    code, out, err = run(capsys, "audit", "keygen", "--key-id", KMS_KEY, "--public-out", str(pub))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"AWS KMS CreateAlias with key '{KMS_KEY}' failed: LimitExceededException" in err
    if deletion == "scheduled":
        assert err.endswith(f"key {key_uuid} it created is scheduled for deletion in 7 days\n")
    else:
        assert err.endswith(
            f"key {key_uuid} it created could not be scheduled for deletion "
            f"(AccessDeniedException): delete it by hand\n"
        )
    stub.assert_no_pending_responses()
    assert not pub.exists()
