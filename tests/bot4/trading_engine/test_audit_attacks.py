"""An attacker with write access to the log, against ``bot4 audit verify`` (the real CLI).

Each attack asserts the exact verdict lines and the exit code. The log is written by a
real ``bot4 run`` with a real Ed25519 key from the file secrets backend.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4 import cli
from bot4.trading_engine import merkle
from bot4.trading_engine.audit_log import (
    AuditLog,
    FsyncPolicy,
    canonical,
    record_hash,
    record_leaf,
    verify,
)
from bot4.trading_engine.checkpoint import Checkpoint, NoteSigner

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
KEY_NAME = "audit-checkpoint"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(log, public key): one real engine run with a checkpoint every 5 records."""
    root = tmp_path_factory.mktemp("base")
    mp = pytest.MonkeyPatch()
    mp.setenv("BOT4_SECRETS_DIR", str(root / "secrets"))
    mp.delenv("BOT4_SECRETS", raising=False)
    mp.delenv("BOT4_AUDIT_KEY", raising=False)
    try:
        pub = root / "audit.pub"
        assert cli.main(["audit", "keygen", "--public-out", str(pub)]) == 0
        log = root / "audit.jsonl"
        argv = ["run", str(EXAMPLES / "reverting.toml"), "--engine", str(EXAMPLES / "engine.toml")]
        argv += ["--audit-log", str(log), "--duration", "30", "--fsync", "never"]
        assert cli.main([*argv, "--checkpoint-every", "5"]) == 0
    finally:
        mp.undo()
    return log, pub


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_bytes().splitlines()]


def write(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(canonical(r) + b"\n" for r in records))


def rechain(records: list[dict[str, Any]], signer: NoteSigner | None = None) -> None:
    """What an attacker without the key can do: renumber, re-link, re-hash, rebuild the tree
    (and, with ``signer``, re-sign every checkpoint with a key of their own)."""
    head = "0" * 64
    frontier = merkle.Frontier()
    for i, r in enumerate(records):
        r["seq"], r["prev"] = i, head
        if r["kind"] == "checkpoint" and signer is not None:
            r["data"]["note"] = signer.sign(Checkpoint("bot4/audit", i, frontier.root()))
        r["sha256"] = record_hash(r)
        head = r["sha256"]
        frontier.append(record_leaf(head))


def checkpoints(records: list[dict[str, Any]]) -> list[int]:
    return [i for i, r in enumerate(records) if r["kind"] == "checkpoint"]


def run_verify(
    capsys: pytest.CaptureFixture[str], log: Path, pub: Path, *extra: str
) -> tuple[int, list[str]]:
    code = cli.main(["audit", "verify", str(log), "--key", str(pub), *extra])
    captured = capsys.readouterr()
    assert captured.err == ""
    return code, captured.out.splitlines()


