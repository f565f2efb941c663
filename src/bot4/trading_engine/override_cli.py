"""``bot4 override keygen|issue``: the operator's side of gate overrides.

An override token lets one named order past the gate inside a time window, once. The key
is an Ed25519 key in the secrets backend (``file`` or ``pkcs11``; the private half stays
there); ``bot4 run --override-token FILE`` checks a token with its public half before
anything starts, refuses one already spent in the audit log, and presents it for its
order. Times are on the gate's clock: for ``bot4 run``, simulated seconds from the run's
start.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bot4.infrastructure.secrets.interface import SecretsError
from bot4.trading_engine.audit_keys import ed25519_backend
from bot4.trading_engine.errors import GateConfigError
from bot4.trading_engine.override import (
    MAX_WINDOW_NS,
    OverrideKey,
    OverrideRejectedError,
    issue,
)

KEY_ENV = "BOT4_OVERRIDE_KEY"
DEFAULT_KEY_ID = "gate-override"
MAX_TOKEN_BYTES = 4096
_NS_PER_S = 1_000_000_000


def key_id_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``BOT4_OVERRIDE_KEY`` or ``gate-override``."""
    env = os.environ if environ is None else environ
    return env.get(KEY_ENV) or DEFAULT_KEY_ID


def load_key(key_id: str) -> OverrideKey:
    """The override key's public half, from the secrets backend (to check tokens)."""
    backend = ed25519_backend(os.environ)
    try:
        return OverrideKey(verify_key=backend.ed25519_public(key_id))
    except SecretsError as exc:
        raise GateConfigError(
            f"no override key ({exc}); create one with: bot4 override keygen --key-id {key_id}"
        ) from None
    finally:
        backend.close()


def read_token(path: Path) -> str:
    """One token line from a file, checked for size and shape before anything uses it."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise OverrideRejectedError(
            f"{path}: cannot read override token ({exc.strerror})"
        ) from None
    text = data.decode("ascii", "replace").strip()
    if len(data) > MAX_TOKEN_BYTES or not text or any(c.isspace() for c in text):
        raise OverrideRejectedError(f"{path}: not an override token (one line, ≤ 4 KiB)")
    return text


def register(subparsers: Any) -> None:  # noqa: ANN401 - argparse's private subparsers type
    """Add ``override keygen|issue``."""
    override: argparse.ArgumentParser = subparsers.add_parser(
        "override", help="issue single-use operator override tokens for the gate"
    )
    sub = override.add_subparsers(dest="override_command", metavar="ACTION", required=True)
    key_help = f"key id in the secrets backend (default: ${KEY_ENV} or {DEFAULT_KEY_ID})"
    gen = sub.add_parser("keygen", help="create the Ed25519 override key (file or pkcs11)")
    gen.add_argument("--key-id", help=key_help)
    gen.add_argument("--public-out", type=Path, help="also write the PEM public key here")
    gen.set_defaults(handler=run_keygen)
    mint = sub.add_parser(
        "issue",
        help="sign a token that lets one order past the gate, once",
        description="Sign an override token for one order. Times are on the gate's clock "
        "(bot4 run: simulated seconds from the run's start).",
    )
    mint.add_argument("--order-id", required=True, help="the order the token applies to")
    mint.add_argument("--operator", required=True, help="who takes responsibility")
    mint.add_argument("--reason", required=True, help="why the gate is overridden")
    mint.add_argument("--valid-from", type=float, default=0.0, help="seconds (default: 0)")
    mint.add_argument(
        "--valid-for",
        type=float,
        default=MAX_WINDOW_NS / _NS_PER_S,
        help=f"seconds, at most {MAX_WINDOW_NS // _NS_PER_S} (default: that)",
    )
    mint.add_argument("--key-id", help=key_help)
    mint.add_argument("--out", type=Path, help="write the token to this new file (mode 0600)")
    mint.set_defaults(handler=run_issue)


def run_keygen(args: argparse.Namespace) -> int:
    """Create the key; print (and optionally write) its PEM public half."""
    key_id = args.key_id or key_id_from_env()
    backend = ed25519_backend(os.environ, create_dir=True)
    try:  # a SecretsError (key exists, token refused) is a one-line Bot4Error as it is
        backend.create_ed25519_key(key_id)
        pem = backend.ed25519_public(key_id).public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
    finally:
        backend.close()
    if args.public_out is not None:
        args.public_out.write_bytes(pem)
    print(pem.decode(), end="")
    return 0


def run_issue(args: argparse.Namespace) -> int:
    """Sign the token and print it (or write it to a new 0600 file)."""
    if not (math.isfinite(args.valid_from) and math.isfinite(args.valid_for)):
        raise GateConfigError("--valid-from and --valid-for must be finite numbers of seconds")
    start = round(args.valid_from * _NS_PER_S)
    key_id = args.key_id or key_id_from_env()
    verify_key = load_key(key_id).verify_key  # the remedy if it is missing
    backend = ed25519_backend(os.environ)
    try:
        token = issue(
            OverrideKey(verify_key=verify_key, sign_with=partial(backend.sign_ed25519, key_id)),
            order_id=args.order_id,
            not_before_ns=start,
            not_after_ns=start + round(args.valid_for * _NS_PER_S),
            operator=args.operator,
            reason=args.reason,
        )
    finally:
        backend.close()
    if args.out is None:
        print(token)
        return 0
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise GateConfigError(f"{args.out}: exists; a token file is never overwritten") from None
    except OSError as exc:
        raise GateConfigError(f"{args.out}: cannot create ({exc.strerror})") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return 0
