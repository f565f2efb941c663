"""OCI image layouts on disk, and moving images between a layout and a registry.

``push`` sends every blob, then every child manifest, then the top manifest under its
tag: the registry holds the same bytes, hence the same digest. ``pull`` fetches by
digest only, re-hashes everything and writes a fresh layout to a temporary directory
that is renamed into place at the end, so a failed pull leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.image import output
from ci.release.errors import ReleaseError, TamperedError
from ci.release.reference import Reference, check_digest
from ci.release.registry import (
    DOCKER_LIST,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    Registry,
    sha256,
)

REF_NAME = "org.opencontainers.image.ref.name"
_INDEXES = (OCI_INDEX, DOCKER_LIST)


def canonical(doc: Any) -> bytes:  # noqa: ANN401 - any JSON value
    """Compact, key-sorted JSON bytes: the same document always hashes the same."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Layout:
    """An OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/``)."""

    path: Path

    def blob(self, digest: str) -> bytes:
        """A blob's bytes, checked against its digest."""
        path = self.path / "blobs" / "sha256" / check_digest(digest).removeprefix("sha256:")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ReleaseError(f"{self.path}: blob {digest} missing ({exc.strerror})") from None
        if sha256(data) != digest:
            raise ReleaseError(
                f"{self.path}: blob {digest} is corrupted (hashes to {sha256(data)})"
            )
        return data

    def index(self) -> list[dict[str, Any]]:
        """The descriptors in ``index.json``."""
        try:
            doc = json.loads((self.path / "index.json").read_text(encoding="utf-8"))
            manifests = doc["manifests"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReleaseError(f"{self.path}: not an OCI image layout ({exc})") from None
        if not isinstance(manifests, list) or not manifests:
            raise ReleaseError(f"{self.path}: index.json lists no manifests")
        return manifests

    def select(self, tag: str | None = None) -> Manifest:
        """The manifest tagged ``tag`` (``org.opencontainers.image.ref.name``), or the only one."""
        descriptors = self.index()
        if tag is not None:
            chosen = [d for d in descriptors if (d.get("annotations") or {}).get(REF_NAME) == tag]
            if not chosen:
                raise ReleaseError(f"{self.path}: no manifest tagged {tag!r}")
        elif len(descriptors) > 1:
            raise ReleaseError(f"{self.path}: {len(descriptors)} manifests; name one with a tag")
        else:
            chosen = descriptors
        desc = chosen[0]
        media = str(desc.get("mediaType", OCI_MANIFEST))
        if media not in MANIFEST_TYPES:
            raise ReleaseError(f"{self.path}: unsupported manifest media type {media!r}")
        return Manifest(self.blob(str(desc["digest"])), media, str(desc["digest"]))


def children(manifest: Manifest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(blob descriptors, child manifest descriptors) that ``manifest`` references."""
    doc = manifest.json()
    if manifest.media_type in _INDEXES:
        return [], list(doc.get("manifests") or [])
    blobs = [doc["config"], *(doc.get("layers") or [])]
    return [b for b in blobs if isinstance(b, dict)], []


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
    """Write a layout atomically: build it beside ``dest``, then rename it into place."""
    if dest.exists():
        raise ReleaseError(f"{dest} already exists; choose a new directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    output.sweep(dest.parent)  # what a killed pull left beside it
    tmp = output.scratch(dest.parent, "pull")
    try:
        (tmp / "blobs" / "sha256").mkdir(parents=True)
        for digest, data in sorted(blobs.items()):
            (tmp / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        (tmp / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
        desc = {
            "mediaType": top.media_type,
            "digest": top.digest,
            "size": len(top.data),
            "annotations": {REF_NAME: tag},
        }
        (tmp / "index.json").write_bytes(
            canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]})
        )
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
