"""Manifests as exact bytes, descriptors and indexes."""

from __future__ import annotations

import json

import pytest

from ci.oci import mediatypes
from ci.oci.descriptor import REF_NAME, descriptor
from ci.oci.digest import canonical, sha256
from ci.oci.errors import OCIError
from ci.oci.index import index
from ci.oci.manifest import Manifest, children


def test_descriptor_and_index() -> None:
    assert descriptor(mediatypes.CONFIG, b"{}") == {
        "mediaType": mediatypes.CONFIG,
        "digest": sha256(b"{}"),
        "size": 2,
    }
    tagged = descriptor(mediatypes.MANIFEST, b"m", {REF_NAME: "1"})
    doc = json.loads(index([tagged]))
    assert doc == {"schemaVersion": 2, "mediaType": mediatypes.INDEX, "manifests": [tagged]}
    assert index([tagged]) == canonical(doc)


def test_children_of_a_manifest_and_of_an_index() -> None:
    config, layer = descriptor(mediatypes.CONFIG, b"c"), descriptor(mediatypes.LAYER, b"l")
    data = canonical({"schemaVersion": 2, "config": config, "layers": [layer]})
    assert children(Manifest(data, mediatypes.MANIFEST, sha256(data))) == ([config, layer], [])
    child = descriptor(mediatypes.MANIFEST, data)
    top = index([child, "junk"])  # type: ignore[list-item]
    assert children(Manifest(top, mediatypes.INDEX, sha256(top))) == ([], [child])


@pytest.mark.parametrize("data", [b"[]", b"not json", b'"x"'])
def test_a_manifest_that_is_not_an_object_is_refused(data: bytes) -> None:
    with pytest.raises(OCIError, match="is not a JSON object"):
        Manifest(data, mediatypes.MANIFEST, sha256(data)).json()
