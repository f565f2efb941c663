"""C2SP ``tlog-checkpoint`` notes signed per the C2SP ``signed-note`` spec with Ed25519.

A checkpoint is three lines — origin, tree size (decimal), base64 root hash — followed
by a blank line and one signature line per signer:
``— <key name> <base64(key hash (4 bytes) || Ed25519 signature)>``. The key hash is the
first four bytes of SHA-256(name || "\\n" || 0x01 || public key), so a verifier can
pick its signature out of several. Keeping to the published formats means any tool that
speaks signed notes (Go's ``golang.org/x/mod/sumdb/note``, transparency-dev witnesses;
the key IDs, verifier keys and signatures are tested byte for byte against its example)
can check a bot4 checkpoint without bot4.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bot4.trading_engine.errors import AuditError

ED25519_TYPE = b"\x01"
DASH = "\u2014"  # "—", the signature line prefix the spec mandates
DEFAULT_ORIGIN = "bot4/audit"


class NoteError(AuditError):
    """A checkpoint note is malformed or its signature does not verify."""


def _check_name(name: str) -> str:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def key_hash(name: str, public: Ed25519PublicKey) -> bytes:
    """The 4-byte key ID of an Ed25519 note key."""
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + raw).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint asserts: the log ``origin`` had ``size`` leaves under ``root``."""

    origin: str
    size: int
    root: bytes

    def body(self) -> bytes:
        """The signed text: origin, size and base64 root, each ending in a newline."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n".encode()

    @classmethod
    def parse_body(cls, body: str) -> Checkpoint:
        """Parse the three checkpoint lines (extension lines are allowed and ignored)."""
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "" or not lines[0]:
            raise NoteError("checkpoint body needs origin, size and root lines")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise NoteError(f"checkpoint tree size {size_text!r} is not a decimal number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except (binascii.Error, ValueError):
            raise NoteError("checkpoint root hash is not base64") from None
        if len(root) != 32:
            raise NoteError("checkpoint root hash is not 32 bytes")
        return cls(origin, int(size_text), root)


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 note key: ``name``, public key, and a function that signs with the private
    half (which may stay inside a secrets backend). Its repr never shows key material."""

    name: str
    public: Ed25519PublicKey
    sign_bytes: Callable[[bytes], bytes] = field(repr=False)
    release: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)

    @classmethod
    def from_private(cls, name: str, private: Ed25519PrivateKey) -> NoteSigner:
        """A signer over an in-memory private key (tests, tooling)."""
        return cls(name, private.public_key(), private.sign)

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r}, private key redacted)"

    def verifier(self) -> NoteVerifier:
        """The matching public verifier."""
        return NoteVerifier(self.public, self.name)

    def close(self) -> None:
        """Release the backend holding the private key (a PKCS#11 session and its login)."""
        if self.release is not None:
            self.release()

    def sign(self, checkpoint: Checkpoint) -> str:
        """The whole signed note: body, blank line, one signature line."""
        body = checkpoint.body()
        blob = key_hash(self.name, self.public) + self.sign_bytes(body)
        return f"{body.decode()}\n{DASH} {self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 public key; with ``name`` None, any signature line whose key hash matches
    (name in the line, this key) is taken as this key's."""

    public: Ed25519PublicKey
    name: str | None = None

    def vkey(self, name: str | None = None) -> str:
        """The signed-note verifier key text: ``name+hexkeyhash+base64(0x01||key)``."""
        name = _check_name(name or self.name or "")
        raw = self.public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        kh = key_hash(name, self.public).hex()
        return f"{name}+{kh}+{base64.b64encode(ED25519_TYPE + raw).decode()}"

    @classmethod
    def from_vkey(cls, text: str) -> NoteVerifier:
        """Parse ``name+hexkeyhash+base64key`` (and check the hash matches the key)."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("verifier key must be NAME+KEYHASH+KEY")
        name, kh, key_text = parts
        try:
            raw = base64.b64decode(key_text, validate=True)
        except (binascii.Error, ValueError):
            raise NoteError("verifier key is not base64") from None
        if len(raw) != 33 or raw[:1] != ED25519_TYPE:
            raise NoteError("verifier key is not an Ed25519 note key")
        public = Ed25519PublicKey.from_public_bytes(raw[1:])
        if key_hash(_check_name(name), public).hex() != kh.lower():
            raise NoteError("verifier key hash does not match its key")
        return cls(public, name)

    def open(self, note: str) -> Checkpoint:
        """The checkpoint of ``note`` if one of its signatures is this key's; else NoteError."""
        body, sep, sigs = note.partition("\n\n")
        if not sep or not sigs.endswith("\n"):
            raise NoteError("note has no signature block")
        body_bytes = (body + "\n").encode()
        checkpoint = Checkpoint.parse_body(body + "\n")
        for line in sigs[:-1].split("\n"):
            prefix, _, rest = line.partition(" ")
            name, _, sig_text = rest.partition(" ")
            if prefix != DASH or not name or not sig_text:
                raise NoteError("malformed signature line")
            try:
                blob = base64.b64decode(sig_text, validate=True)
            except (binascii.Error, ValueError):
                raise NoteError("signature is not base64") from None
            if (self.name is not None and name != self.name) or len(blob) < 4:
                continue
            if blob[:4] != key_hash(name, self.public):
                continue
            try:
                self.public.verify(blob[4:], body_bytes)
            except InvalidSignature:
                raise NoteError("signature does not verify") from None
            return checkpoint
        raise NoteError("no signature by this key")
