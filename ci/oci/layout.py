"""The OCI image-layout directory (``oci-layout``, ``index.json``, ``blobs/sha256/``):
the one reader and the one writer, for the images ``ci.image`` builds and the ones
``ci.release`` pulls.

Reading re-hashes every blob against its digest. Writing puts the blobs first and
``index.json`` last (a reader never sees an index naming a missing blob), fsyncs each
file and gives every file 0644 and directory 0755 whatever the umask, so the same image
gives the same tree on any machine.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.oci.descriptor import REF_NAME
from ci.oci.digest import canonical, check_digest, sha256
from ci.oci.errors import OCIError
from ci.oci.manifest import Manifest
from ci.oci.mediatypes import MANIFEST, MANIFEST_TYPES

INDEX_FILE = "index.json"
LAYOUT_FILE = "oci-layout"
VERSION = {"imageLayoutVersion": "1.0.0"}


def blob_path(digest: str) -> str:
    """Where a blob lives inside a layout."""
    return "blobs/sha256/" + check_digest(digest).removeprefix("sha256:")


@dataclass(frozen=True)
class Layout:
    """An OCI image layout directory, read with every blob checked against its digest."""

    path: Path

    def blob(self, digest: str) -> bytes:
        """A blob's bytes, checked against its digest."""
        path = self.path / blob_path(digest)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise OCIError(f"{self.path}: blob {digest} missing ({exc.strerror})") from None
        if sha256(data) != digest:
            raise OCIError(f"{self.path}: blob {digest} is corrupted (hashes to {sha256(data)})")
        return data

    def index(self) -> list[dict[str, Any]]:
        """The descriptors in ``index.json``."""
        try:
            doc = json.loads((self.path / INDEX_FILE).read_text(encoding="utf-8"))
            manifests = doc["manifests"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OCIError(f"{self.path}: not an OCI image layout ({exc})") from None
        if not isinstance(manifests, list) or not manifests:
            raise OCIError(f"{self.path}: index.json lists no manifests")
        if not all(isinstance(d, dict) and isinstance(d.get("digest"), str) for d in manifests):
            raise OCIError(f"{self.path}: index.json has a descriptor without a digest")
        return manifests

    def tag(self) -> str | None:
        """The tag (``org.opencontainers.image.ref.name``) of the first manifest, if any."""
        found = (self.index()[0].get("annotations") or {}).get(REF_NAME)
        return str(found) if found is not None else None

    def select(self, tag: str | None = None) -> Manifest:
        """The manifest tagged ``tag`` (``org.opencontainers.image.ref.name``), or the only one."""
        descriptors = self.index()
        if tag is not None:
            chosen = [d for d in descriptors if (d.get("annotations") or {}).get(REF_NAME) == tag]
            if not chosen:
                raise OCIError(f"{self.path}: no manifest tagged {tag!r}")
        elif len(descriptors) > 1:
            raise OCIError(f"{self.path}: {len(descriptors)} manifests; name one with a tag")
        else:
            chosen = descriptors
        desc = chosen[0]
        media = str(desc.get("mediaType", MANIFEST))
        if media not in MANIFEST_TYPES:
            raise OCIError(f"{self.path}: unsupported manifest media type {media!r}")
        return Manifest(self.blob(str(desc["digest"])), media, str(desc["digest"]))


def files(
    blobs: Mapping[str, bytes], index: bytes, extra: Mapping[str, bytes] | None = None
) -> dict[str, bytes]:
    """Path → bytes of a layout holding ``blobs`` (by digest) and ``index`` (the bytes of
    ``index.json``); ``extra`` adds files beside them (docker's ``manifest.json``)."""
    out = {LAYOUT_FILE: canonical(VERSION)}
    out.update({blob_path(d): data for d, data in sorted(blobs.items())})
    out.update(extra or {})
    out[INDEX_FILE] = index
    return out


def write(dest: Path, content: Mapping[str, bytes]) -> None:
    """Write ``content`` (from ``files``) into the directory ``dest`` (created if need be):
    ``index.json`` last, each file fsynced, modes fixed. Not atomic by itself: callers
    build in a scratch directory and rename it into place (``create``, ``ci.image.output``)."""
    for rel in sorted(content, key=lambda r: r == INDEX_FILE):
        path = dest / rel
        for parent in reversed(path.relative_to(dest).parents):
            directory = dest / parent
            if not directory.is_dir():
                directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o755)
        with path.open("wb") as handle:
            handle.write(content[rel])
            handle.flush()
            os.fsync(handle.fileno())
        path.chmod(0o644)


def create(
    dest: Path,
    content: Mapping[str, bytes],
    scratch: Callable[[Path], Path] | None = None,
) -> None:
    """Write a new layout at ``dest`` whole or not at all: built in a sibling temporary
    directory (``scratch(parent)``, default a plain one), then renamed into place; an
    existing ``dest`` is refused, never merged."""
    if dest.exists():
        raise OCIError(f"{dest} already exists; choose a new directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if scratch is not None:
        tmp = scratch(dest.parent)
    else:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        write(tmp, content)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
