"""``bot4 audit prove|consistency|check-proof|head|keygen`` and key loading, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bot4 import cli
from bot4.infrastructure.metrics import Metrics
from bot4.trading_engine.audit_keys import load_signer
from bot4.trading_engine.audit_log import AuditLog, FsyncPolicy, canonical, record_hash
from bot4.trading_engine.checkpoint import Checkpoint, NoteSigner
from bot4.trading_engine.errors import AuditError

PRIVATE = Ed25519PrivateKey.from_private_bytes(b"\x03" * 32)
SIGNER = NoteSigner.from_private("k", PRIVATE)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "audit.jsonl"
    with AuditLog(log, fsync=FsyncPolicy.NEVER, signer=SIGNER, checkpoint_every=4) as audit:
        for i in range(10):
            audit.append("decision", {"i": i})
        audit.append("summary", {})
    pub = tmp_path / "k.pub"
    pub.write_bytes(
        PRIVATE.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return log, pub


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_inclusion_proof_round_trip_and_tampering(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, pub = setup
    code, out, _ = run(capsys, "audit", "prove", str(log), "5", "--key", str(pub))
    assert code == 0
    proof = json.loads(out)
    assert proof["index"] == 5 and proof["tree_size"] == 13 and len(proof["proof"]) == 4
    path = tmp_path / "p.json"
    path.write_text(out)
    assert run(capsys, "audit", "check-proof", str(path), "--key", str(pub)) == (
        0,
        "OK: record 5 is in the log under the signed tree of size 13\n",
        "",
    )
    proof["record"]["data"]["i"] = 99
    path.write_text(json.dumps(proof))
    assert run(capsys, "audit", "check-proof", str(path), "--key", str(pub))[:2] == (
        1,
        "FAILED: proof does not show that record 5 is in the log under the signed tree "
        "of size 13\n",
    )
    other = tmp_path / "other.pub"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    code, _, err = run(capsys, "audit", "check-proof", str(path), "--key", str(other))
    assert code == 2 and err == (
        "bot4: error: signed checkpoint does not verify with the given key "
        "(no signature by this key)\n"
    )
    code, _, err = run(capsys, "audit", "prove", str(log), "13", "--key", str(pub))
    assert (code, err) == (
        2,
        "bot4: error: record 13 is not covered by a checkpoint (signed tree size 13)\n",
    )


def test_consistency_proof_from_a_held_checkpoint(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, pub = setup
    old = tmp_path / "old.note"
    old.write_text(json.loads(log.read_text().splitlines()[4])["data"]["note"])
    code, out, _ = run(capsys, "audit", "consistency", str(log), str(old), "--key", str(pub))
    assert code == 0 and json.loads(out)["size1"] == 4 and json.loads(out)["size2"] == 13
    path = tmp_path / "c.json"
    path.write_text(out)
    assert run(capsys, "audit", "check-proof", str(path), "--key", str(pub)) == (
        0,
        "OK: the signed tree of size 13 extends the one of size 4\n",
        "",
    )
    proof = json.loads(out)
    proof["proof"][0] = "00" * 32
    path.write_text(json.dumps(proof))
    assert run(capsys, "audit", "check-proof", str(path), "--key", str(pub))[0] == 1
    code, out, _ = run(capsys, "audit", "consistency", str(log), "9", "13")
    assert code == 0 and json.loads(out)["size1"] == 9
    for bad, why in [
        ("7", "no checkpoint of tree size 7"),
        (str(tmp_path / "nope"), "not a checkpoint file"),
    ]:
        code, _, err = run(capsys, "audit", "consistency", str(log), bad)
        assert code == 2 and why in err
    code, _, err = run(capsys, "audit", "consistency", str(log), "13", "4")
    assert code == 2 and "larger than new tree size" in err


def test_bad_proofs_and_logs_are_one_line(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, pub = setup
    path = tmp_path / "p.json"
    for text, why in [
        ("nope", "not a readable JSON proof"),
        ('{"type": "x"}', "not an inclusion or consistency proof"),
        ('{"type": "inclusion"}', "proof has no signed checkpoint"),
    ]:
        path.write_text(text)
        code, _, err = run(capsys, "audit", "check-proof", str(path), "--key", str(pub))
        assert code == 2 and why in err and err.count("\n") == 1
    rows = log.read_text().splitlines(keepends=True)
    note = json.loads(rows[4])["data"]["note"]
    for proof, why in [
        ({"type": "inclusion", "checkpoint": note}, "needs a record and an index"),
        (
            {"type": "inclusion", "checkpoint": note, "record": {}, "index": 0, "proof": "x"},
            "not a list of hex",
        ),
        (
            {"type": "inclusion", "checkpoint": note, "record": {}, "index": 0, "proof": ["zz"]},
            "not a list of hex",
        ),
    ]:
        path.write_text(json.dumps(proof))
        code, _, err = run(capsys, "audit", "check-proof", str(path), "--key", str(pub))
        assert code == 2 and why in err
    empty = tmp_path / "empty.jsonl"
    with AuditLog(empty, fsync=FsyncPolicy.NEVER) as audit:
        audit.append("x", {})
    for argv in (["head", str(empty)], ["consistency", str(empty), "1"]):
        code, _, err = run(capsys, "audit", *argv)
        assert code == 2 and "has no checkpoints" in err
    log.write_text(rows[1] + "".join(rows[2:]))
    code, _, err = run(capsys, "audit", "prove", str(log), "1")
    assert code == 2 and err.startswith(f"bot4: error: {log}: does not verify (")


def test_key_files_and_keygen(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    setup: tuple[Path, Path],
) -> None:
    log = setup[0]
    key = tmp_path / "k"
    for data, why in [
        (b"-----BEGIN PUBLIC KEY-----\nxx\n", "not a readable PEM public key"),
        (
            generate_private_key(SECP256R1())
            .public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
            "not an Ed25519 public key",
        ),
        (b"garbage", "not a PEM public key or verifier key"),
    ]:
        key.write_bytes(data)
        code, _, err = run(capsys, "audit", "verify", str(log), "--key", str(key))
        assert code == 2 and why in err
    code, _, err = run(capsys, "audit", "verify", str(log), "--key", str(tmp_path / "missing"))
    assert code == 2 and "cannot read key" in err
    code, _, err = run(capsys, "audit", "verify", str(log), "--checkpoint", str(log))
    assert code == 2 and "--checkpoint needs --key" in err
    monkeypatch.setenv("BOT4_SECRETS_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("BOT4_AUDIT_KEY", "audit-test")
    code, vkey, _ = run(capsys, "audit", "keygen")
    assert code == 0 and vkey.startswith("audit-test+")
    assert (tmp_path / "s" / "audit-test.ed25519.pem").stat().st_mode & 0o777 == 0o600
    code, _, err = run(capsys, "audit", "keygen")
    assert code == 2 and "already exists" in err
    signer = load_signer("audit-test")
    assert signer.verifier().vkey() == vkey.strip()
    monkeypatch.setenv("BOT4_SECRETS", "kms")  # KMS itself: test_audit_keys.py (Stubber)
    for name in ("BOT4_KMS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    refusal = "bot4: error: the KMS backend needs a region: set BOT4_KMS_REGION or AWS_REGION\n"
    with pytest.raises(AuditError, match=r"^the KMS backend needs a region"):
        load_signer("audit-test")
    assert run(capsys, "audit", "keygen") == (2, "", refusal)


def test_checkpoints_are_exported_as_metrics(tmp_path: Path) -> None:
    metrics = Metrics()
    with AuditLog(
        tmp_path / "a",
        fsync=FsyncPolicy.NEVER,
        signer=SIGNER,
        checkpoint_every=2,
        on_checkpoint=lambda c: metrics.record_checkpoint(c.origin, c.size, c.root.hex()),
    ) as audit:
        for i in range(3):
            audit.append("x", {"i": i})
        root = audit.root().hex()
    text = metrics.exposition().decode()
    assert "audit_tree_size 4.0" in text
    assert f'audit_tree_head{{origin="bot4/audit",root="{root}"}} 4.0' in text
    assert text.count("audit_tree_head{") == 1


def test_legacy_key_options_and_held_checkpoint_errors(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, pub = setup
    old = tmp_path / "old.jsonl"
    record: dict[str, object] = {"at_ns": 0, "data": {}, "format": "bot4-audit/1", "kind": "x"}
    record.update(prev="0" * 64, seq=0)
    record["sha256"] = record_hash(record)
    old.write_bytes(canonical(record) + b"\n")
    hkey = tmp_path / "hmac.key"
    hkey.write_bytes(b"k" * 32)
    code, out, _ = run(capsys, "audit", "verify", str(old), "--hmac-key-file", str(hkey))
    assert code == 1 and "legacy chain, no checkpoints: 1 bot4-audit/1 records" in out
    code, out, _ = run(capsys, "audit", "verify", str(old), "--key", str(pub), "--allow-legacy")
    assert code == 0 and out.splitlines()[-1].startswith("OK: 1 records")
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    code, _, err = run(capsys, "audit", "verify", str(old), "--hmac-key-file", str(short))
    assert code == 2 and "at least 16 bytes" in err
    code, _, err = run(capsys, "audit", "verify", str(old), "--hmac-key-file", str(tmp_path / "x"))
    assert code == 2 and "cannot read key" in err
    code, _, err = run(
        capsys, "audit", "verify", str(log), "--key", str(pub), "--checkpoint", str(tmp_path / "x")
    )
    assert code == 2 and "cannot read checkpoint" in err
    forged = tmp_path / "forged.note"
    forged.write_text(
        NoteSigner.from_private("k", Ed25519PrivateKey.generate()).sign(
            Checkpoint("bot4/audit", 1, b"\0" * 32)
        )
    )
    code, _, err = run(
        capsys, "audit", "verify", str(log), "--key", str(pub), "--checkpoint", str(forged)
    )
    assert code == 2 and "checkpoint does not verify with the given key" in err
    held = tmp_path / "held.note"
    held.write_text(SIGNER.sign(Checkpoint("bot4/audit", 3, b"\0" * 32)))
    code, out, _ = run(
        capsys, "audit", "verify", str(log), "--key", str(pub), "--checkpoint", str(held)
    )
    assert (code, out) == (
        1,
        "FAILED: log rewritten: its first 3 records do not match the checkpoint held outside it\n",
    )
