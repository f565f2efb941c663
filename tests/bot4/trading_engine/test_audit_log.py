from __future__ import annotations

import hashlib
import hmac
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
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from bot4.trading_engine import merkle
from bot4.trading_engine.audit_log import (
    FORMAT,
    GENESIS,
    LEGACY_FORMAT,
    AuditLog,
    CheckpointKey,
    FsyncPolicy,
    _encode_record,
    canonical,
    record_hash,
    record_leaf,
    verify,
)
from bot4.trading_engine.checkpoint import Checkpoint, NoteSigner
from bot4.trading_engine.errors import AuditError

SIGNER = NoteSigner.from_private("test-key", Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
KEY = SIGNER.verifier()


def ticking() -> Callable[[], int]:
    t = iter(range(1_000, 10**12, 7))
    return lambda: next(t)


def write_log(path: Path, n: int, *, close: bool = True, **kwargs: Any) -> AuditLog:
    kwargs.setdefault("signer", SIGNER)
    log = AuditLog(path, fsync=FsyncPolicy.NEVER, clock=ticking(), **kwargs)
    for i in range(n):
        log.append("decision", {"order": i, "outcome": "pass" if i % 2 else "block"})
    if close:
        log.append("summary", {"n": n})
        log.close()
    return log


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def line_of(record: dict[str, Any]) -> bytes:
    return canonical(record) + b"\n"


def test_log_is_deterministic_chained_and_a_merkle_tree(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_log(a, 5, checkpoint_every=3)
    write_log(b, 5, checkpoint_every=3)
    assert a.read_bytes() == b.read_bytes()
    records = [json.loads(x) for x in lines(a)]
    assert records[0]["prev"] == GENESIS
    assert all(r["prev"] == p["sha256"] for p, r in itertools.pairwise(records))
    assert all(line_of(r) == raw for r, raw in zip(records, lines(a), strict=True))
    kinds = [r["kind"] for r in records]
    # checkpoint every 3 records (each checkpoint counts), summary, closing checkpoint
    assert kinds == [
        *["decision"] * 3,
        "checkpoint",
        "decision",
        "decision",
        "summary",
        "checkpoint",
    ]
    note = records[-1]["data"]["note"]
    checkpoint = KEY.open(note)
    assert checkpoint.size == 7
    assert checkpoint.root == merkle.root([record_leaf(r["sha256"]) for r in records[:7]])
    verdict = verify([a], KEY)
    assert verdict.passes() and verdict.lines() == [
        f"OK: 8 records, 2 checkpoints verified, signed tree size 7, head {verdict.head[:16]}"
    ]


def test_checkpoint_interval_uses_the_log_clock(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    t = iter(range(0, 10**12, 400_000_000))  # 0.4 s per clock read
    log = AuditLog(
        path,
        fsync=FsyncPolicy.NEVER,
        signer=SIGNER,
        clock=lambda: next(t),
        checkpoint_interval_ns=1_000_000_000,
    )
    for i in range(6):
        log.append("decision", {"i": i})
    log.close()
    kinds = [json.loads(x)["kind"] for x in lines(path)]
    assert kinds.count("checkpoint") >= 2


def test_garbage_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"{not json\n")
    assert verify([path]).problem == f"{path}:1: not valid JSON"
    path.write_bytes(b'{"format": "other"}\n')
    assert verify([path]).problem == f"{path}:1: not a bot4-audit/2 record"
    with pytest.raises(AuditError, match="no such file"):
        verify([tmp_path / "missing"])
    with pytest.raises(AuditError, match="is a directory"):
        verify([tmp_path])
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert verify([empty], KEY).lines() == [
        "FAILED: run did not close cleanly: the log is empty (no 'summary' record)"
    ]


def test_torn_tail_is_a_finding_and_is_set_aside_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    complete = path.read_bytes()
    with path.open("ab") as f:  # what a power cut in the middle of a write leaves behind
        f.write(b'{"format":"bot4-audit/2","seq":5,"da')
    verdict = verify([path], KEY)
    assert verdict.ok and verdict.truncated_tail and not verdict.passes()
    assert verdict.lines() == [
        "FAILED: torn tail: the last line is incomplete (36 bytes after record 4)"
    ]
    assert verdict.passes({"torn-tail"})
    log = AuditLog(path, fsync=FsyncPolicy.NEVER, clock=ticking(), signer=SIGNER)
    assert log.next_seq == 6  # the crash is noted in a reopen record
    log.append("summary", {})
    log.close()
    assert path.read_bytes().startswith(complete)
    assert (tmp_path / "audit.jsonl.torn").read_bytes().startswith(b'{"format":"bot4-audit/2"')
    records = [json.loads(x) for x in lines(path)]
    assert records[5]["kind"] == "reopen"
    assert records[5]["data"] == {
        "previous_run": "did not close cleanly",
        "torn_bytes_set_aside": 36,
    }
    assert verify([path], KEY).passes()


@pytest.mark.e2e
def test_killing_a_writer_leaves_a_log_that_says_so(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from bot4.trading_engine.audit_log import AuditLog, FsyncPolicy
        from bot4.trading_engine.checkpoint import NoteSigner
        private = Ed25519PrivateKey.from_private_bytes(b"\\1" * 32)
        signer = NoteSigner.from_private("test-key", private)
        log = AuditLog(Path({str(path)!r}), fsync=FsyncPolicy.NEVER, signer=signer)
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
    verdict = verify([path], KEY)
    assert verdict.ok, verdict.problem
    assert verdict.records > 100 and verdict.checkpoints >= 1
    kinds = {f.kind for f in verdict.findings}
    assert "unclosed" in kinds and not verdict.passes()
    # The writer resumes the same tree after the crash and signs what it found.
    log = AuditLog(path, fsync=FsyncPolicy.NEVER, signer=SIGNER)
    assert log.next_seq == verdict.records + 1  # + the reopen record
    log.append("summary", {})
    log.close()
    assert verify([path], KEY).passes()


def test_rotation_keeps_one_tree_across_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = write_log(path, 40, rotate_bytes=2048, checkpoint_every=16)
    files = log.rotated_files()
    assert len(files) > 2
    verdict = verify(files, KEY)
    assert verdict.passes() and verdict.records == 44
    assert not verify(files[1:], KEY).ok  # a part alone does not start at the genesis
    assert not verify([files[1], files[0], *files[2:]], KEY).ok
    # Restarting right after a rotation continues from the rotated parts.
    before = verify(files[:-1], KEY).records
    path.unlink()
    path.touch()
    reopened = AuditLog(
        path, fsync=FsyncPolicy.NEVER, clock=ticking(), rotate_bytes=2048, signer=SIGNER
    )
    assert reopened.next_seq == before + 1  # + the reopen record: no summary there
    reopened.append("summary", {})
    reopened.close()
    assert verify(reopened.rotated_files(), KEY).passes()


def test_truncated_record_in_a_middle_file_fails(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_log(a, 2)
    a.write_bytes(a.read_bytes()[:-10])
    b.write_bytes(b"")
    assert verify([a, b]).problem == f"{a}:4: truncated record"


def test_one_writer_per_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first = write_log(path, 1, close=False)
    with pytest.raises(
        AuditError,
        match=r"audit log is in use by another process \(lock .*audit.jsonl.lock is held\)",
    ):
        AuditLog(path, signer=SIGNER)
    first.close()
    AuditLog(path, signer=SIGNER).close()


def test_writer_refuses_a_log_that_does_not_verify(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    rows = lines(path)
    rows[0] = rows[0].replace(b'"block"', b'"pass"')
    path.write_bytes(b"".join(rows))
    with pytest.raises(AuditError, match=r"existing log does not verify .*record 0 altered"):
        AuditLog(path, signer=SIGNER)
    other = NoteSigner.from_private("test-key", Ed25519PrivateKey.from_private_bytes(b"\x02" * 32))
    write_log(tmp_path / "b.jsonl", 2)
    with pytest.raises(AuditError, match="does not verify with the given key"):
        AuditLog(tmp_path / "b.jsonl", signer=other)


def test_writer_errors(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="must be ≥ 1"):
        AuditLog(tmp_path / "a", fsync_every=0)
    with pytest.raises(AuditError, match="rotate_bytes must be ≥ 1024"):
        AuditLog(tmp_path / "a", rotate_bytes=10)
    with pytest.raises(AuditError, match="origin must be one non-empty line"):
        AuditLog(tmp_path / "a", origin="a\nb")
    log = AuditLog(tmp_path / "a", fsync=FsyncPolicy.INTERVAL, fsync_every=2)
    with pytest.raises(AuditError, match="not JSON-serialisable"):
        log.append("x", {"bad": object()})
    with pytest.raises(AuditError, match="no checkpoint signing key"):
        log.checkpoint()
    log.append("x", {})
    log.append("x", {}, durable=True)
    with log:
        pass
    with pytest.raises(AuditError, match="audit log is closed"):
        log.append("x", {})
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"garbage\n")
    with pytest.raises(AuditError, match="existing log does not verify"):
        AuditLog(bad)
    only_torn = tmp_path / "torn.jsonl"
    only_torn.write_bytes(b"partial")
    assert AuditLog(only_torn).next_seq == 0


def test_checkpoint_callback_and_properties(tmp_path: Path) -> None:
    seen: list[Checkpoint] = []
    log = AuditLog(
        tmp_path / "a", fsync=FsyncPolicy.ALWAYS, signer=SIGNER, on_checkpoint=seen.append
    )
    log.append("x", {})
    root = log.root()
    log.checkpoint()
    assert seen == [Checkpoint("bot4/audit", 1, root)]
    assert log.signed_size == 1 and log.last_checkpoint is not None
    assert KEY.open(log.last_checkpoint).root == merkle.root(
        [record_leaf(json.loads(lines(tmp_path / "a")[0])["sha256"])]
    )
    log.close()


# --- legacy bot4-audit/1 logs -----------------------------------------------------------------


def legacy_log(path: Path, n: int, secret: bytes | None = None) -> None:
    head, out = GENESIS, []
    for i in range(n + (1 if secret else 0)):
        data: dict[str, Any] = {"order": i}
        kind = "decision"
        if secret and i == n:
            kind = "checkpoint"
            data = {
                "alg": "hmac-sha256",
                "head": head,
                "tag": hmac.new(secret, head.encode(), hashlib.sha256).hexdigest(),
            }
        record: dict[str, Any] = {
            "at_ns": i,
            "data": data,
            "format": LEGACY_FORMAT,
            "kind": kind,
            "prev": head,
            "seq": i,
        }
        record["sha256"] = record_hash(record)
        head = str(record["sha256"])
        out.append(line_of(record))
    path.write_bytes(b"".join(out))


def test_legacy_logs_are_read_but_never_signed(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    legacy_log(path, 4, secret=b"k" * 32)
    verdict = verify([path], CheckpointKey(hmac_secret=b"k" * 32))
    assert verdict.ok and not verdict.passes()
    assert verdict.lines() == [
        "FAILED: legacy chain, no checkpoints: 5 bot4-audit/1 records, chained but not signed "
        "(1 legacy head tags checked)"
    ]
    assert verdict.passes({"legacy"})
    assert "checkpoint signature does not verify" in (
        verify([path], CheckpointKey(hmac_secret=b"x" * 32)).problem or ""
    )
    with pytest.raises(AuditError, match="is a legacy bot4-audit/1 log; write to a new file"):
        AuditLog(path)
    rows = lines(path)
    rows[1] = rows[1].replace(b'"order":1', b'"order":7')
    path.write_bytes(b"".join(rows))
    assert (
        verify([path]).problem
        == f"{path}:2: record 1 altered: its hash does not match its contents"
    )


def test_one_origin_per_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2, origin="desk-a/audit")
    with pytest.raises(AuditError, match="is the log of origin 'desk-a/audit', not 'bot4/audit'"):
        AuditLog(path, signer=SIGNER)
    mixed = tmp_path / "mixed.jsonl"
    log = AuditLog(mixed, fsync=FsyncPolicy.NEVER, signer=SIGNER, clock=ticking())
    log.append("x", {})
    log.checkpoint()
    log._origin = "desk-b/audit"  # a checkpoint of another log, validly signed with this key
    log.append("summary", {})
    log.close()
    assert verify([mixed], KEY).problem == (
        f"{mixed}:4: checkpoint at record 3 is for another log (origin 'desk-b/audit')"
    )


def test_mixed_formats_and_unreadable_lines_after_a_legacy_start(tmp_path: Path) -> None:
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    legacy_log(old, 2)
    write_log(new, 1)
    assert verify([old, new]).problem == f"{new}:1: mixes bot4-audit/2 into a bot4-audit/1 log"
    assert verify([new, old]).problem == f"{old}:1: mixes bot4-audit/1 into a bot4-audit/2 log"
    with old.open("ab") as f:
        f.write(b"garbage\n")
    assert verify([old]).problem == f"{old}:3: not valid JSON"
    rows = [json.loads(x) for x in lines(new)]
    rows[0]["seq"] = -5
    rows[0]["sha256"] = record_hash(rows[0])
    new.write_bytes(line_of(rows[0]))
    assert verify([new]).problem == (
        f"{new}:1: records reordered or inserted at index 0: found record -5"
    )


def test_legacy_ed25519_head_tags() -> None:
    private = Ed25519PrivateKey.generate()
    head = "ab" * 32
    tag = private.sign(head.encode()).hex()
    assert CheckpointKey(signing_key=private).check(head, tag)
    assert CheckpointKey(verify_key=private.public_key()).check(head, tag)
    assert not CheckpointKey(verify_key=private.public_key()).check(head, "00" * 64)
    assert not CheckpointKey(verify_key=private.public_key()).check(head, "not hex")
    assert not CheckpointKey().check(head, tag)
    assert "redacted" in repr(CheckpointKey(signing_key=private))


def test_a_signed_writer_says_what_unsigned_records_it_signs_over(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3, signer=None)  # an --unsigned-audit run that closed cleanly
    assert not verify([path], KEY).passes()
    log = AuditLog(path, fsync=FsyncPolicy.NEVER, signer=SIGNER, clock=ticking())
    log.append("summary", {})
    log.close()
    records = [json.loads(x) for x in lines(path)]
    assert records[4]["kind"] == "reopen"
    assert records[4]["data"] == {"previous_run": "closed cleanly", "unsigned_records": 4}
    assert verify([path], KEY).passes()


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.e2e
@given(st.dictionaries(st.text(), _JSON, max_size=6))
def test_canonical_is_byte_for_byte_json_dumps(obj: dict[str, Any]) -> None:
    """The reused C encoder is the encoder json.dumps builds per call: the same bytes."""
    reference = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical(obj) == reference.encode()


def test_unencodable_and_circular_records_are_one_line_errors(tmp_path: Path) -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    cases = (
        ({"x": object()}, "Object of type object is not JSON serializable"),
        (circular, "Circular reference detected"),
    )
    with AuditLog(tmp_path / "a", fsync=FsyncPolicy.NEVER) as audit:
        for data, why in cases:
            with pytest.raises(
                AuditError, match=f"^audit record 'd' is not JSON-serialisable: {why}"
            ):
                audit.append("d", data)
        audit.append("d", {"x": 1})  # nothing half-written: the log goes on
    with pytest.raises(ValueError, match="Circular reference detected"):
        canonical(circular)
    assert [json.loads(line)["seq"] for line in (tmp_path / "a").read_text().splitlines()] == [0]


@pytest.mark.e2e
@given(
    st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False)),
    st.dictionaries(st.text(), _JSON, max_size=6),
    st.text(),
    st.binary(min_size=32, max_size=32).map(bytes.hex),
    st.integers(min_value=0),
)
def test_the_writers_record_layout_is_the_canonical_encoding(
    at_ns: int, data: dict[str, Any], kind: str, prev: str, seq: int
) -> None:
    record = {"at_ns": at_ns, "data": data, "format": FORMAT, "kind": kind, "prev": prev}
    expected = canonical({**record, "seq": seq})
    assert _encode_record(at_ns, data, kind, prev, seq) == expected


@pytest.mark.parametrize("clock", [ticking, lambda: itertools.count(1.5).__next__])
def test_append_canonical_writes_what_append_writes(
    tmp_path: Path, clock: Callable[[], Callable[[], Any]]
) -> None:
    """A pre-encoded body (even with a clock that is not an int) gives the same records,
    checkpoints included."""
    data: list[dict[str, Any]] = [{"b": 1.5, "a": "x\n"}, {"z": [1, 2]}, {}]
    for name in ("append", "canonical"):
        with AuditLog(
            tmp_path / name,
            fsync=FsyncPolicy.NEVER,
            signer=SIGNER,
            checkpoint_every=2,
            clock=clock(),
        ) as audit:
            for d in data:
                if name == "append":
                    audit.append("decision", d)
                else:
                    audit.append_canonical("decision", canonical(d).decode())
    assert (tmp_path / "append").read_bytes() == (tmp_path / "canonical").read_bytes()
    assert verify([tmp_path / "canonical"], KEY).passes({"unclosed"})
    with pytest.raises(AuditError, match=r"audit log is closed$"):
        audit.append_canonical("decision", "{}")
