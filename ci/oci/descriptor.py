"""Descriptors: what a manifest or an index says about the content it points at."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ci.oci.digest import sha256

REF_NAME = "org.opencontainers.image.ref.name"
"""The annotation that gives a manifest in an index its tag (``oci:DIR:TAG``)."""


def descriptor(
    media_type: str, data: bytes, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The descriptor of ``data``: media type, digest, size (and annotations, if any)."""
    out: dict[str, Any] = {"mediaType": media_type, "digest": sha256(data), "size": len(data)}
    if annotations:
        out["annotations"] = dict(annotations)
    return out
