"""OCI image-spec 1.1 documents and the two on-disk forms: an image-layout directory and
one tar that both ``docker load`` and ``skopeo``/``podman`` (``oci-archive:``) read.

Every JSON document is serialised canonically (sorted keys, no spaces), so its digest
depends only on its content.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.image.tarball import Entry, sha256, write_tar

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def canonical(doc: Mapping[str, Any] | Sequence[Any]) -> bytes:
    """Canonical JSON bytes: sorted keys, compact separators, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def timestamp(epoch: int) -> str:
    """RFC 3339 UTC time of an epoch, e.g. ``2026-11-30T02:44:00Z``."""
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Layer:
    """One compressed layer and what the config and manifest say about it."""

    name: str
    blob: bytes
    diff_id: str
    comment: str

    @property
    def digest(self) -> str:
        """The digest of the compressed blob (what the manifest lists)."""
        return sha256(self.blob)

    def descriptor(self) -> dict[str, Any]:
        """The manifest's layer descriptor."""
        return {"mediaType": LAYER, "digest": self.digest, "size": len(self.blob)}


@dataclass(frozen=True)
class RunConfig:
    """The runtime part of the image config."""

    user: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    workdir: str
    labels: Mapping[str, str]


def config(
    layers: Sequence[Layer], run: RunConfig, epoch: int, architecture: str = "amd64"
) -> bytes:
    """The image config: platform, run settings, fixed history, rootfs diff_ids."""
    created = timestamp(epoch)
    doc = {
        "architecture": architecture,
        "os": "linux",
        "created": created,
        "config": {
            "User": run.user,
            "Entrypoint": list(run.entrypoint),
            "Cmd": list(run.cmd),
            "Env": list(run.env),
            "WorkingDir": run.workdir,
            "Labels": dict(run.labels),
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": created, "created_by": f"ci.image: {layer.name}", "comment": layer.comment}
            for layer in layers
        ],
    }
    return canonical(doc)


def manifest(config_blob: bytes, layers: Sequence[Layer], annotations: Mapping[str, str]) -> bytes:
    """The image manifest with its annotations."""
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": sha256(config_blob), "size": len(config_blob)},
        "layers": [layer.descriptor() for layer in layers],
        "annotations": dict(annotations),
    }
    return canonical(doc)


def index(manifest_blob: bytes, tag: str, annotations: Mapping[str, str]) -> bytes:
    """The layout's index.json pointing at the manifest under ``tag``."""
    descriptor = {
        "mediaType": MANIFEST,
        "digest": sha256(manifest_blob),
        "size": len(manifest_blob),
        "annotations": {**annotations, REF_NAME: tag},
    }
    return canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": [descriptor]})


@dataclass(frozen=True)
class Image:
    """Everything that makes up one image, in memory."""

    layers: tuple[Layer, ...]
    config: bytes
    manifest: bytes
    index: bytes
    tag: str
    repository: str

    @property
    def digest(self) -> str:
        """The manifest digest: the image's identity."""
        return sha256(self.manifest)

    def blobs(self) -> dict[str, bytes]:
        """Every content-addressed blob by digest."""
        out = {sha256(self.config): self.config, sha256(self.manifest): self.manifest}
        out.update({layer.digest: layer.blob for layer in self.layers})
        return out

    def docker_manifest(self) -> bytes:
        """``manifest.json`` of the docker-archive format, pointing into ``blobs/``."""
        doc = [
            {
                "Config": f"blobs/sha256/{sha256(self.config)[7:]}",
                "RepoTags": [f"{self.repository}:{self.tag}"],
                "Layers": [f"blobs/sha256/{layer.digest[7:]}" for layer in self.layers],
            }
        ]
        return canonical(doc)


def layout_entries(image: Image) -> list[Entry]:
    """The files of an OCI image layout, plus docker's ``manifest.json``."""
    entries = [
        Entry("oci-layout", "file", 0o644, canonical({"imageLayoutVersion": "1.0.0"})),
        Entry("index.json", "file", 0o644, image.index),
        Entry("manifest.json", "file", 0o644, image.docker_manifest()),
    ]
    entries += [Entry(f"blobs/sha256/{d[7:]}", "file", 0o644, b) for d, b in image.blobs().items()]
    return entries


def write_layout(image: Image, dest: Path) -> None:
    """Write the OCI layout directory (``oci:DIR:TAG`` for skopeo) into a new ``dest``:
    blobs first, ``index.json`` last (a reader never sees an index naming a missing blob),
    every file 0644 and directory 0755 whatever the umask. Callers build it in a
    temporary directory and rename it into place (``ci.image.output``)."""
    entries = sorted(layout_entries(image), key=lambda e: e.path == "index.json")
    for entry in entries:
        path = dest / entry.path
        for parent in reversed(path.relative_to(dest).parents):
            directory = dest / parent
            if not directory.is_dir():
                directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o755)
        with path.open("wb") as handle:
            handle.write(entry.data)
            handle.flush()
            os.fsync(handle.fileno())
        path.chmod(0o644)


def archive(image: Image, epoch: int) -> bytes:
    """One tar holding the layout and docker's manifest: loads with ``docker load`` and
    reads as ``oci-archive:``."""
    return write_tar(layout_entries(image), epoch)
