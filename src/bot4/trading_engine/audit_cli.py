"""``bot4 audit …``: verify the audit log, prove records and growth, manage the checkpoint key.

``verify`` prints one line per finding and a summary; anything but a clean, fully signed,
cleanly closed log exits 1 unless each finding is explicitly accepted (``--allow-…``).
``prove`` and ``consistency`` print JSON proofs that ``check-proof`` (or any RFC 6962 /
signed-note implementation) checks with nothing but the public key.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from bot4.trading_engine import merkle
from bot4.trading_engine.audit_keys import key_id_from_env, keygen
from bot4.trading_engine.audit_log import (
    CHECKPOINT_KIND,
    HASH_KEY,
    CheckpointKey,
    Verdict,
    iter_records,
    record_hash,
    record_leaf,
    verify,
)
from bot4.trading_engine.checkpoint import Checkpoint, NoteError, NoteVerifier
from bot4.trading_engine.errors import AuditError

ALLOW = {
    "unsigned_tail": "unsigned-tail",
    "torn_tail": "torn-tail",
    "unclosed": "unclosed",
    "legacy": "legacy",
}


def register(subparsers: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add ``audit verify|prove|consistency|check-proof|head|keygen``."""
    audit: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="work with the tamper-evident audit log"
    )
    sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "verify",
        help="verify records, Merkle tree and signed checkpoints of an audit log",
        description="Verify an audit log. Give rotated parts oldest first, then the live file.",
    )
    check.add_argument("files", nargs="+", type=Path, help="log files, oldest first")
    keys = check.add_mutually_exclusive_group()
    keys.add_argument(
        "--key",
        "--public-key",
        dest="key",
        type=Path,
        help="checkpoint public key: PEM Ed25519, or a signed-note verifier key line",
    )
    keys.add_argument("--hmac-key-file", type=Path, help="HMAC key of a legacy bot4-audit/1 log")
    check.add_argument(
        "--checkpoint",
        action="append",
        type=Path,
        default=[],
        help="a checkpoint kept outside the log (repeatable): the log must still contain it",
    )
    for flag, kind in ALLOW.items():
        check.add_argument(
            f"--allow-{flag.replace('_', '-')}",
            action="store_true",
            help=f"accept a {kind} finding (still printed)",
        )
    check.set_defaults(handler=run_verify)

    prove = sub.add_parser("prove", help="inclusion proof (JSON) of one record")
    prove.add_argument("log", type=Path, help="the live log file (rotated parts are found)")
    prove.add_argument("index", type=int, help="record index (its seq)")
    prove.add_argument("--key", type=Path, help="check the log's checkpoints with this key")
    prove.set_defaults(handler=run_prove)

    grow = sub.add_parser("consistency", help="consistency proof (JSON) between two checkpoints")
    grow.add_argument("log", type=Path, help="the live log file (rotated parts are found)")
    grow.add_argument("old", help="old checkpoint: a note file, or a tree size in the log")
    grow.add_argument("new", nargs="?", help="new checkpoint (default: the log's latest)")
    grow.add_argument("--key", type=Path, help="check the log's checkpoints with this key")
    grow.set_defaults(handler=run_consistency)

    proof = sub.add_parser("check-proof", help="check a proof from prove/consistency")
    proof.add_argument("proof", type=Path, help="the JSON proof")
    proof.add_argument("--key", type=Path, required=True, help="checkpoint public key")
    proof.set_defaults(handler=run_check_proof)

    head = sub.add_parser("head", help="print the log's latest signed checkpoint note")
    head.add_argument("log", type=Path)
    head.add_argument("--key", type=Path, help="check the log's checkpoints with this key")
    head.set_defaults(handler=run_head)

    gen = sub.add_parser(
        "keygen",
        help="create the Ed25519 checkpoint key in the secrets backend (file or pkcs11)",
    )
    gen.add_argument("--key-id", help="key name (default: $BOT4_AUDIT_KEY or audit-checkpoint)")
    gen.add_argument("--public-out", type=Path, help="also write the PEM public key here")
    gen.set_defaults(handler=run_keygen)


