"""Image index documents (a layout's ``index.json``, a multi-platform image)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ci.oci.digest import canonical
from ci.oci.mediatypes import INDEX


def index(manifests: Sequence[Mapping[str, Any]]) -> bytes:
    """The canonical bytes of an image index listing ``manifests`` (descriptors)."""
    return canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": list(manifests)})
