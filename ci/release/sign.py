"""Sign an image digest the way ``cosign sign --key`` does: a simple signing payload,
signed inside the key's backend, attached under ``sha256-HEX.sig``."""

from __future__ import annotations

from collections.abc import Mapping

from ci.release import cosign
from ci.release.errors import ReleaseError
from ci.release.keys import Signer, b64
from ci.release.reference import Reference
from ci.release.registry import Registry


def sign(
    registry: Registry,
    ref: Reference,
    signer: Signer,
    annotations: Mapping[str, str] | None = None,
) -> str:
    """Sign ``ref`` (which must carry a digest that the registry holds); returns the
    digest of the ``.sig`` manifest."""
    if ref.digest is None:
        raise ReleaseError(f"sign by digest, not by tag: {ref} (resolve it first)")
    registry.manifest(ref.repository, ref.digest)  # refuse to sign what is not there
    body = cosign.payload(ref.name, ref.digest, annotations)
    layer = cosign.Layer(
        body, cosign.SIMPLE_SIGNING, {cosign.SIGNATURE_ANNOTATION: b64(signer.sign(body))}
    )
    return cosign.attach(registry, ref.repository, ref.digest, "sig", layer)
