from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bot4 import cli
from bot4.trading_engine.audit_log import (
    GENESIS,
    AuditLog,
    CheckpointKey,
    FsyncPolicy,
    record_hash,
    verify,
)
from bot4.trading_engine.errors import AuditError

HMAC = CheckpointKey(hmac_secret=b"k" * 32)


def ticking() -> Callable[[], int]:
    t = iter(range(1_000, 10**9, 7))
    return lambda: next(t)


def write_log(path: Path, n: int, **kwargs: object) -> AuditLog:
    log = AuditLog(path, fsync=FsyncPolicy.NEVER, clock=ticking(), **kwargs)  # type: ignore[arg-type]  # kwargs typed loosely on purpose
    for i in range(n):
        log.append("decision", {"order": i, "outcome": "pass" if i % 2 else "block"})
    log.close()
    return log


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_chain_roundtrip_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_log(a, 5)
    write_log(b, 5)
    assert a.read_bytes() == b.read_bytes()
    records = [json.loads(x) for x in lines(a)]
    assert records[0]["prev"] == GENESIS
    assert all(r["prev"] == p["sha256"] for p, r in itertools.pairwise(records))
    assert all(r["sha256"] == record_hash(r) for r in records)
    assert all(
        json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n" == raw
        for r, raw in zip(records, lines(a), strict=True)
    )
    verdict = verify([a])
    assert verdict.ok and verdict.records == 5 and verdict.head == records[-1]["sha256"]
    assert verdict.describe().startswith("OK: 5 records, 0 checkpoints verified")


def _tamper(path: Path, edit: str) -> None:
    rows = lines(path)
    if edit == "edit":
        rec = json.loads(rows[2])
        rec["data"]["outcome"] = "pass-forced"
        rows[2] = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    elif edit == "delete":
        del rows[2]
    elif edit == "insert":
        rows.insert(2, rows[1])
    elif edit == "reorder":
        rows[2], rows[3] = rows[3], rows[2]
    elif edit == "rehash":  # an edit that also fixes its own hash still breaks the next link
        rec = json.loads(rows[2])
        rec["data"]["outcome"] = "x"
        rec["sha256"] = record_hash(rec)
        rows[2] = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(rows))


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        ("edit", 3, "record hash mismatch (record edited)"),
        ("delete", 3, "sequence 3, expected 2 (record deleted)"),
        ("insert", 3, "sequence 1, expected 2 (record inserted or reordered)"),
        ("reorder", 3, "sequence 3, expected 2 (record deleted)"),
        ("rehash", 4, "previous-hash link broken"),
    ],
)
def test_tampering_names_the_first_bad_line(
    tmp_path: Path, edit: str, line: int, message: str
) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 6)
    _tamper(path, edit)
    verdict = verify([path])
    assert not verdict.ok
    assert verdict.problem is not None
    assert verdict.problem.startswith(f"{path}:{line}: {message}")


def test_renumbered_insert_is_still_caught(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 4)
    rows = [json.loads(x) for x in lines(path)]
    forged = dict(rows[1], seq=2, data={"order": 99})
    forged["sha256"] = record_hash(forged)
    path.write_bytes(
        b"".join(
            json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n"
            for r in [*rows[:2], forged]
        )
    )
    verdict = verify([path])
    assert (
        verdict.problem
        == f"{path}:3: previous-hash link broken (record inserted, deleted or reordered)"
    )


def test_garbage_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"{not json\n")
    assert verify([path]).problem == f"{path}:1: not valid JSON"
    path.write_bytes(b'{"format": "other"}\n')
    assert verify([path]).problem == f"{path}:1: not a bot4-audit/1 record"
    with pytest.raises(AuditError, match="no such file"):
        verify([tmp_path / "missing"])
    with pytest.raises(AuditError, match="is a directory"):
        verify([tmp_path])
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert verify([empty]).ok


def test_torn_last_line_is_reported_and_set_aside_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    complete = path.read_bytes()
    with path.open("ab") as f:  # what a power cut in the middle of a write leaves behind
        f.write(b'{"format":"bot4-audit/1","seq":3,"da')
    verdict = verify([path])
    assert verdict.ok and verdict.truncated_tail and verdict.records == 3
    assert "last line truncated" in verdict.describe()
    log = AuditLog(path, fsync=FsyncPolicy.NEVER, clock=ticking())
    assert log.next_seq == 3
    log.append("decision", {"order": 3})
    log.close()
    assert path.read_bytes().startswith(complete)
    assert (
        (tmp_path / "audit.jsonl.torn").read_bytes().startswith(b'{"format":"bot4-audit/1","seq":3')
    )
    verdict = verify([path])
    assert verdict.ok and verdict.records == 4 and not verdict.truncated_tail