def load_verifier(path: Path) -> NoteVerifier:
    """A PEM Ed25519 public key, or a ``name+hash+key`` verifier key line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditError(f"{path}: cannot read key ({exc.strerror})") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            public = load_pem_public_key(data)
        except ValueError as exc:
            raise AuditError(f"{path}: not a readable PEM public key ({exc})") from None
        if not isinstance(public, Ed25519PublicKey):
            raise AuditError(f"{path}: not an Ed25519 public key")
        return NoteVerifier(public)
    try:
        return NoteVerifier.from_vkey(data.decode("utf-8", "replace"))
    except NoteError as exc:
        raise AuditError(f"{path}: not a PEM public key or verifier key ({exc})") from None


def _legacy_key(args: argparse.Namespace, verifier: NoteVerifier | None) -> CheckpointKey | None:
    if args.hmac_key_file is not None:
        try:
            secret = args.hmac_key_file.read_bytes().strip()
        except OSError as exc:
            raise AuditError(f"{args.hmac_key_file}: cannot read key ({exc.strerror})") from None
        if len(secret) < 16:
            raise AuditError(f"{args.hmac_key_file}: HMAC key must be at least 16 bytes")
        return CheckpointKey(hmac_secret=secret)
    return CheckpointKey(verify_key=verifier.public) if verifier else None


def _anchor(path: Path, verifier: NoteVerifier | None) -> Checkpoint:
    try:
        note = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"{path}: cannot read checkpoint ({exc})") from None
    if verifier is None:
        raise AuditError("--checkpoint needs --key to check its signature")
    try:
        return verifier.open(note)
    except NoteError as exc:
        raise AuditError(f"{path}: checkpoint does not verify with the given key ({exc})") from None


def run_verify(args: argparse.Namespace) -> int:
    """Print the verdict lines; exit 1 unless clean or every finding is accepted."""
    verifier = load_verifier(args.key) if args.key else None
    anchors = [_anchor(p, verifier) for p in args.checkpoint]
    legacy = _legacy_key(args, verifier)
    first = next(iter_records(args.files[:1]), None)
    is_legacy = first is not None and first.record.get("format") == "bot4-audit/1"
    key = legacy if is_legacy else verifier
    verdict = verify(args.files, key, anchors=anchors)
    allowed = {kind for flag, kind in ALLOW.items() if getattr(args, f"allow_{flag}")}
    print("\n".join(verdict.lines(allowed)))
    return 0 if verdict.passes(allowed) else 1


def _files(log: Path) -> list[Path]:
    parts = sorted(log.parent.glob(f"{log.name}.[0-9][0-9][0-9][0-9][0-9][0-9]"))
    return [*parts, log]


def _checked(log: Path, key: Path | None) -> tuple[Verdict, NoteVerifier | None]:
    verifier = load_verifier(key) if key else None
    verdict = verify(_files(log), verifier, keep_leaves=True)
    if not verdict.ok:
        raise AuditError(f"{log}: does not verify ({verdict.problem})")
    return verdict, verifier


def _notes(log: Path) -> dict[int, str]:
    """Every checkpoint note of the log by the tree size it signs."""
    out: dict[int, str] = {}
    for i, line in enumerate(iter_records(_files(log))):
        if line.record.get("kind") == CHECKPOINT_KIND:
            out[i] = line.record["data"]["note"]
    return out


def run_prove(args: argparse.Namespace) -> int:
    """Print the inclusion proof of record INDEX under the log's latest checkpoint."""
    verdict, _ = _checked(args.log, args.key)
    size = verdict.signed_size
    if verdict.last_checkpoint is None or not 0 <= args.index < size:
        raise AuditError(
            f"record {args.index} is not covered by a checkpoint (signed tree size {size})"
        )
    record = next(
        line.record for i, line in enumerate(iter_records(_files(args.log))) if i == args.index
    )
    proof = merkle.inclusion_proof(verdict.leaves[:size], args.index)
    out = {
        "type": "inclusion",
        "index": args.index,
        "tree_size": size,
        "record": record,
        "leaf_hash": verdict.leaves[args.index].hex(),
        "proof": [p.hex() for p in proof],
        "checkpoint": verdict.last_checkpoint,
    }
    print(json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def _pick(spec: str | None, notes: dict[int, str], latest: int) -> tuple[int, str]:
    if spec is None:
        return latest, notes[latest]
    if spec.isdigit():
        if int(spec) not in notes:
            raise AuditError(f"the log has no checkpoint of tree size {spec}")
        return int(spec), notes[int(spec)]
    try:
        note = Path(spec).read_text(encoding="utf-8")
        size = Checkpoint.parse_body(note.partition("\n\n")[0] + "\n").size
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        raise AuditError(f"{spec}: not a checkpoint file ({exc})") from None
    return size, note


def run_consistency(args: argparse.Namespace) -> int:
    """Print the consistency proof between two checkpoints of the log."""
    verdict, _ = _checked(args.log, args.key)
    notes = _notes(args.log)
    if not notes:
        raise AuditError(f"{args.log}: has no checkpoints")
    size1, old = _pick(args.old, notes, verdict.signed_size)
    size2, new = _pick(args.new, notes, verdict.signed_size)
    if not size1 <= size2 <= len(verdict.leaves):
        raise AuditError(f"old tree size {size1} is larger than new tree size {size2}")
    proof = merkle.consistency_proof(verdict.leaves[:size2], size1)
    out = {
        "type": "consistency",
        "size1": size1,
        "size2": size2,
        "old": old,
        "new": new,
        "proof": [p.hex() for p in proof],
    }
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


def _hashes(values: object) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise AuditError("proof is not a list of hex hashes")
    try:
        return [bytes.fromhex(v) for v in values]
    except ValueError:
        raise AuditError("proof is not a list of hex hashes") from None


def _open(verifier: NoteVerifier, note: object, what: str) -> Checkpoint:
    if not isinstance(note, str):
        raise AuditError(f"proof has no {what} checkpoint")
    try:
        return verifier.open(note)
    except NoteError as exc:
        raise AuditError(f"{what} checkpoint does not verify with the given key ({exc})") from None


def run_check_proof(args: argparse.Namespace) -> int:
    """Check an inclusion or consistency proof with only the public key."""
    verifier = load_verifier(args.key)
    try:
        proof = json.loads(args.proof.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AuditError(f"{args.proof}: not a readable JSON proof ({exc})") from None
    if not isinstance(proof, dict) or proof.get("type") not in ("inclusion", "consistency"):
        raise AuditError(f"{args.proof}: not an inclusion or consistency proof")
    if proof["type"] == "inclusion":
        checkpoint = _open(verifier, proof.get("checkpoint"), "signed")
        record, index = proof.get("record"), proof.get("index")
        if not isinstance(record, dict) or not isinstance(index, int):
            raise AuditError(f"{args.proof}: inclusion proof needs a record and an index")
        path = _hashes(proof.get("proof"))
        digest = record_hash(record)
        ok = record.get(HASH_KEY) == digest and merkle.verify_inclusion(
            record_leaf(digest), index, checkpoint.size, path, checkpoint.root
        )
        what = f"record {index} is in the log under the signed tree of size {checkpoint.size}"
    else:
        old = _open(verifier, proof.get("old"), "old")
        new = _open(verifier, proof.get("new"), "new")
        ok = old.origin == new.origin and merkle.verify_consistency(
            old.size, new.size, _hashes(proof.get("proof")), old.root, new.root
        )
        what = f"the signed tree of size {new.size} extends the one of size {old.size}"
    print(f"OK: {what}" if ok else f"FAILED: proof does not show that {what}")
    return 0 if ok else 1


def run_head(args: argparse.Namespace) -> int:
    """Print the latest checkpoint note (keep it somewhere the log's holder cannot write)."""
    verdict, _ = _checked(args.log, args.key)
    if verdict.last_checkpoint is None:
        raise AuditError(f"{args.log}: has no checkpoints")
    sys.stdout.write(verdict.last_checkpoint)
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    """Create the key; print its verifier key line (and write the PEM public key)."""
    verifier = keygen(args.key_id or key_id_from_env())
    if args.public_out is not None:
        pem = verifier.public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        args.public_out.write_bytes(pem)
    print(verifier.vkey())
    return 0
