"""Tamper-evident, append-only audit log: JSON lines in a SHA-256 hash chain.

Every record carries the hash of the one before it, so editing, deleting, inserting or
reordering any record breaks the chain at that line. A chain alone can be rewritten
whole by whoever holds the file, so the writer can also emit periodic *checkpoints*
authenticated with a key the file's holder does not have (HMAC-SHA256, or Ed25519 so
verifiers need only the public key). Each record is written with one ``write`` on an
``O_APPEND`` descriptor, so a crash leaves at most one truncated last line; the writer
sets such a tail aside when it reopens the file, and ``verify`` reports it as what it is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bot4.trading_engine.errors import AuditError

GENESIS = "0" * 64
FORMAT = "bot4-audit/1"
HASH_KEY = "sha256"  # sorts last among the record's keys (see _seal)


class FsyncPolicy(Enum):
    """When appended records are forced to stable storage."""

    ALWAYS = "always"  # fsync after every record: nothing acknowledged is ever lost
    INTERVAL = "interval"  # fsync every ``fsync_every`` records and on close
    NEVER = "never"  # leave it to the OS (tests, simulations)


def canonical(obj: Mapping[str, Any]) -> bytes:
    """The one byte encoding that is hashed and written: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical encoding of every field but ``sha256`` itself."""
    body = {k: v for k, v in record.items() if k != HASH_KEY}
    return hashlib.sha256(canonical(body)).hexdigest()


def _seal(body: Mapping[str, Any]) -> tuple[str, bytes]:
    """Hash a record body and return (hash, full canonical line) with one encoding pass.

    ``sha256`` sorts after every other key, so appending it to the encoded body yields
    exactly the canonical encoding of the whole record.
    """
    encoded = canonical(body)
    digest = hashlib.sha256(encoded).hexdigest()
    return digest, encoded[:-1] + b',"' + HASH_KEY.encode() + b'":"' + digest.encode() + b'"}\n'


@dataclass(frozen=True)
class CheckpointKey:
    """Authenticates checkpoints: an HMAC secret or an Ed25519 key pair (or public half)."""

    hmac_secret: bytes | None = None
    signing_key: Ed25519PrivateKey | None = None
    verify_key: Ed25519PublicKey | None = None

    def __repr__(self) -> str:
        kind = "hmac" if self.hmac_secret is not None else "ed25519"
        return f"CheckpointKey({kind}, secret material redacted)"

    @property
    def algorithm(self) -> str:
        """``hmac-sha256`` or ``ed25519``."""
        return "hmac-sha256" if self.hmac_secret is not None else "ed25519"

    def sign(self, digest: str) -> str:
        """Authenticate a chain head (hex)."""
        if self.hmac_secret is not None:
            return hmac.new(self.hmac_secret, digest.encode(), hashlib.sha256).hexdigest()
        if self.signing_key is None:
            raise AuditError("checkpoint key has no private half: cannot sign checkpoints")
        return self.signing_key.sign(digest.encode()).hex()

    def check(self, digest: str, tag: str) -> bool:
        """Whether ``tag`` authenticates ``digest`` under this key."""
        if self.hmac_secret is not None:
            return hmac.compare_digest(self.sign(digest), tag)
        public = self.verify_key or (self.signing_key.public_key() if self.signing_key else None)
        if public is None:
            return False
        try:
            public.verify(bytes.fromhex(tag), digest.encode())
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Tail:
    """Where an existing log ends: next sequence number and chain head."""

    seq: int
    head: str
    torn: bytes


def _scan_tail(path: Path) -> Tail:
    """Find the last complete record of an existing file (and any torn partial line)."""
    if not path.exists() or path.stat().st_size == 0:
        return Tail(0, GENESIS, b"")
    data = path.read_bytes()
    torn = b""
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        torn, data = data[cut:], data[:cut]
    lines = data.splitlines()
    if not lines:
        return Tail(0, GENESIS, torn)
    try:
        last = json.loads(lines[-1])
        return Tail(int(last["seq"]) + 1, str(last[HASH_KEY]), torn)
    except (ValueError, KeyError, TypeError):
        raise AuditError(f"{path}: last record is not valid; run bot4 audit verify") from None


class AuditLog:
    """Appends hash-chained records; thread-safe; rotates without breaking the chain.

    ``clock`` returns nanoseconds (wall clock by default; the engine passes simulated
    time so that the same seed yields a byte-identical log).
    """

    def __init__(
        self,
        path: Path,
        *,
        fsync: FsyncPolicy = FsyncPolicy.ALWAYS,
        fsync_every: int = 64,
        checkpoint_key: CheckpointKey | None = None,
        checkpoint_every: int = 1000,
        rotate_bytes: int | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if fsync_every < 1 or checkpoint_every < 1:
            raise AuditError("fsync_every and checkpoint_every must be ≥ 1")
        if rotate_bytes is not None and rotate_bytes < 1024:
            raise AuditError(f"rotate_bytes must be ≥ 1024, got {rotate_bytes}")
        self.path = Path(path)
        self._fsync = fsync
        self._fsync_every = fsync_every
        self._key = checkpoint_key
        self._checkpoint_every = checkpoint_every
        self._rotate_bytes = rotate_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._unsynced = 0
        self._since_checkpoint = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tail = _scan_tail(self.path)
        if tail.torn:
            self._set_aside(tail.torn)
        if tail.seq == 0 and (parts := self.rotated_files()[:-1]):
            tail = _scan_tail(parts[-1])  # freshly rotated: the chain continues from there
        self._seq = tail.seq
        self._head = tail.head
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _set_aside(self, torn: bytes) -> None:
        """Move a torn last line into ``<file>.torn`` so appends start on a clean line."""
        with (self.path.parent / (self.path.name + ".torn")).open("ab") as side:
            side.write(torn + b"\n")
        size = self.path.stat().st_size
        os.truncate(self.path, size - len(torn))

    @property
    def head(self) -> str:
        """Hash of the last record written (the chain head)."""
        return self._head

    @property
    def next_seq(self) -> int:
        """Sequence number the next record will get."""
        return self._seq

    def append(self, kind: str, data: Mapping[str, Any]) -> str:
        """Append one record and return its hash."""
        with self._lock:
            digest = self._write(kind, dict(data))
            self._since_checkpoint += 1
            if self._key is not None and self._since_checkpoint >= self._checkpoint_every:
                self._checkpoint()
            return digest

    def _write(self, kind: str, data: dict[str, Any]) -> str:
        if self._fd < 0:
            raise AuditError(f"{self.path}: audit log is closed")
        record: dict[str, Any] = {
            "at_ns": self._clock(),
            "data": data,
            "format": FORMAT,
            "kind": kind,
            "prev": self._head,
            "seq": self._seq,
        }
        try:
            digest, line = _seal(record)
        except (TypeError, ValueError) as exc:
            raise AuditError(f"audit record {kind!r} is not JSON-serialisable: {exc}") from None
        if self._rotate_bytes is not None and self._size() + len(line) > self._rotate_bytes:
            self._rotate()
        os.write(self._fd, line)
        self._seq += 1
        self._head = digest
        self._unsynced += 1
        if self._fsync is FsyncPolicy.ALWAYS or (
            self._fsync is FsyncPolicy.INTERVAL and self._unsynced >= self._fsync_every
        ):
            self._sync()
        return self._head

    def _checkpoint(self) -> None:
        key = self._key
        if key is None:
            raise AuditError("no checkpoint key configured")
        self._write(
            "checkpoint", {"alg": key.algorithm, "head": self._head, "tag": key.sign(self._head)}
        )
        self._since_checkpoint = 0

    def checkpoint(self) -> None:
        """Write an authenticated checkpoint now (e.g. at shutdown)."""
        with self._lock:
            self._checkpoint()

    def _size(self) -> int:
        return os.fstat(self._fd).st_size

    def _sync(self) -> None:
        os.fsync(self._fd)
        self._unsynced = 0

    def _rotate(self) -> None:
        """Close the current file under a numbered name and continue the chain in a new one."""
        self._sync()
        os.close(self._fd)
        n = 1
        while (rotated := self.path.with_name(f"{self.path.name}.{n:06d}")).exists():
            n += 1
        self.path.replace(rotated)
        self._fd = self._open()

    def rotated_files(self) -> list[Path]:
        """Every file of this log, oldest first (rotated parts, then the live file)."""
        parts = sorted(self.path.parent.glob(f"{self.path.name}.[0-9][0-9][0-9][0-9][0-9][0-9]"))
        return [*parts, self.path]

    def close(self) -> None:
        """Flush to disk and close; further appends raise."""
        with self._lock:
            if self._fd >= 0:
                if self._fsync is not FsyncPolicy.NEVER:
                    self._sync()
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# --- verification -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying one or more files of a chain."""

    ok: bool
    records: int
    checkpoints: int
    head: str
    problem: str | None = None
    truncated_tail: bool = False

    def describe(self) -> str:
        """One line for the operator."""
        if self.ok:
            tail = "; last line truncated (crash during write?)" if self.truncated_tail else ""
            return (
                f"OK: {self.records} records, {self.checkpoints} checkpoints verified, "
                f"head {self.head[:16]}{tail}"
            )
        return f"FAILED: {self.problem}"


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes, is_complete) for each line of a file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AuditError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AuditError(f"{path}: is a directory") from None
    if not data:
        return
    parts = data.split(b"\n")
    complete = parts[:-1]
    for number, line in enumerate(complete, start=1):
        yield number, line, True
    if parts[-1]:
        yield len(complete) + 1, parts[-1], False