def test_killing_a_writer_leaves_a_verifiable_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from bot4.trading_engine.audit_log import AuditLog, FsyncPolicy
        log = AuditLog(Path({str(path)!r}), fsync=FsyncPolicy.NEVER)
        i = 0
        while True:
            log.append("decision", {{"order": i, "pad": "x" * (i % 500)}})
            i += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while (not path.exists() or path.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    verdict = verify([path])
    assert verdict.ok, verdict.problem
    assert verdict.records > 100
    # The writer resumes on the same chain after the crash.
    log = AuditLog(path, fsync=FsyncPolicy.NEVER)
    assert log.next_seq == verdict.records + 0
    log.append("restart", {})
    log.close()
    assert verify([path]).ok


def test_rotation_keeps_one_chain_across_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = write_log(path, 40, rotate_bytes=2048)
    files = log.rotated_files()
    assert len(files) > 2
    assert verify(files).ok and verify(files).records == 40
    assert not verify(files[1:]).ok  # a part alone does not start at the genesis
    assert not verify([files[1], files[0], *files[2:]]).ok
    # Restarting right after a rotation continues from the newest rotated part.
    path.unlink()
    path.touch()
    reopened = AuditLog(path, fsync=FsyncPolicy.NEVER, clock=ticking(), rotate_bytes=2048)
    reopened.append("restart", {})
    reopened.close()
    assert verify(reopened.rotated_files()).ok


def test_truncated_record_in_a_middle_file_fails(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_log(a, 2)
    a.write_bytes(a.read_bytes()[:-10])
    b.write_bytes(b"")
    assert verify([a, b]).problem == f"{a}:2: truncated record"


def test_hmac_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 10, checkpoint_key=HMAC, checkpoint_every=3)
    verdict = verify([path], HMAC)
    assert verdict.ok and verdict.checkpoints == 3 and verdict.records == 13
    wrong = CheckpointKey(hmac_secret=b"x" * 32)
    assert "checkpoint signature does not verify" in (verify([path], wrong).problem or "")
    assert verify([path]).ok  # without a key only the chain is checked
    assert "secret material redacted" in repr(HMAC) and "kkkk" not in repr(HMAC)


def test_forged_checkpoint_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3, checkpoint_key=HMAC, checkpoint_every=3)
    rows = [json.loads(x) for x in lines(path)]
    rows[-1]["data"]["head"] = "f" * 64
    rows[-1]["sha256"] = record_hash(rows[-1])
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    assert verify([path], HMAC).problem == f"{path}:4: checkpoint names a different chain head"


def test_ed25519_checkpoints_need_only_the_public_key(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.jsonl"
    log = write_log(
        path, 2, checkpoint_key=CheckpointKey(signing_key=private), checkpoint_every=100
    )
    assert log.head
    reopened = AuditLog(
        path, fsync=FsyncPolicy.ALWAYS, checkpoint_key=CheckpointKey(signing_key=private)
    )
    reopened.checkpoint()
    reopened.close()
    public_only = CheckpointKey(verify_key=private.public_key())
    assert verify([path], public_only).checkpoints == 1
    other = CheckpointKey(verify_key=Ed25519PrivateKey.generate().public_key())
    assert not verify([path], other).ok
    with pytest.raises(AuditError, match="no private half"):
        public_only.sign("00")
    assert not CheckpointKey().check("00", "zz")


def test_writer_errors(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="must be ≥ 1"):
        AuditLog(tmp_path / "a", fsync_every=0)
    with pytest.raises(AuditError, match="rotate_bytes must be ≥ 1024"):
        AuditLog(tmp_path / "a", rotate_bytes=10)
    log = AuditLog(tmp_path / "a", fsync=FsyncPolicy.INTERVAL, fsync_every=2)
    with pytest.raises(AuditError, match="not JSON-serialisable"):
        log.append("x", {"bad": object()})
    with pytest.raises(AuditError, match="no checkpoint key"):
        log.checkpoint()
    log.append("x", {})
    log.append("x", {})
    with log:
        pass
    with pytest.raises(AuditError, match="audit log is closed"):
        log.append("x", {})
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"garbage\n")
    with pytest.raises(AuditError, match="last record is not valid"):
        AuditLog(bad)
    only_torn = tmp_path / "torn.jsonl"
    only_torn.write_bytes(b"partial")
    assert AuditLog(only_torn).next_seq == 0


def test_cli_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    key_file = tmp_path / "hmac.key"
    key_file.write_bytes(b"k" * 32)
    write_log(path, 4, checkpoint_key=HMAC, checkpoint_every=2)
    assert cli.main(["audit", "verify", str(path), "--hmac-key-file", str(key_file)]) == 0
    assert capsys.readouterr().out.startswith("OK: 6 records, 2 checkpoints verified")
    _tamper(path, "edit")
    assert cli.main(["audit", "verify", str(path)]) == 1
    assert capsys.readouterr().out == f"FAILED: {path}:3: record hash mismatch (record edited)\n"


def test_cli_key_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    assert cli.main(["audit", "verify", str(path), "--hmac-key-file", str(short)]) == 2
    assert "at least 16 bytes" in capsys.readouterr().err
    assert cli.main(["audit", "verify", str(path), "--hmac-key-file", str(tmp_path / "nope")]) == 2
    assert "cannot read key" in capsys.readouterr().err
    pem = tmp_path / "k.pem"
    pem.write_bytes(b"not pem")
    assert cli.main(["audit", "verify", str(path), "--public-key", str(pem)]) == 2
    assert "not a readable PEM public key" in capsys.readouterr().err
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    pem.write_bytes(
        generate_private_key(SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    assert cli.main(["audit", "verify", str(path), "--public-key", str(pem)]) == 2
    assert "not an Ed25519 public key" in capsys.readouterr().err
    good = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    pem.write_bytes(good)
    assert cli.main(["audit", "verify", str(path), "--public-key", str(pem)]) == 0