@pytest.fixture
def attacked(base: tuple[Path, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "audit.jsonl"
    shutil.copyfile(base[0], copy)
    return copy


def test_the_untouched_log_is_clean(
    base: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    log, pub = base
    records = rows(log)
    assert records[-2]["kind"] == "summary" and records[-1]["kind"] == "checkpoint"
    assert len(checkpoints(records)) >= 3
    code, out = run_verify(capsys, log, pub)
    n = len(records)
    assert (code, len(out)) == (0, 1)
    assert out[0].startswith(f"OK: {n} records, {len(checkpoints(records))} checkpoints verified, ")
    assert f"signed tree size {n - 1}, head " in out[0]


def test_torn_last_line(
    attacked: Path, base: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    n = len(rows(attacked))
    with attacked.open("ab") as f:
        f.write(b'{"at_ns":1,"da')
    code, out = run_verify(capsys, attacked, base[1])
    assert (code, out) == (
        1,
        [f"FAILED: torn tail: the last line is incomplete (14 bytes after record {n - 1})"],
    )
    code, out = run_verify(capsys, attacked, base[1], "--allow-torn-tail")
    assert (
        code == 0
        and out[0]
        == f"accepted: torn tail: the last line is incomplete (14 bytes after record {n - 1})"
    )
    assert out[1].startswith(f"OK: {n} records")


def test_last_record_dropped(
    attacked: Path, base: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    records = rows(attacked)
    write(attacked, records[:-1])
    code, out = run_verify(capsys, attacked, base[1])
    last_cp = checkpoints(records)[-2]
    unsigned = len(records) - 2 - last_cp
    assert (code, out) == (
        1,
        [
            f"FAILED: unsigned tail: {unsigned} records after the last checkpoint "
            f"(signed tree size {last_cp})"
        ],
    )
    code, out = run_verify(capsys, attacked, base[1], "--allow-unsigned-tail")
    assert code == 0 and out[0].startswith("accepted: unsigned tail: ")


def test_last_record_replaced_without_newline(
    attacked: Path, base: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    records = rows(attacked)
    forged = dict(records[-1], data={"note": "nothing to see"})
    forged["sha256"] = record_hash(forged)
    write(attacked, records[:-1])
    with attacked.open("ab") as f:
        f.write(canonical(forged))
    code, out = run_verify(capsys, attacked, base[1], "--allow-torn-tail")
    n = len(records) - 1
    assert code == 1
    assert (
        out[0] == "accepted: torn tail: the last line is incomplete "
        f"({len(canonical(forged))} bytes after record {n - 1})"
    )
    assert out[1].startswith("FAILED: unsigned tail: ")


def test_middle_record_edited_with_chain_and_tree_recomputed(
    attacked: Path, base: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    records = rows(attacked)
    victim = next(i for i, r in enumerate(records) if r["kind"] == "decision" and i > 6)
    records[victim]["data"]["allowed"] = not records[victim]["data"]["allowed"]
    rechain(records)  # chain and Merkle tree are consistent again; the signatures are not
    write(attacked, records)
    cps = checkpoints(records)
    bad = next(c for c in cps if c > victim)
    good = max([c for c in cps if c < victim], default=0)
    code, out = run_verify(capsys, attacked, base[1])
    assert (code, out) == (
        1,
        [
            f"FAILED: {attacked}:{bad + 1}: records altered: the checkpoint at record {bad} does "
            f"not match them; the first bad record is between index {good} and {bad - 1}"
        ],
    )


def test_everything_recomputed_and_re_signed_with_another_key(
    attacked: Path, base: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    records = rows(attacked)
    records[3]["data"]["allowed"] = True
    mallory = NoteSigner.from_private(KEY_NAME, Ed25519PrivateKey.generate())
    rechain(records, mallory)
    write(attacked, records)
    first_cp = checkpoints(records)[0]
    code, out = run_verify(capsys, attacked, base[1])
    assert (code, out) == (
        1,
        [
            f"FAILED: {attacked}:{first_cp + 1}: checkpoint at record {first_cp} does not verify "
            "with the given key (no signature by this key): forged, or signed by another key"
        ],
    )


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        ("swap", "records reordered at index 4: record 5 comes before record 4"),
        ("delete-first", "records deleted at index 0: records 0..0 are missing"),
        ("delete-middle", "records deleted at index 4: records 4..4 are missing"),
        ("insert", "record inserted at index 5: a second copy of record 4"),
        ("edit", "record 4 altered: its hash does not match its contents"),
        (
            "rehash",
            "record 5 altered: previous-hash link broken (record replaced, or records "
            "inserted/deleted and renumbered)",
        ),
    ],
)
def test_chain_attacks_name_the_first_bad_record(
    attacked: Path,
    base: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    attack: str,
    message: str,
) -> None:
    records = rows(attacked)
    line = 5
    if attack == "swap":
        records[4], records[5] = records[5], records[4]
    elif attack == "delete-first":
        del records[0]
        line = 1
    elif attack == "delete-middle":
        del records[4]
    elif attack == "insert":
        records.insert(5, dict(records[4]))
        line = 6
    elif attack == "edit":
        records[4]["data"]["allowed"] = not records[4]["data"]["allowed"]
    else:  # an edit that also fixes its own hash breaks the next link
        records[4]["data"]["allowed"] = not records[4]["data"]["allowed"]
        records[4]["sha256"] = record_hash(records[4])
        line = 6
    write(attacked, records)
    code, out = run_verify(capsys, attacked, base[1])
    assert (code, out) == (1, [f"FAILED: {attacked}:{line}: {message}"])


def test_truncated_to_an_earlier_checkpoint(
    attacked: Path, base: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    records = rows(attacked)
    held = tmp_path / "head.note"  # what a witness / the metrics scraper kept of the head
    assert cli.main(["audit", "head", str(attacked), "--key", str(base[1])]) == 0
    held.write_text(capsys.readouterr().out, encoding="utf-8")
    cut = checkpoints(records)[1]
    when = datetime.fromtimestamp(records[cut]["at_ns"] / 1e9, tz=UTC).isoformat(
        "T", "milliseconds"
    )
    write(attacked, records[: cut + 1])
    code, out = run_verify(capsys, attacked, base[1])
    assert (code, out) == (
        1,
        [
            f"FAILED: run did not close cleanly: last record {cut} at {when} "
            "is not a closing 'summary' record"
        ],
    )
    code, out = run_verify(capsys, attacked, base[1], "--checkpoint", str(held))
    n = len(records)
    assert (code, out) == (
        1,
        [
            f"FAILED: truncated: the log has {cut + 1} records but a checkpoint held outside it "
            f"signs {n - 1} (records {cut + 1}..{n - 2} removed)"
        ],
    )


@pytest.mark.e2e
def test_two_logs_spliced(
    attacked: Path,
    base: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOT4_SECRETS_DIR", str(base[0].parent / "secrets"))
    other = tmp_path / "other.jsonl"
    argv = ["run", str(EXAMPLES / "basic.toml"), "--engine", str(EXAMPLES / "engine.toml")]
    argv += [
        "--audit-log",
        str(other),
        "--duration",
        "30",
        "--seed",
        "11",
        "--checkpoint-every",
        "5",
    ]
    assert cli.main(argv) == 0
    capsys.readouterr()
    a, b = rows(attacked), rows(other)
    assert a[7] != b[7] and len(b) > 9  # two different runs, signed with the same key
    write(attacked, a[:8] + b[8:])
    code, out = run_verify(capsys, attacked, base[1])
    assert code == 1 and len(out) == 1
    assert out[0].startswith(f"FAILED: {attacked}:9: record 8 altered: previous-hash link broken")


def test_legacy_logs_need_an_explicit_flag(
    tmp_path: Path, base: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "old.jsonl"
    head, records = "0" * 64, []
    for i in range(3):
        r: dict[str, Any] = {
            "at_ns": i,
            "data": {},
            "format": "bot4-audit/1",
            "kind": "decision",
            "prev": head,
            "seq": i,
        }
        r["sha256"] = head = record_hash(r)
        records.append(r)
    write(log, records)
    message = (
        "legacy chain, no checkpoints: 3 bot4-audit/1 records, chained but not signed "
        "(0 legacy head tags checked)"
    )
    assert run_verify(capsys, log, base[1]) == (1, [f"FAILED: {message}"])
    code, out = run_verify(capsys, log, base[1], "--allow-legacy")
    assert code == 0 and out[0] == f"accepted: {message}" and out[1].startswith("OK: 3 records")


def test_unsigned_run_is_flagged(
    tmp_path: Path,
    base: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOT4_SECRETS_DIR", str(tmp_path / "empty-secrets"))
    log = tmp_path / "audit.jsonl"
    argv = ["run", str(EXAMPLES / "reverting.toml"), "--audit-log", str(log), "--duration", "5"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "create one with: bot4 audit keygen --key-id audit-checkpoint" in err
    )
    assert not log.exists()  # refused before anything started
    assert cli.main([*argv, "--unsigned-audit"]) == 0
    capsys.readouterr()
    n = len(rows(log))
    code, out = run_verify(capsys, log, base[1])
    assert (code, out) == (
        1,
        [f"FAILED: unsigned tail: {n} records after the last checkpoint (signed tree size 0)"],
    )
    # The printed remedy works as printed.
    assert cli.main(err.split("create one with: ")[1].split(" (or")[0].split()[1:]) == 0
    capsys.readouterr()
    log.unlink()
    assert cli.main(argv) == 0


EDITS = ("delete", "duplicate", "swap", "flip", "truncate", "append")


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    n=st.integers(1, 25),
    every=st.integers(1, 9),
    edit=st.sampled_from(EDITS),
    data=st.data(),
)
def test_no_single_edit_of_a_random_log_verifies(
    tmp_path: Path, n: int, every: int, edit: str, data: st.DataObject
) -> None:
    signer = NoteSigner.from_private("k", Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))
    path = tmp_path / f"log-{n}-{every}-{edit}.jsonl"
    path.unlink(missing_ok=True)
    with AuditLog(
        path,
        fsync=FsyncPolicy.NEVER,
        signer=signer,
        checkpoint_every=every,
        clock=iter(range(10**9)).__next__,
    ) as log:
        for i in range(n):
            log.append("decision", {"i": i, "v": data.draw(st.integers(0, 3))})
        log.append("summary", {})
    assert verify([path], signer.verifier()).passes()
    raw = path.read_bytes()
    lines = raw.splitlines(keepends=True)
    i = data.draw(st.integers(0, len(lines) - 1))
    if edit == "delete":
        del lines[i]
    elif edit == "duplicate":
        lines.insert(i, lines[i])
    elif edit == "swap":
        j = data.draw(st.integers(0, len(lines) - 1).filter(lambda j: j != i))
        lines[i], lines[j] = lines[j], lines[i]
    elif edit == "append":
        lines.append(data.draw(st.binary(min_size=1, max_size=40)))
    tampered = b"".join(lines)
    if edit == "flip":
        pos = data.draw(st.integers(0, len(raw) - 1))
        tampered = raw[:pos] + bytes([raw[pos] ^ data.draw(st.integers(1, 255))]) + raw[pos + 1 :]
    elif edit == "truncate":
        tampered = raw[: data.draw(st.integers(0, len(raw) - 1))]
    path.write_bytes(tampered)
    verdict = verify([path], signer.verifier())
    assert not verdict.passes(), (edit, verdict.lines())


@pytest.mark.e2e
def test_a_killed_bot4_run_is_reported_as_not_closed(
    tmp_path: Path, base: tuple[Path, Path]
) -> None:
    env = {**os.environ, "BOT4_SECRETS_DIR": str(base[0].parent / "secrets")}
    env.pop("BOT4_SECRETS", None)
    env.pop("BOT4_AUDIT_KEY", None)
    log = tmp_path / "audit.jsonl"
    argv = [sys.executable, "-m", "bot4", "run", str(EXAMPLES / "reverting.toml")]
    with subprocess.Popen(
        [*argv, "--audit-log", str(log), "--duration", "1000000", "--checkpoint-every", "4"],
        env=env,
        stdout=subprocess.DEVNULL,
    ) as proc:
        deadline = time.monotonic() + 60
        while (not log.exists() or log.stat().st_size < 4_000) and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.kill()
    verify_cmd = [sys.executable, "-m", "bot4", "audit", "verify", str(log), "--key", str(base[1])]
    out = subprocess.run(verify_cmd, capture_output=True, text=True, check=False, env=env)
    assert out.returncode == 1
    assert any(
        x.startswith("FAILED: run did not close cleanly: last record ")
        for x in out.stdout.splitlines()
    )
    allowed = [*verify_cmd, "--allow-unclosed", "--allow-unsigned-tail", "--allow-torn-tail"]
    out = subprocess.run(allowed, capture_output=True, text=True, check=False, env=env)
    assert out.returncode == 0, out.stdout
    assert out.stdout.splitlines()[-1].startswith("OK: ")
    assert all(x.startswith(("accepted: ", "OK: ")) for x in out.stdout.splitlines())
