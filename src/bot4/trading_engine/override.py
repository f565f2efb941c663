"""Operator override tokens: signed, scoped to one order and a time window, single-use.

An override is the one way past the gate, so it must be as hard to misuse as the gate
is to bypass: a token names the order it applies to, the window in which it is valid,
who issued it and why; it is signed (HMAC-SHA256 or Ed25519) with the override key from
the secrets provider; and its nonce is remembered so a replay is rejected — across
restarts too: each use is an ``override_use`` audit record, read back when a gate
starts on the same log (whose writer lock keeps a second process off it).
Format: ``bot4o1.<base64url(canonical JSON claims)>.<base64url(signature)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bot4.trading_engine.errors import GateConfigError

PREFIX = "bot4o1"
MAX_WINDOW_NS = (
    3_600 * 1_000_000_000
)  # an override longer than an hour is a policy, not an override


class OverrideRejectedError(GateConfigError):
    """The token is not valid for this decision; the message says why (``bot4`` exits 3)."""

    exit_code = 3


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class OverrideClaims:
    """What an override token asserts."""

    order_id: str
    not_before_ns: int
    not_after_ns: int
    operator: str
    reason: str
    nonce: str


@dataclass(frozen=True)
class OverrideKey:
    """The override key: an HMAC secret, or an Ed25519 key (private to issue, public to check)."""

    hmac_secret: bytes | None = None
    signing_key: Ed25519PrivateKey | None = None
    verify_key: Ed25519PublicKey | None = None
    # Signs with an Ed25519 private key held by a secrets backend (with ``verify_key``).
    sign_with: Callable[[bytes], bytes] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.hmac_secret is not None and len(self.hmac_secret) < 32:
            raise GateConfigError("override HMAC key must be at least 32 bytes")
        if self.hmac_secret is None and self.signing_key is None and self.verify_key is None:
            raise GateConfigError("override key needs an HMAC secret or an Ed25519 key")

    def __repr__(self) -> str:
        kind = "hmac-sha256" if self.hmac_secret is not None else "ed25519"
        return f"OverrideKey({kind}, secret material redacted)"

    def sign(self, message: bytes) -> bytes:
        """Sign with the HMAC secret or the Ed25519 private key."""
        if self.hmac_secret is not None:
            return hmac.new(self.hmac_secret, message, hashlib.sha256).digest()
        if self.signing_key is not None:
            return self.signing_key.sign(message)
        if self.sign_with is not None:
            return self.sign_with(message)
        raise GateConfigError("override key has only a public half: it cannot issue tokens")

    def check(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is valid for ``message``."""
        if self.hmac_secret is not None:
            return hmac.compare_digest(self.sign(message), signature)
        public = self.verify_key or (self.signing_key.public_key() if self.signing_key else None)
        if public is None:  # unreachable: __post_init__ requires a key; kept for type safety
            return False
        try:
            public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def issue(
    key: OverrideKey,
    *,
    order_id: str,
    not_before_ns: int,
    not_after_ns: int,
    operator: str,
    reason: str,
    nonce: str | None = None,
) -> str:
    """Create a token (operator tooling; the gate only verifies)."""
    if not operator.strip() or not reason.strip():
        raise GateConfigError("an override needs an operator name and a reason")
    if not 0 < not_after_ns - not_before_ns <= MAX_WINDOW_NS:
        raise GateConfigError("override window must be positive and at most one hour")
    claims = OverrideClaims(
        order_id, not_before_ns, not_after_ns, operator, reason, nonce or secrets.token_hex(16)
    )
    body = json.dumps(asdict(claims), sort_keys=True, separators=(",", ":")).encode()
    return f"{PREFIX}.{_b64(body)}.{_b64(key.sign(body))}"


def _parse(token: str) -> tuple[bytes, bytes, Any]:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise OverrideRejectedError(f"override token is not a {PREFIX} token")
    try:
        body, signature = _unb64(parts[1]), _unb64(parts[2])
        claims = json.loads(body)
    except (binascii.Error, ValueError):
        raise OverrideRejectedError("override token is corrupt (bad base64 or JSON)") from None
    return body, signature, claims


class OverrideVerifier:
    """Checks tokens for one gate and remembers every nonce it accepted."""

    def __init__(self, key: OverrideKey) -> None:
        self._key = key
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OverrideVerifier({self._key!r}, {len(self._used)} used)"

    def mark_used(self, nonces: Iterable[str]) -> None:
        """Remember nonces spent elsewhere (e.g. read back from the audit log at start-up)."""
        with self._lock:
            self._used.update(nonces)

    def is_used(self, nonce: str) -> bool:
        """Whether a token with this nonce was accepted already (here or in the log)."""
        with self._lock:
            return nonce in self._used

    def inspect(self, token: str) -> OverrideClaims:
        """The claims of a genuine, well-formed token (signature checked; not consumed)."""
        body, signature, raw = _parse(token)
        if not self._key.check(body, signature):
            raise OverrideRejectedError("override token signature does not verify")
        if not isinstance(raw, dict):
            raise OverrideRejectedError("override token claims are not an object")
        try:
            claims = OverrideClaims(**raw)
        except TypeError:
            raise OverrideRejectedError("override token claims are incomplete") from None
        for f in fields(claims):
            value = getattr(claims, f.name)
            want = int if f.name.endswith("_ns") else str
            if type(value) is not want:
                raise OverrideRejectedError(
                    f"override token claim {f.name} is not a {want.__name__}"
                )
        return claims

    def verify(self, token: str, order_id: str, now_ns: int) -> OverrideClaims:
        """Accept the token for this order at this time exactly once, or raise why not."""
        claims = self.inspect(token)
        if claims.order_id != order_id:
            raise OverrideRejectedError(
                f"override token is for order {claims.order_id!r}, not {order_id!r}"
            )
        if not claims.not_before_ns <= now_ns <= claims.not_after_ns:
            raise OverrideRejectedError("override token is outside its validity window")
        with self._lock:
            if claims.nonce in self._used:
                raise OverrideRejectedError("override token was already used (replay rejected)")
            self._used.add(claims.nonce)
        return claims
