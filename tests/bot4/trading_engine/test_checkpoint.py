"""C2SP signed-note checkpoints: format, key IDs, verifier keys, and what a verifier refuses."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bot4.trading_engine.checkpoint import (
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    key_hash,
)

PRIVATE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SIGNER = NoteSigner.from_private("example.com/log", PRIVATE)
CP = Checkpoint("example.com/log", 42, bytes(range(32)))


def test_note_layout_and_key_id_follow_the_spec() -> None:
    note = SIGNER.sign(CP)
    body, sig = note.split("\n\n")
    assert body == f"example.com/log\n42\n{base64.b64encode(bytes(range(32))).decode()}"
    assert sig.startswith("\u2014 example.com/log ") and sig.endswith("\n")
    blob = base64.b64decode(sig.split(" ")[2])
    raw = PRIVATE.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    # key ID = SHA-256(name || 0x0A || 0x01 || key)[:4]
    assert blob[:4] == hashlib.sha256(b"example.com/log\n\x01" + raw).digest()[:4]
    assert blob[:4] == key_hash("example.com/log", PRIVATE.public_key())
    PRIVATE.public_key().verify(blob[4:], CP.body())
    assert SIGNER.verifier().open(note) == CP
    assert "redacted" in repr(SIGNER)


def test_verifier_keys_round_trip_and_are_checked() -> None:
    vkey = SIGNER.verifier().vkey()
    name, kh, key = vkey.split("+", 2)
    assert name == "example.com/log" and len(kh) == 8
    assert base64.b64decode(key)[:1] == b"\x01"
    assert NoteVerifier.from_vkey(vkey).open(SIGNER.sign(CP)) == CP
    for bad, why in [
        ("a+b", "NAME\\+KEYHASH\\+KEY"),
        (f"{name}+{kh}+!!", "not base64"),
        (f"{name}+{kh}+{base64.b64encode(b'x' * 33).decode()}", "not an Ed25519 note key"),
        (f"{name}+00000000+{key}", "hash does not match"),
    ]:
        with pytest.raises(NoteError, match=why):
            NoteVerifier.from_vkey(bad)
    with pytest.raises(NoteError, match="must be non-empty"):
        NoteSigner.from_private("has space", PRIVATE)
    with pytest.raises(NoteError, match="must be non-empty"):
        NoteVerifier(PRIVATE.public_key()).vkey()


def test_a_pem_verifier_matches_by_key_whatever_the_name_says() -> None:
    anonymous = NoteVerifier(PRIVATE.public_key())
    assert anonymous.open(SIGNER.sign(CP)) == CP
    other = NoteSigner.from_private("example.com/log", Ed25519PrivateKey.generate())
    with pytest.raises(NoteError, match="no signature by this key"):
        anonymous.open(other.sign(CP))
    renamed = NoteSigner.from_private("other-name", PRIVATE)
    with pytest.raises(NoteError, match="no signature by this key"):
        SIGNER.verifier().open(renamed.sign(CP))


def test_tampered_notes_are_refused() -> None:
    note = SIGNER.sign(CP)
    body, sig = note.split("\n\n")
    with pytest.raises(NoteError, match="signature does not verify"):
        SIGNER.verifier().open(note.replace("\n42\n", "\n43\n"))
    cases = {
        "no signature block": body + "\n",
        "malformed signature line": body + "\n\nnot a signature\n",
        "signature is not base64": body + "\n\n\u2014 example.com/log !!!\n",
        "needs origin, size and root": "x\n\n" + sig,
        "is not a decimal number": note.replace("\n42\n", "\n042\n"),
        "root hash is not base64": note.replace(body.split("\n")[2], "%%%"),
        "root hash is not 32 bytes": note.replace(body.split("\n")[2], "AAAA"),
    }
    for why, text in cases.items():
        with pytest.raises(NoteError, match=why):
            SIGNER.verifier().open(text)
    short = body + "\n\n\u2014 example.com/log " + base64.b64encode(b"ab").decode() + "\n"
    with pytest.raises(NoteError, match="no signature by this key"):
        SIGNER.verifier().open(short)


# The reference example of golang.org/x/mod/sumdb/note (note_test.go, note.go docs), BSD-3:
# a public test key, its verifier key and the signature of the example text.
GO_VKEY = (
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"  # pragma: allowlist secret
)
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # pragma: allowlist secret  # noqa: E501
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
GO_SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="  # pragma: allowlist secret  # noqa: E501


def test_key_ids_vkeys_and_signatures_match_the_go_reference_byte_for_byte() -> None:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert seed[:1] == b"\x01"
    signer = NoteSigner.from_private("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed[1:]))
    assert signer.verifier().vkey() == GO_VKEY
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    assert key_hash("PeterNeumann", verifier.public).hex() == "c74f20a3"
    blob = key_hash("PeterNeumann", signer.public) + signer.sign_bytes(GO_TEXT)
    assert base64.b64encode(blob).decode() == GO_SIG
