"""cosign's storage format, byte for byte, so ``cosign verify --key`` and Kubernetes
policy controllers accept what we write (and we accept what cosign writes).

- The *simple signing* payload: ``{"critical":{"identity":{"docker-reference":NAME},
  "image":{"docker-manifest-digest":DIGEST},"type":"cosign container image signature"},
  "optional":ANNOTATIONS|null}``, serialised as Go's ``encoding/json`` does.
- Signatures of image ``sha256:HEX`` live in the same repository under the tag
  ``sha256-HEX.sig``: an OCI manifest whose layers are payloads (media type
  ``application/vnd.dev.cosign.simplesigning.v1+json``), each carrying the base64 DER
  ECDSA signature of its bytes in the annotation ``dev.cosignproject.cosign/signature``.
- Attestations live under ``sha256-HEX.att``: layers of DSSE envelopes (media type
  ``application/vnd.dsse.envelope.v1+json``) annotated with their ``predicateType`` and an
  empty signature annotation (the signature is inside the envelope).
- The config blob is go-containerregistry's empty image config with one diff_id per
  layer, as cosign writes it. A new signature is appended to the existing manifest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ci.oci import mediatypes
from ci.oci.digest import check_digest, sha256
from ci.oci.manifest import Manifest
from ci.release.errors import ReleaseError
from ci.release.registry import Registry

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_ANNOTATION = "predicateType"
SIGNATURE_TYPE = "cosign container image signature"
_ZERO_TIME = "0001-01-01T00:00:00Z"
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_json(doc: Any) -> bytes:  # noqa: ANN401 - any JSON value
    """Compact JSON as Go's ``json.Marshal`` writes it: fields in the given order, maps
    sorted by key by the caller, ``<``, ``>``, ``&``, U+2028/9 escaped, UTF-8 otherwise."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.encode()


def payload(name: str, digest: str, annotations: Mapping[str, str] | None = None) -> bytes:
    """The simple signing payload cosign signs for image ``name@digest``."""
    doc = {
        "critical": {
            "identity": {"docker-reference": name},
            "image": {"docker-manifest-digest": check_digest(digest)},
            "type": SIGNATURE_TYPE,
        },
        "optional": dict(sorted(annotations.items())) if annotations else None,
    }
    return go_json(doc)


@dataclass(frozen=True)
class Claims:
    """What a simple signing payload says."""

    reference: str
    digest: str
    type: str
    optional: Mapping[str, Any] = field(default_factory=dict)


def parse_payload(data: bytes) -> Claims:
    """Read a simple signing payload; a malformed one is a ``ReleaseError``."""
    try:
        doc = json.loads(data)
        critical = doc["critical"]
        claims = Claims(
            str(critical["identity"]["docker-reference"]),
            str(critical["image"]["docker-manifest-digest"]),
            str(critical["type"]),
            doc.get("optional") or {},
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ReleaseError("signature payload is not a cosign simple signing document") from None
    return claims


def tag_for(digest: str, suffix: str) -> str:
    """``sha256-HEX.sig`` / ``.att``: where cosign keeps what belongs to ``digest``."""
    algorithm, _, hex_ = check_digest(digest).partition(":")
    return f"{algorithm}-{hex_}.{suffix}"


@dataclass(frozen=True)
class Layer:
    """One attached item: its bytes, media type and annotations."""

    data: bytes = field(repr=False)
    media_type: str
    annotations: Mapping[str, str]

    @property
    def digest(self) -> str:
        """The digest of the item's bytes (also its diff_id: cosign layers are uncompressed)."""
        return sha256(self.data)

    def descriptor(self) -> dict[str, Any]:
        """The manifest's layer descriptor, fields in go-containerregistry's order."""
        return {
            "mediaType": self.media_type,
            "size": len(self.data),
            "digest": self.digest,
            "annotations": dict(sorted(self.annotations.items())),
        }


def config_blob(layers: Sequence[Layer]) -> bytes:
    """go-containerregistry's empty image config after appending ``layers``."""
    doc = {
        "architecture": "",
        "created": _ZERO_TIME,
        "history": [{"created": _ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "config": {},
    }
    return go_json(doc)


def manifest(layers: Sequence[Layer]) -> tuple[Manifest, bytes]:
    """The attachment manifest for ``layers`` and its config blob."""
    config = config_blob(layers)
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatypes.MANIFEST,
        "config": {"mediaType": mediatypes.CONFIG, "size": len(config), "digest": sha256(config)},
        "layers": [layer.descriptor() for layer in layers],
    }
    data = go_json(doc)
    return Manifest(data, mediatypes.MANIFEST, sha256(data)), config


def attached(registry: Registry, repo: str, digest: str, suffix: str) -> list[Layer]:
    """Every item attached to ``digest`` under ``.suffix`` (empty if none), each blob
    fetched by digest and re-hashed."""
    found = registry.find_manifest(repo, tag_for(digest, suffix))
    if found is None:
        return []
    layers = []
    try:
        descriptors = list(found.json()["layers"])
        for desc in descriptors:
            data = registry.blob(repo, str(desc["digest"]))
            annotations = {str(k): str(v) for k, v in (desc.get("annotations") or {}).items()}
            layers.append(Layer(data, str(desc["mediaType"]), annotations))
    except (KeyError, TypeError, AttributeError):
        raise ReleaseError(f"{repo}:{tag_for(digest, suffix)} is not a cosign manifest") from None
    return layers


def attach(registry: Registry, repo: str, digest: str, suffix: str, layer: Layer) -> str:
    """Append ``layer`` to the ``.suffix`` manifest of ``digest`` (replacing an identical
    one), pushing blobs first and the manifest last; returns the new manifest digest."""
    layers = [
        old
        for old in attached(registry, repo, digest, suffix)
        if (old.digest, old.annotations) != (layer.digest, layer.annotations)
    ]
    layers.append(layer)
    new, config = manifest(layers)
    registry.push_blob(repo, config)
    for item in layers:
        registry.push_blob(repo, item.data)
    return registry.put_manifest(repo, tag_for(digest, suffix), new)
