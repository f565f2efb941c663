"""The image's own documents (config, manifest, index) and its two on-disk forms: an
OCI image-layout directory and one tar that both ``docker load`` and ``skopeo``/``podman``
(``oci-archive:``) read. Digests, descriptors and the layout itself come from ``ci.oci``,
shared with ``ci.release``; every document is canonical JSON, so its digest depends only
on its content.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.image.tarball import Entry, write_tar
from ci.oci import layout
from ci.oci.descriptor import REF_NAME, descriptor
from ci.oci.digest import canonical, sha256
from ci.oci.index import index as index_document
from ci.oci.mediatypes import CONFIG, LAYER, MANIFEST


def timestamp(epoch: int) -> str:
    """RFC 3339 UTC time of an epoch, e.g. ``2026-11-30T02:44:00Z``."""
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        return descriptor(LAYER, self.blob)


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
        "config": descriptor(CONFIG, config_blob),
        "layers": [layer.descriptor() for layer in layers],
        "annotations": dict(annotations),
    }
    return canonical(doc)


def index(manifest_blob: bytes, tag: str, annotations: Mapping[str, str]) -> bytes:
    """The layout's index.json pointing at the manifest under ``tag``."""
    return index_document([descriptor(MANIFEST, manifest_blob, {**annotations, REF_NAME: tag})])


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


def layout_files(image: Image) -> dict[str, bytes]:
    """The files of the image's OCI layout, plus docker's ``manifest.json``."""
    return layout.files(image.blobs(), image.index, {"manifest.json": image.docker_manifest()})


def write_layout(image: Image, dest: Path) -> None:
    """Write the OCI layout directory (``oci:DIR:TAG`` for skopeo) into a new ``dest``
    (``ci.oci.layout.write``: index last, modes fixed). Callers build it in a temporary
    directory and rename it into place (``ci.image.output``)."""
    layout.write(dest, layout_files(image))


def archive(image: Image, epoch: int) -> bytes:
    """One tar holding the layout and docker's manifest: loads with ``docker load`` and
    reads as ``oci-archive:``."""
    entries = [Entry(path, "file", 0o644, data) for path, data in layout_files(image).items()]
    return write_tar(entries, epoch)
