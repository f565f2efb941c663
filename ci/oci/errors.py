"""The OCI core's error: one line a user can act on (a malformed digest, a corrupt or
incomplete layout), exit code 1 like every ``GateError``."""

from __future__ import annotations

from ci.errors import GateError


class OCIError(GateError):
    """Bad OCI input: a digest, a layout or a blob that is not what it claims."""