def verify(paths: Sequence[Path], key: CheckpointKey | None = None) -> Verdict:
    """Verify a chain across files (oldest first); name the first bad line.

    With a key, every checkpoint must authenticate the chain head it names; without
    one, checkpoints are checked for chain consistency only.
    """
    expected_seq = 0
    head = GENESIS
    records = 0
    checkpoints = 0
    for file_index, path in enumerate(paths):
        last_file = file_index == len(paths) - 1
        for number, raw, complete in _lines(path):
            where = f"{path}:{number}"
            if not complete:
                if last_file:
                    return Verdict(True, records, checkpoints, head, truncated_tail=True)
                return Verdict(False, records, checkpoints, head, f"{where}: truncated record")
            try:
                record = json.loads(raw)
            except ValueError:
                return Verdict(False, records, checkpoints, head, f"{where}: not valid JSON")
            if not isinstance(record, dict) or record.get("format") != FORMAT:
                return Verdict(False, records, checkpoints, head, f"{where}: not a {FORMAT} record")
            problem = _check_record(record, expected_seq, head, key)
            if problem:
                return Verdict(False, records, checkpoints, head, f"{where}: {problem}")
            if record["kind"] == "checkpoint":
                checkpoints += 1
            expected_seq += 1
            head = record[HASH_KEY]
            records += 1
    return Verdict(True, records, checkpoints, head)


def _check_record(
    record: Mapping[str, Any], expected_seq: int, head: str, key: CheckpointKey | None
) -> str | None:
    if record.get(HASH_KEY) != record_hash(record):
        return "record hash mismatch (record edited)"
    seq = record.get("seq")
    if seq != expected_seq:
        what = "deleted" if isinstance(seq, int) and seq > expected_seq else "inserted or reordered"
        return f"sequence {seq}, expected {expected_seq} (record {what})"
    if record.get("prev") != head:
        return "previous-hash link broken (record inserted, deleted or reordered)"
    if record.get("kind") == "checkpoint":
        data = record.get("data", {})
        if not isinstance(data, dict) or data.get("head") != head:
            return "checkpoint names a different chain head"
        if key is not None and not key.check(head, str(data.get("tag", ""))):
            return "checkpoint signature does not verify (wrong key or forged log)"
    return None
