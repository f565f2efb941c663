"""cosign's format, checked against vectors cosign itself made (tests/ci/release/data,
see NOTICE.md): our payload bytes equal cosign's, our verifier accepts cosign's
signatures and DSSE envelopes, and refuses them under another key or once altered."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci.release import cosign, dsse
from ci.release.errors import ReleaseError
from ci.release.keys import PublicKey, b64, unb64
from ci.release.reference import Reference

DATA = Path(__file__).parent / "data"


def containers_signature(name: str) -> dict[str, Any]:
    """containers/image stores a cosign signature as ``\\0sigstore-json\\n`` + JSON."""
    raw = (DATA / name).read_bytes()
    header = b"\x00sigstore-json\n"
    assert raw.startswith(header)
    doc: dict[str, Any] = json.loads(raw[len(header) :])
    return doc


@pytest.fixture
def vector() -> tuple[bytes, bytes, PublicKey, str]:
    """(payload, signature, cosign.pub, digest of the signed manifest)."""
    doc = containers_signature("cosign-valid.signature")
    assert doc["mimeType"] == cosign.SIMPLE_SIGNING
    body = unb64(doc["payload"], "payload")
    signature = unb64(doc["annotations"][cosign.SIGNATURE_ANNOTATION], "signature")
    manifest = (DATA / "cosign-valid.manifest.json").read_bytes()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    return body, signature, PublicKey((DATA / "cosign.pub").read_bytes()), digest


def test_cosign_signature_vector_verifies(vector: tuple[bytes, bytes, PublicKey, str]) -> None:
    body, signature, key, digest = vector
    assert key.verify(signature, body)
    claims = cosign.parse_payload(body)
    assert claims.type == cosign.SIGNATURE_TYPE
    assert claims.digest == digest
    assert claims.reference.endswith("/cosign-signed-single-sample")
    assert claims.optional == {}
    assert not key.verify(signature, body.replace(b"sha256:6", b"sha256:7"))
    assert not key.verify(signature[:-1], body)


def test_our_payload_is_byte_identical_to_cosigns(
    vector: tuple[bytes, bytes, PublicKey, str],
) -> None:
    body, _, _, digest = vector
    name = cosign.parse_payload(body).reference
    assert cosign.payload(name, digest) == body


def test_another_keys_signature_of_the_same_payload_is_refused(
    vector: tuple[bytes, bytes, PublicKey, str],
) -> None:
    body, _, key, _ = vector
    doc = containers_signature("cosign-unknown-key.signature")
    other = unb64(doc["annotations"][cosign.SIGNATURE_ANNOTATION], "signature")
    assert unb64(doc["payload"], "payload") == body
    assert not key.verify(other, body)


def test_cosign_dsse_vector_verifies() -> None:
    doc = yaml.safe_load((DATA / "cosign-dsse-vector.yaml").read_text())
    key = PublicKey(doc["public-key"].encode())
    raw = json.dumps(doc["envelope"]).encode()
    envelope = dsse.parse(raw, "vector")
    assert envelope.payload_type == dsse.INTOTO
    assert envelope.verified_by([key]) == key
    statement = json.loads(envelope.payload)
    assert statement["predicateType"] == "https://cosign.sigstore.dev/attestation/v1"
    altered = dsse.Envelope(envelope.payload_type, envelope.payload + b" ", envelope.signatures)
    assert altered.verified_by([key]) is None
    retyped = dsse.Envelope("application/json", envelope.payload, envelope.signatures)
    assert retyped.verified_by([key]) is None  # the type is signed too (PAE)


def test_pae_matches_the_dsse_specification() -> None:
    # The worked example of the DSSE v1 protocol document.
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "


def test_go_json_escapes_like_encoding_json() -> None:
    assert cosign.go_json({"b": "<a&b>", "a": "\u2028é"}) == (
        b'{"b":"\\u003ca\\u0026b\\u003e","a":"\\u2028\xc3\xa9"}'
    )


def test_payload_with_annotations_and_layout() -> None:
    digest = "sha256:" + "a" * 64
    body = cosign.payload("localhost:5000/bot4", digest, {"z": "1", "commit": "abc"})
    assert body.endswith(b'"optional":{"commit":"abc","z":"1"}}')
    assert cosign.tag_for(digest, "sig") == "sha256-" + "a" * 64 + ".sig"
    layer = cosign.Layer(body, cosign.SIMPLE_SIGNING, {cosign.SIGNATURE_ANNOTATION: b64(b"sig")})
    manifest, config = cosign.manifest([layer])
    doc = json.loads(manifest.data)
    assert list(doc) == ["schemaVersion", "mediaType", "config", "layers"]
    assert list(doc["layers"][0]) == ["mediaType", "size", "digest", "annotations"]
    assert doc["layers"][0]["annotations"] == {cosign.SIGNATURE_ANNOTATION: "c2ln"}
    assert json.loads(config) == {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        "config": {},
    }
    assert doc["config"]["digest"] == "sha256:" + hashlib.sha256(config).hexdigest()


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{}", b'{"critical": {"identity": {}}}', b'{"critical": []}'],
)
def test_malformed_payloads_are_refused(body: bytes) -> None:
    with pytest.raises(ReleaseError, match="not a cosign simple signing document"):
        cosign.parse_payload(body)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"payloadType": "x", "payload": "e30=", "signatures": [{"sig": "AA', "truncated"),
        (b'{"payloadType": "x"}', "needs payloadType, payload and signatures"),
        (b'{"payloadType": "x", "payload": "e30=", "signatures": []}', "carries no signature"),
        (
            b'{"payloadType": "x", "payload": "!!", "signatures": [{"sig": "AA=="}]}',
            "not valid base64",
        ),
        (b'{"payloadType": "x", "payload": "e30=", "signatures": [7]}', "not a DSSE envelope"),
    ],
)
def test_malformed_envelopes_are_one_clear_error(raw: bytes, message: str) -> None:
    with pytest.raises(ReleaseError, match=message):
        dsse.parse(raw, "attestation")


def test_envelope_round_trip() -> None:
    envelope = dsse.Envelope(dsse.INTOTO, b'{"a":1}', (("", b"\x01\x02"),))
    assert dsse.parse(envelope.encode(), "x") == envelope
    assert json.loads(envelope.encode()) == {
        "payloadType": dsse.INTOTO,
        "payload": "eyJhIjoxfQ==",
        "signatures": [{"keyid": "", "sig": "AQI="}],
    }


def test_public_key_checks(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    with pytest.raises(ReleaseError, match="not a PEM public key"):
        PublicKey(b"garbage")
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    pem = p384.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ReleaseError, match="not an ECDSA P-256 key"):
        PublicKey(pem)
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ReleaseError, match="not an ECDSA P-256 key"):
        PublicKey(
            ed.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    key = PublicKey((DATA / "cosign.pub").read_bytes())
    assert key.fingerprint.startswith("sha256:") and len(key.fingerprint) == 71
    assert Reference("h:1", "r").name == "h:1/r"
