"""Image references: ``HOST[:PORT]/PATH[:TAG][@sha256:HEX]``.

A release always names its registry host: there is no implicit default registry, so a
reference can never silently point at another registry than the one intended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ci.oci.digest import check_digest
from ci.oci.errors import OCIError
from ci.release.errors import ReleaseError

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?$")


def _digest(digest: str) -> str:
    """A reference's digest, checked; malformed, it is a malformed reference."""
    try:
        return check_digest(digest)
    except OCIError as exc:
        raise ReleaseError(str(exc)) from None


@dataclass(frozen=True)
class Reference:
    """A parsed reference; ``digest`` pins the content, ``tag`` is only a name."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``HOST/PATH``: what cosign puts in ``docker-reference`` and in-toto subjects."""
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to ``digest`` (the tag is dropped)."""
        return Reference(self.registry, self.repository, None, _digest(digest))

    def with_tag(self, tag: str) -> Reference:
        """The same repository under ``tag``."""
        return Reference(self.registry, self.repository, check_tag(tag), None)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def check_tag(tag: str) -> str:
    """A valid tag (the distribution spec's grammar), or a ``ReleaseError``."""
    if not _TAG.match(tag):
        raise ReleaseError(f"invalid tag {tag!r}: use letters, digits, '_', '.', '-' (max 128)")
    return tag


def parse(text: str) -> Reference:
    """Parse ``HOST[:PORT]/PATH[:TAG][@sha256:HEX]``; anything else is a ``ReleaseError``."""
    rest, _, digest = text.partition("@")
    host, slash, path = rest.partition("/")
    if (
        not slash
        or not path
        or not _HOST.match(host)
        or not ("." in host or ":" in host or host == "localhost")
    ):
        raise ReleaseError(
            f"invalid image reference {text!r}: expected HOST[:PORT]/REPOSITORY[:TAG][@sha256:…] "
            "with an explicit registry host"
        )
    tag: str | None = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, _, tag = path.rpartition(":")
        check_tag(tag)
    if not all(_COMPONENT.match(part) for part in path.split("/")):
        raise ReleaseError(
            f"invalid repository {path!r} in {text!r}: lowercase letters, digits and "
            "separators ('.', '_', '-', '/') only"
        )
    return Reference(host, path, tag, _digest(digest) if digest else None)
