"""``bot4 audit verify FILE…``: check a hash-chained audit log and name the first bad line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bot4.trading_engine.audit_log import CheckpointKey, verify
from bot4.trading_engine.errors import AuditError


def register(subparsers: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add ``audit verify``."""
    audit: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="work with the tamper-evident audit log"
    )
    sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "verify",
        help="verify the hash chain (and checkpoints) of one or more log files",
        description="Verify an audit log. Give rotated parts oldest first, then the live file.",
    )
    check.add_argument("files", nargs="+", type=Path, help="log files, oldest first")
    keys = check.add_mutually_exclusive_group()
    keys.add_argument("--hmac-key-file", type=Path, help="file holding the HMAC checkpoint key")
    keys.add_argument("--public-key", type=Path, help="PEM Ed25519 public key for checkpoints")
    check.set_defaults(handler=run_verify)


def load_key(args: argparse.Namespace) -> CheckpointKey | None:
    """The checkpoint key named on the command line, if any."""
    if args.hmac_key_file is not None:
        try:
            secret = args.hmac_key_file.read_bytes().strip()
        except OSError as exc:
            raise AuditError(f"{args.hmac_key_file}: cannot read key ({exc.strerror})") from None
        if len(secret) < 16:
            raise AuditError(f"{args.hmac_key_file}: HMAC key must be at least 16 bytes")
        return CheckpointKey(hmac_secret=secret)
    if args.public_key is not None:
        try:
            public = load_pem_public_key(args.public_key.read_bytes())
        except (OSError, ValueError) as exc:
            raise AuditError(f"{args.public_key}: not a readable PEM public key ({exc})") from None
        if not isinstance(public, Ed25519PublicKey):
            raise AuditError(f"{args.public_key}: not an Ed25519 public key")
        return CheckpointKey(verify_key=public)
    return None


def run_verify(args: argparse.Namespace) -> int:
    """Print one verdict line; exit 1 when the chain is broken."""
    verdict = verify(args.files, load_key(args))
    print(verdict.describe())
    return 0 if verdict.ok else 1
