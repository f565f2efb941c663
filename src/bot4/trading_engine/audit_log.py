"""Tamper-evident, append-only audit log: hash-chained JSON lines, Merkle tree, signed checkpoints.

Every record carries the hash of the one before it (a chain: an edit, deletion, insertion
or swap shows at the first bad line), and every record is a leaf of an RFC 6962 Merkle
tree (``merkle``). A chain alone can be rewritten whole, or cut short, by whoever holds the
file; so the writer emits *checkpoints* — C2SP signed notes over (tree size, root), signed
with an Ed25519 key the file's holder does not have (``checkpoint``) — every
``checkpoint_every`` records or ``checkpoint_interval_ns`` of the log's clock, and when it
closes. A checkpoint is itself a record (kind ``checkpoint``), so it is chained and covered
by the next one; keeping it in the log (not in a sidecar) means a log file is verifiable on
its own and nothing can go out of step. The checkpoint at index ``i`` signs records
``0..i-1``.

One writer per log: the writer holds an exclusive ``flock`` on ``<log>.lock`` for its
lifetime, so two processes cannot interleave records or both accept one override token.
Each record is one ``write`` on an ``O_APPEND`` descriptor, so a crash leaves at most one
torn last line; the next writer sets it aside into ``<log>.torn``, notes the crash in a
``reopen`` record and signs on. Logs of the previous format (``bot4-audit/1``, chain only)
are still read, and reported as legacy — never as signed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bot4.trading_engine import merkle
from bot4.trading_engine.checkpoint import (
    DEFAULT_ORIGIN,
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
)
from bot4.trading_engine.errors import AuditError

GENESIS = "0" * 64
FORMAT = "bot4-audit/2"
LEGACY_FORMAT = "bot4-audit/1"
HASH_KEY = "sha256"  # sorts last among the record's keys (see AuditLog._write)
CHECKPOINT_KIND = "checkpoint"
CLOSING_KIND = "summary"  # the engine's last record of a run that ended as planned
OVERRIDE_KIND = "override_use"
REOPEN_KIND = "reopen"
DEFAULT_CHECKPOINT_EVERY = 256
DEFAULT_CHECKPOINT_INTERVAL_NS = 10 * 1_000_000_000


class FsyncPolicy(Enum):
    """When appended records are forced to stable storage."""

    ALWAYS = "always"  # fsync after every record: nothing acknowledged is ever lost
    INTERVAL = "interval"  # fsync every ``fsync_every`` records and on close
    NEVER = "never"  # leave it to the OS (tests, simulations)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# json.dumps(obj, sort_keys=True, ...) builds a JSONEncoder and a C encoder on every call,
# which costs more than encoding a record; build the same C encoder once (CPython's
# ``_json``; the pure-Python encoder otherwise). Same arguments, so the same bytes. No
# circular-reference markers: a shared markers dict is left dirty by a failed encode, so
# a cycle is caught as the RecursionError it becomes instead (see ``canonical``).
_make_encoder: Callable[..., Callable[[object, int], Iterable[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)
_C_ENCODE = (
    _make_encoder(
        None,  # no markers (stateless, thread-safe)
        _ENCODER.default,
        json.encoder.encode_basestring,  # ensure_ascii=False
        None,  # no indent
        ":",
        ",",
        True,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as json.dumps
    )
    if _make_encoder is not None
    else None
)


def canonical(obj: Mapping[str, Any]) -> bytes:
    """The one byte encoding that is hashed and written: sorted keys, no spaces, UTF-8."""
    if _C_ENCODE is None:  # pragma: no cover - CPython always has _json
        return _ENCODER.encode(obj).encode()
    try:
        return "".join(_C_ENCODE(obj, 0)).encode()
    except RecursionError:
        raise ValueError("Circular reference detected (or nesting too deep)") from None


# A record's canonical encoding with the fixed parts laid out once: keys in sorted order,
# ``format`` constant, ``prev`` the writer's chain head (a hex digest: nothing to escape);
# only ``data`` and ``kind`` go through the encoder. ``_encode_record`` is ``canonical``
# of the same dict, byte for byte (a property test holds it to that).
_RECORD = '{"at_ns":%d,"data":%s,"format":"' + FORMAT + '","kind":%s,"prev":"%s","seq":%d}'
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def _encode_record(at_ns: int, data: Mapping[str, Any], kind: str, prev: str, seq: int) -> bytes:
    """``canonical`` of the record ``{at_ns, data, format, kind, prev, seq}``, faster;
    ``prev`` must be a hex digest (the writer's head always is)."""
    if _C_ENCODE is None or type(at_ns) is not int or type(kind) is not str:
        record = {"at_ns": at_ns, "data": data, "format": FORMAT, "kind": kind}
        return canonical({**record, "prev": prev, "seq": seq})
    try:
        body = "".join(_C_ENCODE(data, 0))
    except RecursionError:
        raise ValueError("Circular reference detected (or nesting too deep)") from None
    return (_RECORD % (at_ns, body, _encode_str(kind), prev, seq)).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical encoding of every field but ``sha256`` itself."""
    body = {k: v for k, v in record.items() if k != HASH_KEY}
    return hashlib.sha256(canonical(body)).hexdigest()


def record_leaf(digest_hex: str) -> bytes:
    """The record's Merkle leaf hash: ``SHA-256(0x00 || record digest)``."""
    return merkle.leaf_hash(bytes.fromhex(digest_hex))


_sha256 = hashlib.sha256
_HASH_FIELD = b',"' + HASH_KEY.encode() + b'":"'


@dataclass(frozen=True)
class CheckpointKey:
    """A legacy (``bot4-audit/1``) checkpoint key: HMAC secret or Ed25519 over the chain head."""

    hmac_secret: bytes | None = None
    signing_key: Ed25519PrivateKey | None = None
    verify_key: Ed25519PublicKey | None = None

    def __repr__(self) -> str:
        kind = "hmac" if self.hmac_secret is not None else "ed25519"
        return f"CheckpointKey({kind}, secret material redacted)"

    def check(self, digest: str, tag: str) -> bool:
        """Whether ``tag`` authenticates ``digest`` under this key."""
        if self.hmac_secret is not None:
            mac = hmac.new(self.hmac_secret, digest.encode(), hashlib.sha256).hexdigest()
            return hmac.compare_digest(mac, tag)
        public = self.verify_key or (self.signing_key.public_key() if self.signing_key else None)
        if public is None:
            return False
        try:
            public.verify(bytes.fromhex(tag), digest.encode())
        except (InvalidSignature, ValueError):
            return False
        return True


# --- reading ----------------------------------------------------------------------------------


@dataclass
class Line:
    """One parsed record and where it is (``file:line``)."""

    where: str
    record: dict[str, Any]


@dataclass
class Scan:
    """What reading the files found besides records: a torn tail, or the first bad line."""

    torn: bytes = b""  # incomplete last line of the last file
    problem: str | None = None


def iter_records(paths: Sequence[Path], scan: Scan | None = None) -> Iterator[Line]:
    """Parse the complete lines of the files (oldest first), one at a time; stop at the
    first unreadable one and note it (and any torn tail) in ``scan``."""
    scan = scan if scan is not None else Scan()
    for file_index, path in enumerate(paths):
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise AuditError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise AuditError(f"{path}: is a directory") from None
        with handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):
                    if file_index < len(paths) - 1:
                        scan.problem = f"{path}:{number}: truncated record"
                        return
                    scan.torn = raw
                    break
                try:
                    record = json.loads(raw)
                except ValueError:
                    scan.problem = f"{path}:{number}: not valid JSON"
                    return
                if not isinstance(record, dict) or record.get("format") not in (
                    FORMAT,
                    LEGACY_FORMAT,
                ):
                    scan.problem = f"{path}:{number}: not a {FORMAT} record"
                    return
                yield Line(f"{path}:{number}", record)


