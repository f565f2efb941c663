"""DSSE v1 envelopes (the in-toto attestation signing wrapper) as cosign writes them:
``{"payloadType":…,"payload":BASE64,"signatures":[{"keyid":"","sig":BASE64}]}`` where
each signature is over PAE(payloadType, payload), not over the JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ci.release.cosign import go_json
from ci.release.errors import ReleaseError
from ci.release.keys import PublicKey, b64, unb64

INTOTO = "application/vnd.in-toto+json"


def pae(payload_type: str, body: bytes) -> bytes:
    """Pre-Authentication Encoding: ``DSSEv1 LEN(type) type LEN(body) body``."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


@dataclass(frozen=True)
class Envelope:
    """A decoded envelope: payload bytes and the DER signatures over its PAE."""

    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]

    def encode(self) -> bytes:
        """The envelope's JSON bytes (field order as go-securesystemslib writes them)."""
        return go_json(
            {
                "payloadType": self.payload_type,
                "payload": b64(self.payload),
                "signatures": [{"keyid": kid, "sig": b64(sig)} for kid, sig in self.signatures],
            }
        )

    def verified_by(self, keys: Sequence[PublicKey]) -> PublicKey | None:
        """The first of ``keys`` that made one of the signatures, or None."""
        message = pae(self.payload_type, self.payload)
        for key in keys:
            if any(key.verify(sig, message) for _, sig in self.signatures):
                return key
        return None


def seal(
    payload_type: str, body: bytes, sign: Callable[[bytes], bytes], keyid: str = ""
) -> Envelope:
    """Sign ``body`` into an envelope (``sign`` returns a DER signature of its input)."""
    return Envelope(payload_type, body, ((keyid, sign(pae(payload_type, body))),))


def parse(data: bytes, where: str) -> Envelope:
    """Decode an envelope; a truncated or malformed one is one clear ``ReleaseError``."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise ReleaseError(f"{where}: DSSE envelope is not valid JSON (truncated?)") from None
    try:
        sigs = doc["signatures"]
        envelope = Envelope(
            str(doc["payloadType"]),
            unb64(str(doc["payload"]), f"{where}: DSSE payload"),
            tuple(
                (str(s.get("keyid", "")), unb64(str(s["sig"]), f"{where}: DSSE signature"))
                for s in sigs
            ),
        )
    except (KeyError, TypeError, AttributeError):
        raise ReleaseError(
            f"{where}: not a DSSE envelope (needs payloadType, payload and signatures)"
        ) from None
    if not envelope.signatures:
        raise ReleaseError(f"{where}: DSSE envelope carries no signature")
    return envelope
