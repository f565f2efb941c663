"""Sign, attest and verify against a real registry; every refusal is one clear line."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ci.oci.digest import sha256
from ci.oci.layout import Layout
from ci.oci.manifest import Manifest
from ci.release import attest, cosign, dsse, sign, transfer, verify
from ci.release.errors import RefusedError, RegistryError, ReleaseError, TamperedError
from ci.release.keys import PublicKey, Signer, b64
from ci.release.local_registry import LocalRegistry
from ci.release.reference import Reference, parse
from ci.release.registry import Registry
from ci.release.trust_policy import DeployPolicy, TrustedKey

TODAY = dt.date(2026, 11, 30)
SBOM = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}
PROVENANCE = {"runDetails": {"builder": {"id": "urn:builder:ci"}}, "buildDefinition": {}}


@pytest.fixture
def publish(
    registry: Registry, repo: str, make_layout: Callable[..., tuple[Path, str]]
) -> Callable[[str], Reference]:
    """``publish(text)``: push a unique one-file image; return it pinned by digest."""

    def push(text: str) -> Reference:
        src, _ = make_layout({"etc/id": (text.encode(), 0o644)})
        ref = parse(f"{registry.host}/{repo}:{text}")
        return ref.with_digest(transfer.push(registry, Layout(src), ref))

    return push


def trust(signer: Signer, **window: dt.date) -> DeployPolicy:
    return DeployPolicy((TrustedKey("release", PublicKey(signer.public_pem), **window),))  # type: ignore[arg-type]


def release(registry: Registry, ref: Reference, signer: Signer) -> None:
    sign.sign(registry, ref, signer)
    attest.attest(registry, ref, signer, attest.SBOM, SBOM)
    attest.attest(registry, ref, signer, attest.PROVENANCE, PROVENANCE)


def test_a_signed_and_attested_image_verifies(
    registry: Registry, publish: Callable[[str], Reference], make_signer: Callable[[str], Signer]
) -> None:
    signer = make_signer("release")
    ref = publish("good")
    release(registry, ref, signer)
    verified = verify.verify(registry, ref, trust(signer), TODAY)
    assert verified.signer.name == "release"
    assert set(verified.statements) == {attest.SBOM, attest.PROVENANCE}
    assert verify.sbom_of(verified) == SBOM
    # The signature manifest is cosign's: one simple-signing layer with the annotation.
    sig = registry.manifest(ref.repository, cosign.tag_for(str(ref.digest), "sig")).json()
    assert [layer["mediaType"] for layer in sig["layers"]] == [cosign.SIMPLE_SIGNING]
    att = registry.manifest(ref.repository, cosign.tag_for(str(ref.digest), "att")).json()
    assert [layer["annotations"] for layer in att["layers"]] == [
        {cosign.SIGNATURE_ANNOTATION: "", cosign.PREDICATE_ANNOTATION: attest.SBOM},
        {cosign.SIGNATURE_ANNOTATION: "", cosign.PREDICATE_ANNOTATION: attest.PROVENANCE},
    ]


def test_verify_fetches_every_blob_and_refuses_other_bytes(
    registry: Registry,
    local_registry: LocalRegistry,
    publish: Callable[[str], Reference],
    make_signer: Callable[[str], Signer],
) -> None:
    """A registry serving a corrupted layer or manifest for the signed digest: verify
    (not only pull) refuses it, exit code 3; restored, it verifies again."""
    signer = make_signer("release")
    ref = publish("content-check")
    release(registry, ref, signer)
    verified = verify.verify(registry, ref, trust(signer), TODAY)
    doc = verified.image.top.json()
    wanted = {str(ref.digest), doc["config"]["digest"], *(d["digest"] for d in doc["layers"])}
    assert set(verified.image.blobs) == wanted
    layer = str(doc["layers"][0]["digest"])
    for digest, what in ((layer, "blob"), (str(ref.digest), "manifest")):
        path = local_registry.blob_file(digest)
        original = path.read_bytes()
        if what == "manifest":  # still valid JSON: the registry parses it before serving
            at = original.rindex(b'"sha256:') + 8
            digit = b"1" if original[at : at + 1] != b"1" else b"2"
            edited = original[:at] + digit + original[at + 1 :]
        else:
            edited = original[:-1] + bytes([original[-1] ^ 0x01])
        path.write_bytes(edited)
        try:
            with pytest.raises(TamperedError, match=f"refused: .* served {what} {digest}") as info:
                verify.verify(registry, ref, trust(signer), TODAY)
            assert info.value.exit_code == 3
        finally:
            path.write_bytes(original)
    assert verify.verify(registry, ref, trust(signer), TODAY).image.blobs == verified.image.blobs


def test_signatures_accumulate_and_identical_ones_are_not_duplicated(
    registry: Registry, publish: Callable[[str], Reference], make_signer: Callable[[str], Signer]
) -> None:
    first, second = make_signer("one"), make_signer("two")
    ref = publish("multi")
    sign.sign(registry, ref, first)
    sign.sign(registry, ref, second)
    layers = cosign.attached(registry, ref.repository, str(ref.digest), "sig")
    assert len(layers) == 2
    layer = layers[0]
    cosign.attach(registry, ref.repository, str(ref.digest), "sig", layer)
    assert len(cosign.attached(registry, ref.repository, str(ref.digest), "sig")) == 2
    assert verify.verify_signature(registry, ref, trust(second), TODAY).name == "release"


def test_unsigned_untrusted_and_empty_policy_are_refused(
    registry: Registry, publish: Callable[[str], Reference], make_signer: Callable[[str], Signer]
) -> None:
    signer, stranger = make_signer("release"), make_signer("stranger")
    ref = publish("unsigned")
    with pytest.raises(
        RefusedError, match=r"^refused: .* is unsigned \(no sha256-[0-9a-f]{64}\.sig\)$"
    ):
        verify.verify(registry, ref, trust(signer), TODAY)
    sign.sign(registry, ref, stranger)
    with pytest.raises(RefusedError, match="signed, but by no key the deploy policy trusts"):
        verify.verify(registry, ref, trust(signer), TODAY)
    with pytest.raises(RefusedError, match="trusts no key"):
        verify.verify(registry, ref, DeployPolicy(()), TODAY)
    with pytest.raises(ReleaseError, match="verification works on digests only"):
        verify.verify(registry, ref.with_tag("unsigned"), trust(signer), TODAY)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"expires": TODAY}, "key 'release' expired on 2026-11-30"),
        ({"revoked": dt.date(2026, 1, 1)}, "key 'release' was revoked on 2026-01-01"),
        ({"not_before": dt.date(2027, 1, 1)}, "key 'release' is not valid before 2027-01-01"),
    ],
)
def test_expired_revoked_or_future_keys_cannot_vouch(
    registry: Registry,
    publish: Callable[[str], Reference],
    make_signer: Callable[[str], Signer],
    window: dict[str, dt.date],
    message: str,
) -> None:
    signer = make_signer("release")
    ref = publish(f"window-{next(iter(window))}")
    release(registry, ref, signer)
    with pytest.raises(RefusedError, match=f"signed only by a key that cannot vouch: {message}"):
        verify.verify_signature(registry, ref, trust(signer, **window), TODAY)
    # attestations name the same reason
    with pytest.raises(RefusedError, match=f"cannot vouch: {message}"):
        verify.verify_attestations(registry, ref, trust(signer, **window), TODAY)
    valid = trust(signer, expires=dt.date(2027, 1, 1), not_before=dt.date(2026, 1, 1))
    assert verify.verify(registry, ref, valid, TODAY).signer.name == "release"


def test_revocation_reason_is_part_of_the_message(make_signer: Callable[[str], Signer]) -> None:
    key = PublicKey(make_signer("k").public_pem)
    revoked = TrustedKey("k", key, revoked=TODAY, reason="key material leaked")
    assert revoked.problem(TODAY) == "key 'k' was revoked on 2026-11-30: key material leaked"
    assert revoked.problem(TODAY - dt.timedelta(days=1)) is None
    assert TrustedKey("k", key, expires=TODAY + dt.timedelta(days=1)).problem(TODAY) is None


def test_a_signature_over_another_digest_is_refused(
    registry: Registry, publish: Callable[[str], Reference], make_signer: Callable[[str], Signer]
) -> None:
    signer = make_signer("release")
    signed, other = publish("signed"), publish("other")
    sign.sign(registry, signed, signer)
    moved = registry.manifest(signed.repository, cosign.tag_for(str(signed.digest), "sig"))
    registry.put_manifest(other.repository, cosign.tag_for(str(other.digest), "sig"), moved)
    with pytest.raises(
        RefusedError, match=f"the signature is over {signed.digest}, not {other.digest}"
    ):
        verify.verify_signature(registry, other, trust(signer), TODAY)


def _attach_payload(registry: Registry, ref: Reference, signer: Signer, body: bytes) -> None:
    layer = cosign.Layer(
        body, cosign.SIMPLE_SIGNING, {cosign.SIGNATURE_ANNOTATION: b64(signer.sign(body))}
    )
    cosign.attach(registry, ref.repository, str(ref.digest), "sig", layer)


def test_a_signature_naming_another_repository_or_type_is_refused(
    registry: Registry, publish: Callable[[str], Reference], make_signer: Callable[[str], Signer]
) -> None:
    signer = make_signer("release")
    ref = publish("renamed")
    _attach_payload(
        registry, ref, signer, cosign.payload(f"{ref.registry}/elsewhere", str(ref.digest))
    )
    with pytest.raises(RefusedError, match=f"names {ref.registry}/elsewhere, not {ref.name}"):
        verify.verify_signature(registry, ref, trust(signer), TODAY)
    relaxed = dataclasses.replace(trust(signer), match_repository=False)
    assert verify.verify_signature(registry, ref, relaxed, TODAY).name == "release"
    # a mirror (other host, same repository path) is the same identity
    mirror = publish("mirror")
    _attach_payload(
        registry,
        mirror,
        signer,
        cosign.payload(f"mirror.example.org/{mirror.repository}", str(mirror.digest)),
    )
    assert verify.verify_signature(registry, mirror, trust(signer), TODAY).name == "release"

    typed = publish("typed")
    body = cosign.payload(typed.name, str(typed.digest)).replace(
        cosign.SIGNATURE_TYPE.encode(), b"something else"
    )
    _attach_payload(registry, typed, signer, body)
    with pytest.raises(RefusedError, match="has type 'something else'"):
        verify.verify_signature(registry, typed, trust(signer), TODAY)


def test_garbage_annotations_and_foreign_layers_are_not_signatures(
    registry: Registry, publish: Callable[[str], Reference], make_signer: Callable[[str], Signer]
) -> None:
    signer = make_signer("release")
    ref = publish("garbage")
    body = cosign.payload(ref.name, str(ref.digest))
    for notes in ({cosign.SIGNATURE_ANNOTATION: "!!not base64"}, {}):
        cosign.attach(
            registry,
            ref.repository,
            str(ref.digest),
            "sig",
            cosign.Layer(body, cosign.SIMPLE_SIGNING, notes),
        )
    cosign.attach(
        registry,
        ref.repository,
        str(ref.digest),
        "sig",
        cosign.Layer(b"{}", "application/octet-stream", {}),
    )
    with pytest.raises(RefusedError, match=r"by no key the deploy policy trusts \(2 signature"):
        verify.verify_signature(registry, ref, trust(signer), TODAY)


def test_a_tag_that_is_not_a_cosign_manifest_is_refused(
    registry: Registry, publish: Callable[[str], Reference], make_signer: Callable[[str], Signer]
) -> None:
    ref = publish("fake-sig")
    image = registry.manifest(ref.repository, str(ref.digest))
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
        }
    ).encode()
    registry.put_manifest(
        ref.repository,
        cosign.tag_for(str(ref.digest), "sig"),
        Manifest(index, "application/vnd.oci.image.index.v1+json", sha256(index)),
    )
    with pytest.raises(ReleaseError, match="is not a cosign manifest"):
        verify.verify_signature(registry, ref, trust(make_signer("k")), TODAY)
    assert image.digest == ref.digest


def test_sign_refuses_tags_and_missing_images(
    registry: Registry, repo: str, make_signer: Callable[[str], Signer]
) -> None:
    signer = make_signer("release")
    with pytest.raises(ReleaseError, match="sign by digest, not by tag"):
        sign.sign(registry, parse(f"{registry.host}/{repo}:x"), signer)
    with pytest.raises(RegistryError, match="no manifest"):
        sign.sign(registry, parse(f"{registry.host}/{repo}@sha256:" + "9" * 64), signer)
    with pytest.raises(ReleaseError, match="attest needs a digest"):
        attest.attest(registry, parse(f"{registry.host}/{repo}:x"), signer, attest.SBOM, SBOM)


def _attach_envelope(registry: Registry, ref: Reference, data: bytes, predicate: str) -> None:
    layer = cosign.Layer(
        data, cosign.DSSE, {cosign.SIGNATURE_ANNOTATION: "", cosign.PREDICATE_ANNOTATION: predicate}
    )
    cosign.attach(registry, ref.repository, str(ref.digest), "att", layer)


def test_attestation_refusals(
    registry: Registry, publish: Callable[[str], Reference], make_signer: Callable[[str], Signer]
) -> None:
    signer, stranger = make_signer("release"), make_signer("stranger")
    policy = trust(signer)
    ref = publish("attest")
    sign.sign(registry, ref, signer)
    with pytest.raises(
        RefusedError,
        match=r"attestation missing: the image SBOM \(https://cyclonedx.org/bom\) "
        rf"for {ref.digest}",
    ):
        verify.verify(registry, ref, policy, TODAY)

    good = dsse.seal(
        dsse.INTOTO, attest.statement(ref.name, str(ref.digest), attest.SBOM, SBOM), signer.sign
    )
    _attach_envelope(registry, ref, good.encode()[:40], attest.SBOM)  # truncated
    with pytest.raises(
        RefusedError,
        match=r"attestation https://cyclonedx.org/bom: "
        r"DSSE envelope is not valid JSON \(truncated\?\)",
    ):
        verify.verify_attestations(registry, ref, policy, TODAY)

    other = publish("attest-other")
    elsewhere = dsse.seal(
        dsse.INTOTO,
        attest.statement(other.name, str(other.digest), attest.PROVENANCE, PROVENANCE),
        signer.sign,
    )
    _attach_envelope(registry, ref, elsewhere.encode(), attest.PROVENANCE)
    attest.attest(registry, ref, signer, attest.SBOM, SBOM)  # now a good SBOM too
    with pytest.raises(RefusedError, match=f"is about {other.digest}, not {ref.digest}"):
        verify.verify_attestations(registry, ref, policy, TODAY)

    strange = publish("attest-stranger")
    attest.attest(registry, strange, stranger, attest.SBOM, SBOM)
    with pytest.raises(
        RefusedError,
        match=r"attestation https://cyclonedx.org/bom "
        r"is not signed by a key the deploy policy trusts",
    ):
        verify.verify_attestations(registry, strange, policy, TODAY)

    typed = publish("attest-type")
    body = attest.statement(typed.name, str(typed.digest), attest.SBOM, SBOM)
    _attach_envelope(
        registry, typed, dsse.seal("application/json", body, signer.sign).encode(), attest.SBOM
    )
    with pytest.raises(RefusedError, match="payload type 'application/json' is not in-toto"):
        verify.verify_attestations(registry, typed, policy, TODAY)

    broken = publish("attest-broken")
    _attach_envelope(
        registry,
        broken,
        dsse.seal(dsse.INTOTO, b'{"_type": "x"}', signer.sign).encode(),
        attest.SBOM,
    )
    with pytest.raises(RefusedError, match="unknown statement type 'x'"):
        verify.verify_attestations(registry, broken, policy, TODAY)


def test_trusted_builders_and_optional_requirements(
    registry: Registry, publish: Callable[[str], Reference], make_signer: Callable[[str], Signer]
) -> None:
    signer = make_signer("release")
    ref = publish("builder")
    release(registry, ref, signer)
    cosign.attach(
        registry, ref.repository, str(ref.digest), "att", cosign.Layer(b"x", "text/plain", {})
    )  # not an attestation: ignored
    strict = dataclasses.replace(trust(signer), builders=("urn:builder:other",))
    with pytest.raises(RefusedError, match="builder 'urn:builder:ci' is not a trusted builder"):
        verify.verify_attestations(registry, ref, strict, TODAY)
    ok = dataclasses.replace(trust(signer), builders=("urn:builder:ci",))
    assert attest.PROVENANCE in verify.verify_attestations(registry, ref, ok, TODAY)
    custom = dataclasses.replace(trust(signer), require=("https://example.org/test-result/v1",))
    with pytest.raises(
        RefusedError,
        match=r"attestation missing: attestation \(https://example.org/test-result/v1\)",
    ):
        verify.verify_attestations(registry, ref, custom, TODAY)
    none = dataclasses.replace(trust(signer), require=())
    with pytest.raises(RefusedError, match="attestation missing: the image SBOM"):
        verify.sbom_of(verify.Verified(ref, none.keys[0], {}, transfer.fetch(registry, ref)))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "not an in-toto statement"),
        (
            json.dumps(
                {
                    "_type": attest.STATEMENT,
                    "subject": [],
                    "predicateType": "p",
                    "predicate": "text",
                }
            ).encode(),
            "predicate is not a JSON object",
        ),
    ],
)
def test_malformed_statements(body: bytes, message: str) -> None:
    with pytest.raises(ReleaseError, match=message):
        attest.parse_statement(body, "attestation")


def test_statement_v01_from_older_cosign_is_read() -> None:
    body = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "subject": [{"name": "x", "digest": {"sha256": "ab"}}],
            "predicateType": "p",
        }
    ).encode()
    statement = attest.parse_statement(body, "a")
    assert statement.covers("sha256:ab") and not statement.covers("sha256:cd")
    assert statement.predicate == {}
