"""Image references: an explicit registry host, a tag only as a name, a digest as identity."""

from __future__ import annotations

import pytest

from ci.release.errors import ReleaseError
from ci.release.reference import Reference, check_tag, parse

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:5000/bot4/engine:0.1.0", Reference("localhost:5000", "bot4/engine", "0.1.0")),
        (
            f"registry.example.org/bot4@{DIGEST}",
            Reference("registry.example.org", "bot4", None, DIGEST),
        ),
        (f"localhost/a/b:t@{DIGEST}", Reference("localhost", "a/b", "t", DIGEST)),
        ("[::1]:5000/x", Reference("[::1]:5000", "x")),
        ("127.0.0.1:5000/x-y_z.w", Reference("127.0.0.1:5000", "x-y_z.w")),
    ],
)
def test_parse_round_trips(text: str, expected: Reference) -> None:
    ref = parse(text)
    assert ref == expected
    assert str(ref) == text
    assert ref.name == f"{expected.registry}/{expected.repository}"


@pytest.mark.parametrize(
    "text",
    [
        "bot4/engine:1",  # no registry host: never guessed
        "engine",
        "localhost:5000/",
        "localhost:5000/Upper",
        "localhost:5000/a//b",
        "localhost:5000/a:bad tag",
        "localhost:5000/a@sha256:short",
        "local host/a",
    ],
)
def test_parse_refuses_malformed_references(text: str) -> None:
    with pytest.raises(ReleaseError, match=r"invalid|not a sha256"):
        parse(text)


def test_with_digest_drops_the_tag_and_with_tag_drops_the_digest() -> None:
    ref = parse("localhost:5000/a:t")
    pinned = ref.with_digest(DIGEST)
    assert pinned.tag is None
    assert str(pinned) == f"localhost:5000/a@{DIGEST}"
    assert str(pinned.with_tag("u")) == "localhost:5000/a:u"
    with pytest.raises(ReleaseError):
        ref.with_digest("sha256:XYZ")


def test_checks() -> None:
    assert check_tag("sha256-" + "a" * 64 + ".sig")
    with pytest.raises(ReleaseError, match="invalid tag"):
        check_tag(".hidden")
    with pytest.raises(ReleaseError, match="not a sha256 digest"):
        parse("localhost:5000/a@sha512:" + "a" * 128)