def _seq_after(paths: Sequence[Path], index: int, seq: int) -> bool:
    """Whether record ``seq`` appears after position ``index`` (to tell a swap from a gap)."""
    return any(
        i > index and line.record.get("seq") == seq for i, line in enumerate(iter_records(paths))
    )


# --- verification -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A condition that is not tampering but still not a clean, fully signed log."""

    kind: str  # torn-tail | unsigned-tail | unclosed | legacy | no-key
    message: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying a log (one or more files of one tree)."""

    records: int
    checkpoints: int
    head: str
    root: bytes = merkle.EMPTY_ROOT
    signed_size: int = 0  # tree size of the last verified checkpoint
    problem: str | None = None  # tampering (or unreadable): never acceptable
    findings: tuple[Finding, ...] = ()
    leaves: tuple[bytes, ...] = field(default=(), repr=False)
    override_nonces: frozenset[str] = frozenset()
    last_checkpoint: str | None = None  # the last checkpoint note, as written
    frontier: merkle.Frontier | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """No tampering found (the chain and every checkpoint hold)."""
        return self.problem is None

    @property
    def truncated_tail(self) -> bool:
        """Whether the last line is incomplete (a crash during a write)."""
        return any(f.kind == "torn-tail" for f in self.findings)

    def passes(self, allowed: Iterable[str] = ()) -> bool:
        """Clean, or every finding is one the caller explicitly accepts."""
        allow = set(allowed)
        return self.ok and all(f.kind in allow for f in self.findings)

    def lines(self, allowed: Iterable[str] = ()) -> list[str]:
        """The verdict for the operator: one line per finding, then the summary."""
        if self.problem is not None:
            return [f"FAILED: {self.problem}"]
        allow = set(allowed)
        out = [f"{'accepted' if f.kind in allow else 'FAILED'}: {f.message}" for f in self.findings]
        if self.passes(allow):
            out.append(
                f"OK: {self.records} records, {self.checkpoints} checkpoints verified, "
                f"signed tree size {self.signed_size}, head {self.head[:16]}"
            )
        return out

    def describe(self) -> str:
        """The first verdict line."""
        return self.lines()[0]


def _when(at_ns: object) -> str:
    if not isinstance(at_ns, int):
        return "an unknown time"
    return datetime.fromtimestamp(at_ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def verify(
    paths: Sequence[Path],
    key: NoteVerifier | CheckpointKey | None = None,
    *,
    anchors: Sequence[Checkpoint] = (),
    keep_leaves: bool = False,
) -> Verdict:
    """Verify a log across its files (oldest first); name the first bad record.

    ``key`` checks every checkpoint's signature (without one only their consistency with
    the records is checked, reported as ``no-key``). ``anchors`` are checkpoints kept
    outside the log (a witness, a scraper, an auditor's copy): the log must contain them.
    Records are read one at a time; ``keep_leaves`` keeps every leaf hash (for proofs).
    """
    scan = Scan()
    records = iter_records(paths, scan)
    first = next(records, None)
    if first is not None and first.record["format"] == LEGACY_FORMAT:
        legacy = key if isinstance(key, CheckpointKey) else None
        return _verify_legacy(paths, itertools.chain([first], records), scan, legacy)
    verifier = key if isinstance(key, NoteVerifier) else None
    lines = itertools.chain([first], records) if first is not None else records
    return _verify_tree(paths, lines, scan, verifier, anchors, keep_leaves=keep_leaves)


def _chain_problem(paths: Sequence[Path], line: Line, i: int, head: str) -> str | None:
    """Why record ``i`` does not continue the chain, in the attacker's terms, or None."""
    record = line.record
    if record.get(HASH_KEY) != record_hash(record):
        return f"record {i} altered: its hash does not match its contents"
    seq = record.get("seq")
    if seq != i:
        if isinstance(seq, int) and seq > i:
            if _seq_after(paths, i, i):
                return f"records reordered at index {i}: record {seq} comes before record {i}"
            return f"records deleted at index {i}: records {i}..{seq - 1} are missing"
        if isinstance(seq, int) and 0 <= seq < i:  # records 0..i-1 were each checked in place
            return f"record inserted at index {i}: a second copy of record {seq}"
        return f"records reordered or inserted at index {i}: found record {seq}"
    if record.get("prev") != head:
        return (
            f"record {i} altered: previous-hash link broken "
            "(record replaced, or records inserted/deleted and renumbered)"
        )
    return None


@dataclass
class _Tail:
    """What the findings need to know about the end of the log."""

    count: int = 0
    last_cp_index: int = -1
    last_at: object = None
    last_body_kind: object = None


def _verify_tree(
    paths: Sequence[Path],
    lines: Iterator[Line],
    scan: Scan,
    verifier: NoteVerifier | None,
    anchors: Sequence[Checkpoint],
    *,
    keep_leaves: bool,
) -> Verdict:
    frontier = merkle.Frontier()
    leaves: list[bytes] = []
    head = GENESIS
    checkpoints = 0
    signed_size = 0
    last_note: str | None = None
    nonces: set[str] = set()
    tail = _Tail()
    pending = {a.size: a for a in anchors}

    def failed(problem: str) -> Verdict:
        return Verdict(tail.count, checkpoints, head, frontier.root(), signed_size, problem)

    for i, line in enumerate(lines):
        if i in pending and frontier.root() != pending[i].root:
            return failed(_rewritten(i))
        record = line.record
        if record.get("format") != FORMAT:
            return failed(f"{line.where}: mixes {record.get('format')} into a {FORMAT} log")
        problem = _chain_problem(paths, line, i, head)
        if problem:
            return failed(f"{line.where}: {problem}")
        data = record.get("data")
        kind = record.get("kind")
        if kind == CHECKPOINT_KIND:
            note, problem = _check_checkpoint(data, i, verifier, frontier.root(), signed_size)
            problem = problem or _origin_problem(i, note, last_note)
            if problem:
                return failed(f"{line.where}: {problem}")
            checkpoints += 1
            signed_size = i
            tail.last_cp_index = i
            last_note = note
        else:
            tail.last_body_kind = kind
            if kind == OVERRIDE_KIND and isinstance(data, dict):
                nonces.add(str(data.get("nonce")))
        head = record[HASH_KEY]
        leaf = record_leaf(head)
        if keep_leaves:
            leaves.append(leaf)
        frontier.append(leaf)
        tail.count = i + 1
        tail.last_at = record.get("at_ns")
    if scan.problem is not None:
        return failed(scan.problem)
    n = tail.count
    problem = _end_anchor_problem(pending, n, frontier.root())
    if problem:
        return failed(problem)
    return Verdict(
        n,
        checkpoints,
        head,
        frontier.root(),
        signed_size,
        None,
        _findings(scan, tail, keyed=verifier is not None),
        tuple(leaves),
        frozenset(nonces),
        last_note,
        frontier,
    )


def _end_anchor_problem(pending: Mapping[int, Checkpoint], n: int, root: bytes) -> str | None:
    if n in pending and root != pending[n].root:
        return _rewritten(n)
    if pending and max(pending) > n:
        size = max(pending)
        return (
            f"truncated: the log has {n} records but a checkpoint held outside it "
            f"signs {size} (records {n}..{size - 1} removed)"
        )
    return None


def _origin_problem(i: int, note: str, previous: str | None) -> str | None:
    origin = note.partition("\n")[0]
    if previous is not None and origin != previous.partition("\n")[0]:
        return f"checkpoint at record {i} is for another log (origin {origin!r})"
    return None


def _rewritten(size: int) -> str:
    return f"log rewritten: its first {size} records do not match the checkpoint held outside it"


def _check_checkpoint(
    data: object, i: int, verifier: NoteVerifier | None, root: bytes, signed_size: int
) -> tuple[str, str | None]:
    """(note, problem) of the checkpoint record at index ``i`` given the tree before it."""
    note = data.get("note") if isinstance(data, dict) else None
    if not isinstance(note, str):
        return "", f"checkpoint at record {i} has no note"
    try:
        if verifier is not None:
            checkpoint = verifier.open(note)
        else:
            checkpoint = Checkpoint.parse_body(note.partition("\n\n")[0] + "\n")
    except NoteError as exc:
        return note, (
            f"checkpoint at record {i} does not verify with the given key ({exc}): "
            "forged, or signed by another key"
        )
    if checkpoint.size != i:
        return note, (
            f"checkpoint at record {i} signs tree size {checkpoint.size}: "
            "records were inserted or deleted before it"
        )
    if checkpoint.root != root:
        return note, (
            f"records altered: the checkpoint at record {i} does not match them; "
            f"the first bad record is between index {signed_size} and {i - 1}"
        )
    return note, None


def _findings(scan: Scan, tail: _Tail, *, keyed: bool) -> tuple[Finding, ...]:
    n = tail.count
    out: list[Finding] = []
    if not keyed and n:
        out.append(Finding("no-key", "signatures not checked: no --key given"))
    if scan.torn:
        out.append(
            Finding(
                "torn-tail",
                f"torn tail: the last line is incomplete ({len(scan.torn)} bytes after "
                f"record {n - 1})",
            )
        )
    unsigned = n - 1 - tail.last_cp_index
    if unsigned > 0:
        out.append(
            Finding(
                "unsigned-tail",
                f"unsigned tail: {unsigned} records after the last checkpoint "
                f"(signed tree size {max(tail.last_cp_index, 0)})",
            )
        )
    if not n:  # emptied, or never written: either way no run closed here
        out.append(
            Finding(
                "unclosed",
                f"run did not close cleanly: the log is empty (no {CLOSING_KIND!r} record)",
            )
        )
    elif tail.last_body_kind != CLOSING_KIND:
        out.append(
            Finding(
                "unclosed",
                f"run did not close cleanly: last record {n - 1} "
                f"at {_when(tail.last_at)} is not a closing {CLOSING_KIND!r} record",
            )
        )
    return tuple(out)


def _verify_legacy(
    paths: Sequence[Path], lines: Iterator[Line], scan: Scan, key: CheckpointKey | None
) -> Verdict:
    """``bot4-audit/1``: chain only, optionally HMAC/Ed25519 over the head; never 'signed'."""
    head = GENESIS
    checkpoints = 0
    n = 0
    for i, line in enumerate(lines):
        record = line.record
        problem = None
        if record.get("format") != LEGACY_FORMAT:
            problem = f"mixes {record.get('format')} into a {LEGACY_FORMAT} log"
        problem = problem or _chain_problem(paths, line, i, head)
        if problem is None and record.get("kind") == CHECKPOINT_KIND:
            data = record.get("data", {})
            if not isinstance(data, dict) or data.get("head") != head:
                problem = "checkpoint names a different chain head"
            elif key is not None and not key.check(head, str(data.get("tag", ""))):
                problem = "checkpoint signature does not verify (wrong key or forged log)"
            checkpoints += 1
        if problem:
            return Verdict(i, checkpoints, head, problem=f"{line.where}: {problem}")
        head = record[HASH_KEY]
        n = i + 1
    if scan.problem is not None:
        return Verdict(n, checkpoints, head, problem=scan.problem)
    findings = [
        Finding(
            "legacy",
            f"legacy chain, no checkpoints: {n} {LEGACY_FORMAT} records, chained but not "
            f"signed ({checkpoints} legacy head tags{' checked' if key else ', not checked'})",
        )
    ]
    if scan.torn:
        findings.append(
            Finding(
                "torn-tail",
                f"torn tail: the last line is incomplete ({len(scan.torn)} bytes after "
                f"record {n - 1})",
            )
        )
    return Verdict(n, 0, head, findings=tuple(findings))


# --- writing ----------------------------------------------------------------------------------


class AuditLog:
    """Appends chained, Merkle-tree records with signed checkpoints; one writer per log.

    ``clock`` returns nanoseconds (wall clock by default; the engine passes simulated
    time so that the same seed yields a byte-identical log).
    """

    def __init__(
        self,
        path: Path,
        *,
        fsync: FsyncPolicy = FsyncPolicy.ALWAYS,
        fsync_every: int = 64,
        signer: NoteSigner | None = None,
        origin: str = DEFAULT_ORIGIN,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        checkpoint_interval_ns: int = DEFAULT_CHECKPOINT_INTERVAL_NS,
        rotate_bytes: int | None = None,
        clock: Callable[[], int] = time.time_ns,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
    ) -> None:
        if fsync_every < 1 or checkpoint_every < 1 or checkpoint_interval_ns < 1:
            raise AuditError("fsync_every, checkpoint_every and checkpoint_interval_ns must be ≥ 1")
        if rotate_bytes is not None and rotate_bytes < 1024:
            raise AuditError(f"rotate_bytes must be ≥ 1024, got {rotate_bytes}")
        if "\n" in origin or not origin:
            raise AuditError("checkpoint origin must be one non-empty line")
        self.path = Path(path)
        self._fsync = fsync
        self._fsync_every = fsync_every
        # fsync once this many records are unsynced (None: never; ``close`` still syncs).
        self._sync_at = {FsyncPolicy.ALWAYS: 1, FsyncPolicy.INTERVAL: fsync_every}.get(fsync)
        self._signer = signer
        self._origin = origin
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval_ns = checkpoint_interval_ns
        self._rotate_bytes = rotate_bytes
        self._clock = clock
        self._on_checkpoint = on_checkpoint
        self._lock = threading.Lock()
        self._unsynced = 0
        self._torn_bytes = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._take_lock()
        self._fd = -1
        try:
            self._resume()
            self._fd = self._open()
            if self._recovered is not None:
                self._write(REOPEN_KIND, self._recovered)
                self._since_checkpoint += 1
        except BaseException:
            self._release()
            raise

    def _take_lock(self) -> int:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AuditError(
                f"{self.path}: audit log is in use by another process (lock {lock_path} is held)"
            ) from None
        return fd

    def _resume(self) -> None:
        """Verify what is already there and continue its tree; set a torn tail aside."""
        files = [p for p in self.rotated_files() if p.exists()]
        if self.path.exists() and self.path.stat().st_size:
            data = self.path.read_bytes()
            if not data.endswith(b"\n"):
                self._set_aside(data[data.rfind(b"\n") + 1 :])
        verdict = verify(files, self._signer.verifier() if self._signer else None)
        if verdict.problem is not None:
            raise AuditError(
                f"{self.path}: existing log does not verify ({verdict.problem}); "
                f"inspect it with: bot4 audit verify {self.path}"
            )
        if any(f.kind == "legacy" for f in verdict.findings):
            raise AuditError(
                f"{self.path}: is a legacy {LEGACY_FORMAT} log; write to a new file "
                "(the old one stays readable by bot4 audit verify --allow-legacy)"
            )
        found = (verdict.last_checkpoint or "").partition("\n")[0]
        if found and found != self._origin:
            raise AuditError(
                f"{self.path}: is the log of origin {found!r}, not {self._origin!r}; "
                "write to a new file"
            )
        self._seq = verdict.records
        self._head = verdict.head
        self._frontier = verdict.frontier.copy() if verdict.frontier else merkle.Frontier()
        self.override_nonces: frozenset[str] = verdict.override_nonces
        self._last_note = verdict.last_checkpoint
        self._signed_size = verdict.signed_size
        n = verdict.records
        self._since_checkpoint = max(0, n - 1 - verdict.signed_size) if verdict.checkpoints else n
        self._checkpoint_at = self._clock()
        self._recovered: dict[str, Any] | None = None
        unclosed = any(f.kind == "unclosed" for f in verdict.findings)
        unsigned = self._since_checkpoint
        if n and (self._torn_bytes or unclosed or unsigned):
            # Say in the log what this writer found and is about to sign over.
            crashed = unclosed or self._torn_bytes
            self._recovered = {
                "previous_run": "did not close cleanly" if crashed else "closed cleanly"
            }
            if unsigned:
                self._recovered["unsigned_records"] = unsigned
            if self._torn_bytes:
                self._recovered["torn_bytes_set_aside"] = self._torn_bytes

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _set_aside(self, torn: bytes) -> None:
        """Move a torn last line into ``<file>.torn`` so appends start on a clean line."""
        with (self.path.parent / (self.path.name + ".torn")).open("ab") as side:
            side.write(torn + b"\n")
        os.truncate(self.path, self.path.stat().st_size - len(torn))
        self._torn_bytes = len(torn)

    @property
    def head(self) -> str:
        """Hash of the last record written (the chain head)."""
        return self._head

    @property
    def next_seq(self) -> int:
        """Sequence number the next record will get (= the Merkle tree size)."""
        return self._seq

    @property
    def signed_size(self) -> int:
        """Tree size of the last checkpoint (0 when none)."""
        return self._signed_size

    @property
    def last_checkpoint(self) -> str | None:
        """The last checkpoint note written or found, for export."""
        return self._last_note

    def root(self) -> bytes:
        """The Merkle root over every record written so far."""
        with self._lock:
            return self._frontier.root()

    def append(self, kind: str, data: Mapping[str, Any], *, durable: bool = False) -> str:
        """Append one record and return its hash; checkpoint when one is due.

        ``durable`` forces it to disk whatever the fsync policy (an override's use must
        not be lost in a crash, or the token could be used again after the restart).
        """
        with self._lock:
            at = self._clock()
            # Encoded at once, so the caller's dict needs no copy (other mappings get one).
            digest = self._write(kind, data if type(data) is dict else dict(data), at)
            if durable and self._unsynced:
                self._sync()
            self._after_record(at)
            return digest

    def append_canonical(self, kind: str, body: str) -> str:
        """``append(kind, data)`` for a caller that already holds ``canonical(data)``.

        ``body`` must be exactly ``canonical(data).decode()`` (sorted keys, no spaces):
        it is hashed and written as given, so anything else is a record that fails
        verification. For the one record on the order path, the gate's decision, whose
        fixed keys the gate lays out once (a property test holds that layout to
        ``canonical``); everything else goes through ``append``.
        """
        with self._lock:
            if self._fd < 0:
                raise AuditError(f"{self.path}: audit log is closed")
            at = self._clock()
            if type(at) is int and type(kind) is str:
                record = _RECORD % (at, body, _encode_str(kind), self._head, self._seq)
                try:
                    encoded = record.encode()
                except UnicodeEncodeError as exc:  # a lone surrogate: as ``append`` says it
                    raise AuditError(
                        f"audit record {kind!r} is not JSON-serialisable: {exc}"
                    ) from None
                digest = self._commit(encoded)
            else:  # an odd clock or kind: the generic encoder decides what they become
                digest = self._write(kind, json.loads(body), at)
            self._after_record(at)
            return digest

    def _after_record(self, at: int) -> None:
        """Count the record just written and sign a checkpoint when one is due."""
        self._since_checkpoint += 1
        if self._signer is not None and (
            self._since_checkpoint >= self._checkpoint_every
            or at - self._checkpoint_at >= self._checkpoint_interval_ns
        ):
            self._checkpoint(at)

    def _write(self, kind: str, data: dict[str, Any], at: int | None = None) -> str:
        if self._fd < 0:
            raise AuditError(f"{self.path}: audit log is closed")
        at_ns = self._clock() if at is None else at
        try:
            encoded = _encode_record(at_ns, data, kind, self._head, self._seq)
        except (TypeError, ValueError) as exc:
            raise AuditError(f"audit record {kind!r} is not JSON-serialisable: {exc}") from None
        return self._commit(encoded)

    def _commit(self, encoded: bytes) -> str:
        """Hash, write (one ``write()``), chain, add the Merkle leaf, fsync as the policy says."""
        raw = _sha256(encoded).digest()
        digest = raw.hex()
        # ``sha256`` sorts after every other key, so appending it to the encoded body gives
        # exactly the canonical encoding of the whole record: one encoding pass.
        line = b"".join((encoded[:-1], _HASH_FIELD, digest.encode(), b'"}\n'))
        if self._rotate_bytes is not None and self._size() + len(line) > self._rotate_bytes:
            self._rotate()
        os.write(self._fd, line)  # the whole record in one write(), before append returns
        self._seq += 1
        self._head = digest
        self._frontier.append(_sha256(b"\x00" + raw).digest())  # = merkle.leaf_hash
        self._unsynced = unsynced = self._unsynced + 1
        if self._sync_at is not None and unsynced >= self._sync_at:
            self._sync()
        return digest

    def _checkpoint(self, at: int) -> None:
        if self._signer is None:
            raise AuditError("no checkpoint signing key configured")
        size = self._seq
        checkpoint = Checkpoint(self._origin, size, self._frontier.root())
        note = self._signer.sign(checkpoint)
        self._write(CHECKPOINT_KIND, {"note": note}, at)
        if self._on_checkpoint is not None:
            self._on_checkpoint(checkpoint)
        self._last_note = note
        self._signed_size = size
        self._since_checkpoint = 0
        self._checkpoint_at = at

    def checkpoint(self) -> None:
        """Write a signed checkpoint now."""
        with self._lock:
            self._checkpoint(self._clock())

    def _size(self) -> int:
        return os.fstat(self._fd).st_size

    def _sync(self) -> None:
        os.fsync(self._fd)
        self._unsynced = 0

    def _rotate(self) -> None:
        """Close the current file under a numbered name and continue the tree in a new one."""
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
        """Sign what is unsigned, flush to disk, close and release the lock (idempotent)."""
        with self._lock:
            try:
                if self._fd >= 0 and self._signer is not None and self._since_checkpoint:
                    self._checkpoint(self._clock())  # a signer that fails still lets go below
            finally:
                if self._fd >= 0:
                    if self._fsync is not FsyncPolicy.NEVER:
                        self._sync()
                    os.close(self._fd)
                    self._fd = -1
                self._release()

    def _release(self) -> None:
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
