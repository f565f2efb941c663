"""Verify an image by digest against the deploy policy: a cosign signature by a trusted,
unexpired, unrevoked key over exactly this digest; every required attestation signed
the same way and about this digest; the manifest and every blob fetched and hashed
(a registry serving other bytes for the digest is refused); then the gate's own image
scan (``ci.image.scan.scan_image``) over the attested SBOM and the fetched layers.

Every refusal is a ``RefusedError`` with one line saying what is wrong.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.errors import GateError
from ci.image import scan as image_scan
from ci.release import attest, cosign, dsse, transfer
from ci.release.errors import RefusedError, ReleaseError
from ci.release.keys import unb64
from ci.release.reference import Reference
from ci.release.registry import Registry
from ci.release.trust_policy import DeployPolicy, TrustedKey


@dataclass(frozen=True)
class Verified:
    """What made the image acceptable."""

    ref: Reference
    signer: TrustedKey
    statements: Mapping[str, attest.Statement]
    image: transfer.Fetched


def pinned(ref: Reference) -> str:
    """The digest ``ref`` pins; verification never works on a tag."""
    if ref.digest is None:
        raise ReleaseError(f"{ref} has no digest; verification works on digests only")
    return ref.digest


def _short(digest: str) -> str:
    return digest[:19] + "…"


def _split_keys(
    policy: DeployPolicy, today: dt.date
) -> tuple[list[TrustedKey], list[tuple[TrustedKey, str]]]:
    if not policy.keys:
        raise RefusedError(
            "refused: the deploy policy trusts no key; add one under [[deploy.keys]]"
        )
    usable = [k for k in policy.keys if k.problem(today) is None]
    unusable = [(k, p) for k in policy.keys if (p := k.problem(today)) is not None]
    return usable, unusable


def _repository(name: str) -> str:
    return name.partition("/")[2] if "/" in name else name


def check_claims(claims: cosign.Claims, ref: Reference, match_repository: bool) -> str | None:
    """Why a correctly signed payload still does not vouch for ``ref`` (None if it does)."""
    if claims.type != cosign.SIGNATURE_TYPE:
        return f"the signature payload has type {claims.type!r}, not {cosign.SIGNATURE_TYPE!r}"
    if claims.digest != ref.digest:
        return f"the signature is over {claims.digest}, not {ref.digest}"
    if match_repository and _repository(claims.reference) != ref.repository:
        return f"the signature names {claims.reference}, not {ref.name}"
    return None


def verify_signature(
    registry: Registry, ref: Reference, policy: DeployPolicy, today: dt.date
) -> TrustedKey:
    """The trusted key whose valid cosign signature vouches for ``ref``, or a refusal."""
    digest = pinned(ref)
    usable, unusable = _split_keys(policy, today)
    layers = [
        layer
        for layer in cosign.attached(registry, ref.repository, digest, "sig")
        if layer.media_type == cosign.SIMPLE_SIGNING
    ]
    if not layers:
        raise RefusedError(
            f"refused: {ref.name}@{digest} is unsigned (no {cosign.tag_for(digest, 'sig')})"
        )
    claim_problems: list[str] = []
    stale: list[str] = []
    for layer in layers:
        text = layer.annotations.get(cosign.SIGNATURE_ANNOTATION, "")
        try:
            signature = unb64(text, "signature annotation") if text else b""
        except ReleaseError:
            continue
        for key in usable:
            if key.key.verify(signature, layer.data):
                problem = check_claims(
                    cosign.parse_payload(layer.data), ref, policy.match_repository
                )
                if problem is None:
                    return key
                claim_problems.append(f"{problem} (signed by key {key.name!r})")
        stale += [p for key, p in unusable if key.key.verify(signature, layer.data)]
    if claim_problems:
        raise RefusedError(f"refused: {claim_problems[0]}")
    if stale:
        raise RefusedError(
            f"refused: {_short(digest)} is signed only by a key that cannot vouch: {stale[0]}"
        )
    raise RefusedError(
        f"refused: {_short(digest)} is signed, but by no key the deploy policy trusts "
        f"({len(layers)} signature(s))"
    )


def _check_statement(
    layer: cosign.Layer,
    ref: Reference,
    policy: DeployPolicy,
    usable: Sequence[TrustedKey],
    unusable: Sequence[tuple[TrustedKey, str]],
) -> attest.Statement:
    where = f"attestation {layer.annotations.get(cosign.PREDICATE_ANNOTATION, '?')}"
    envelope = dsse.parse(layer.data, where)
    if envelope.verified_by([k.key for k in usable]) is None:
        stale = [p for k, p in unusable if envelope.verified_by([k.key])]
        if stale:
            raise ReleaseError(f"{where} is signed only by a key that cannot vouch: {stale[0]}")
        raise ReleaseError(f"{where} is not signed by a key the deploy policy trusts")
    if envelope.payload_type != dsse.INTOTO:
        raise ReleaseError(f"{where}: payload type {envelope.payload_type!r} is not in-toto")
    statement = attest.parse_statement(envelope.payload, where)
    if not statement.covers(pinned(ref)):
        other = ", ".join(f"sha256:{h}" for _, h in statement.subjects) or "nothing"
        raise ReleaseError(f"{where} is about {other}, not {ref.digest}")
    if statement.predicate_type == attest.PROVENANCE and policy.builders:
        builder = str(
            ((statement.predicate.get("runDetails") or {}).get("builder") or {}).get("id", "")
        )
        if builder not in policy.builders:
            raise ReleaseError(f"{where}: builder {builder or '(none)'!r} is not a trusted builder")
    return statement


def verify_attestations(
    registry: Registry, ref: Reference, policy: DeployPolicy, today: dt.date
) -> dict[str, attest.Statement]:
    """Every required attestation, verified; a missing or bad one is a refusal."""
    digest = pinned(ref)
    usable, unusable = _split_keys(policy, today)
    good: dict[str, attest.Statement] = {}
    problems: dict[str, str] = {}
    for layer in cosign.attached(registry, ref.repository, digest, "att"):
        if layer.media_type != cosign.DSSE:
            continue
        declared = layer.annotations.get(cosign.PREDICATE_ANNOTATION, "")
        try:
            statement = _check_statement(layer, ref, policy, usable, unusable)
        except ReleaseError as exc:
            problems.setdefault(declared, str(exc))
            continue
        good.setdefault(statement.predicate_type, statement)
    for required in policy.require:
        if required in good:
            continue
        if required in problems:
            raise RefusedError(f"refused: {problems[required]}")
        name = attest.NAMES.get(required, "attestation")
        raise RefusedError(f"refused: attestation missing: {name} ({required}) for {digest}")
    return good


def verify(registry: Registry, ref: Reference, policy: DeployPolicy, today: dt.date) -> Verified:
    """Signature, then attestations, then the content: the manifest and every blob are
    fetched and must hash to their digests (``TamperedError``, a refusal, if not)."""
    signer = verify_signature(registry, ref, policy, today)
    statements = verify_attestations(registry, ref, policy, today)
    return Verified(ref, signer, statements, transfer.fetch(registry, ref))


# --- the scan of the attested SBOM: the gate's scan, called the same way ------------------


def scan(
    bom: Mapping[str, Any],
    image: Path,
    policy: DeployPolicy,
    root: Path,
    today: dt.date,
    environ: Mapping[str, str] | None = None,
    index: Sequence[str] = (),
) -> image_scan.Report:
    """``python -m ci.image scan`` over the attested SBOM and the pulled layout: the same
    function, databases, scan policy and pending-security-update check as the gate
    (the deploy policy may name other databases or scan policy; by default it does not).
    A failing finding, or a scan that cannot run, is a refusal."""
    try:
        report = image_scan.scan_image(
            root, image, bom, today, environ=os.environ if environ is None else environ,
            dbs=policy.advisory_db, policy_file=policy.scan_policy, index=index,
        )  # fmt: skip
    except GateError as exc:
        raise RefusedError(f"refused: scan failed: {exc}") from None
    if not report.passed:
        raise RefusedError(f"refused: scan failed: {report.summary().removeprefix('image scan: ')}")
    return report


def sbom_of(verified: Verified) -> dict[str, Any]:
    """The attested SBOM document."""
    statement = verified.statements.get(attest.SBOM)
    if statement is None:
        raise RefusedError(
            "refused: attestation missing: the image SBOM (https://cyclonedx.org/bom)"
        )
    return dict(statement.predicate)
