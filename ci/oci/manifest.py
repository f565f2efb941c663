"""A manifest as exact bytes: its identity is the digest of those bytes, never of a
re-serialisation, so it travels between layouts and registries unchanged."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ci.oci.errors import OCIError
from ci.oci.mediatypes import INDEX_TYPES


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as stored: its bytes, media type and digest."""

    data: bytes = field(repr=False)
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        """The parsed document (the digest stays that of ``data``)."""
        try:
            doc = json.loads(self.data)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise OCIError(f"manifest {self.digest} is not a JSON object")
        return doc


def children(manifest: Manifest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(blob descriptors, child manifest descriptors) that ``manifest`` references."""
    doc = manifest.json()
    if manifest.media_type in INDEX_TYPES:
        return [], [d for d in doc.get("manifests") or [] if isinstance(d, dict)]
    blobs = [doc.get("config"), *(doc.get("layers") or [])]
    return [b for b in blobs if isinstance(b, dict)], []
