"""Content addresses: ``sha256:<hex>`` digests, and canonical JSON so that a document's
digest depends only on its content (sorted keys, compact separators, UTF-8)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ci.oci.errors import OCIError

PATTERN = re.compile(r"sha256:[0-9a-f]{64}")


def sha256(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``: the OCI digest form."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """``digest`` when it is ``sha256:`` and 64 lowercase hex digits, else ``OCIError``
    (checked before a digest becomes part of a path or a URL)."""
    if not PATTERN.fullmatch(digest):  # not match + "$": "$" accepts a trailing newline
        raise OCIError(f"not a sha256 digest: {digest!r} (expected sha256:<64 hex digits>)")
    return digest


def canonical(doc: Any) -> bytes:  # noqa: ANN401 - any JSON value
    """Canonical JSON bytes: sorted keys, compact separators, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
