"""Digests and canonical JSON: the one definition both the image and the release use."""

from __future__ import annotations

import hashlib

import pytest

from ci.oci.digest import canonical, check_digest, sha256
from ci.oci.errors import OCIError


def test_sha256_is_the_oci_form() -> None:
    assert sha256(b"") == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert check_digest(sha256(b"x")) == sha256(b"x")


@pytest.mark.parametrize(
    "hostile",
    [
        "sha512:" + "a" * 128,
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:../../../etc/passwd",
        "sha256:" + "a" * 64 + "\n",
        "",
    ],
)
def test_a_malformed_digest_is_refused(hostile: str) -> None:
    with pytest.raises(OCIError, match="not a sha256 digest"):
        check_digest(hostile)


def test_canonical_json_is_key_sorted_compact_utf8() -> None:
    assert canonical({"b": 1, "a": ["é", {"d": 2, "c": 3}]}) == (
        '{"a":["é",{"c":3,"d":2}],"b":1}'.encode()
    )
    assert canonical({"a": 1, "b": 2}) == canonical({"b": 2, "a": 1})
