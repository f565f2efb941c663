"""A release's exact inputs — every .deb and wheel ``image.lock`` pins — as one OCI
artifact beside the image, so the image can be rebuilt after Debian drops a superseded
version from its archive (``python -m ci.image reproduce --from REF@sha256:…``).

Each input is one layer whose digest is the sha256 the lock pins, so pulling the
artifact by digest fills the content-addressed download cache with exactly the locked
files (the registry client re-hashes every blob) and the build needs no archive or index.
"""

from __future__ import annotations

import json
from pathlib import Path

from ci.image.errors import ImageError
from ci.image.fetch import Cache, download_dir
from ci.image.lock_format import Lock
from ci.oci.digest import sha256
from ci.oci.manifest import Manifest
from ci.oci.mediatypes import MANIFEST as OCI_MANIFEST
from ci.release.errors import ReleaseError
from ci.release.reference import Reference
from ci.release.registry import Registry

ARTIFACT_TYPE = "application/vnd.bot4.image-inputs.v1"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
TITLE = "org.opencontainers.image.title"
DEB_TYPE = "application/vnd.debian.binary-package"
WHEEL_TYPE = "application/vnd.python.wheel"


def _files(lock: Lock) -> list[tuple[str, str, str]]:
    """(file name, sha256, media type) of every locked input, in lock order."""
    debs = [(Path(d.filename).name, d.sha256, DEB_TYPE) for d in lock.debs]
    return debs + [(w.filename, w.sha256, WHEEL_TYPE) for w in lock.wheels]


def push(registry: Registry, repo: str, tag: str, lock: Lock, cache: Cache) -> str:
    """Push every locked input from the cache (each re-verified) and the artifact
    manifest under ``tag``; returns the manifest digest."""
    layers = []
    for name, digest, media in _files(lock):
        try:  # read once and checked: a path checked first could be swapped before the read
            data = cache.read(digest, name)
        except ImageError as exc:
            raise ReleaseError(str(exc)) from None
        registry.push_blob(repo, data)
        layers.append(
            {"mediaType": media, "digest": f"sha256:{digest}", "size": len(data),
             "annotations": {TITLE: name}}
        )  # fmt: skip
    registry.push_blob(repo, EMPTY)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": sha256(EMPTY), "size": len(EMPTY)},
        "layers": layers,
    }
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return registry.put_manifest(repo, tag, Manifest(data, OCI_MANIFEST, sha256(data)))


def pull(registry: Registry, ref: Reference, cache: Cache) -> list[str]:
    """Fetch the artifact ``ref`` (pinned by digest) into ``cache``; the sha256 of each
    input, every blob checked against its digest by the registry client."""
    if ref.digest is None:
        raise ReleaseError(f"--from needs a digest (REF@sha256:…), not a tag: {ref}")
    doc = registry.manifest(ref.repository, ref.digest).json()
    if doc.get("artifactType") != ARTIFACT_TYPE:
        raise ReleaseError(f"{ref} is not a bot4 image-inputs artifact ({ARTIFACT_TYPE})")
    got = []
    with download_dir(cache) as tmp:
        for layer in doc.get("layers", []):
            digest = str(layer["digest"]).removeprefix("sha256:")
            if cache.get(digest) is None:
                part = tmp / digest
                part.write_bytes(registry.blob(ref.repository, f"sha256:{digest}"))
                cache.put(part, digest, str(layer.get("annotations", {}).get(TITLE, digest)))
            got.append(digest)
    return got
