"""Moving images between an OCI image layout (``ci.oci.layout``) and a registry.

``push`` sends every blob, then every child manifest, then the top manifest under its
tag: the registry holds the same bytes, hence the same digest. ``pull`` fetches by
digest only, re-hashes everything and writes a fresh layout whole or not at all
(``ci.oci.layout.create``), so a failed pull leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ci.image import output
from ci.oci import layout as oci_layout
from ci.oci.descriptor import REF_NAME
from ci.oci.index import index
from ci.oci.layout import Layout
from ci.oci.manifest import Manifest, children
from ci.release.errors import ReleaseError, TamperedError
from ci.release.reference import Reference
from ci.release.registry import Registry


def _walk(layout: Layout, manifest: Manifest) -> Iterator[tuple[str, Manifest | bytes]]:
    blobs, subs = children(manifest)
    for desc in blobs:
        yield str(desc["digest"]), layout.blob(str(desc["digest"]))
    for desc in subs:
        child = Manifest(
            layout.blob(str(desc["digest"])), str(desc["mediaType"]), str(desc["digest"])
        )
        yield from _walk(layout, child)
        yield child.digest, child


def push(registry: Registry, layout: Layout, ref: Reference, tag: str | None = None) -> str:
    """Push the layout's manifest (``tag`` in the layout, else its only one) to ``ref``'s
    repository under ``ref.tag`` (or by digest); returns the digest, unchanged."""
    top = layout.select(tag)
    for digest, item in _walk(layout, top):
        if isinstance(item, Manifest):
            registry.put_manifest(ref.repository, digest, item)
        else:
            registry.push_blob(ref.repository, item)
    if ref.digest is not None and ref.digest != top.digest:
        raise ReleaseError(f"{ref} names {ref.digest}, but the layout holds {top.digest}")
    return registry.put_manifest(ref.repository, ref.tag or top.digest, top)


def _fetch(
    registry: Registry, repo: str, manifest: Manifest, blobs: dict[str, bytes]
) -> list[Manifest]:
    found: list[Manifest] = []
    blob_descs, subs = children(manifest)
    for desc in blob_descs:
        digest = str(desc["digest"])
        if digest not in blobs:
            data = registry.blob(repo, digest)
            if "size" in desc and len(data) != int(desc["size"]):
                raise TamperedError(
                    f"refused: blob {digest}: {len(data)} bytes, the manifest says {desc['size']}"
                )
            blobs[digest] = data
    for desc in subs:
        child = registry.manifest(repo, str(desc["digest"]))
        found += [*_fetch(registry, repo, child, blobs), child]
    return found


@dataclass(frozen=True)
class Fetched:
    """An image fetched by digest: its top manifest and every blob and child manifest,
    each already checked against its digest (and size) by the registry client."""

    top: Manifest
    blobs: dict[str, bytes]

    @property
    def size(self) -> int:
        """Bytes fetched, manifests included."""
        return sum(len(b) for b in self.blobs.values())


def fetch(registry: Registry, ref: Reference) -> Fetched:
    """Fetch ``ref`` (which must carry a digest) entirely into memory, hash-checked."""
    if ref.digest is None:
        raise ReleaseError(f"pull needs a digest, not a tag: {ref}")
    top = registry.manifest(ref.repository, ref.digest)
    blobs: dict[str, bytes] = {}
    for child in _fetch(registry, ref.repository, top, blobs):
        blobs[child.digest] = child.data
    blobs[top.digest] = top.data
    return Fetched(top, blobs)


def pull(registry: Registry, ref: Reference, dest: Path, tag: str = "latest") -> Manifest:
    """Fetch ``ref`` (which must carry a digest) into a new layout at ``dest``."""
    image = fetch(registry, ref)
    write(dest, image.top, image.blobs, tag)
    return image.top


def write(dest: Path, top: Manifest, blobs: dict[str, bytes], tag: str) -> None:
    """Write a new layout at ``dest`` holding ``top`` (tagged ``tag``) and ``blobs``,
    whole or not at all."""
    desc = {
        "mediaType": top.media_type,
        "digest": top.digest,
        "size": len(top.data),
        "annotations": {REF_NAME: tag},
    }
    output.sweep(dest.parent)  # what a killed pull left beside it
    oci_layout.create(
        dest,
        oci_layout.files(blobs, index([desc])),
        scratch=lambda parent: output.scratch(parent, "pull"),
    )
