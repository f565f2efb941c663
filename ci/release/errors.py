"""The release toolkit's errors: one line a user can act on, never a traceback."""

from __future__ import annotations

from ci.errors import GateError


class ReleaseError(GateError):
    """Bad input or a failed release step (push, sign, pull); exit code 1."""


class RegistryError(ReleaseError):
    """The registry refused a request or could not be reached (after retries)."""


class RefusedError(ReleaseError):
    """Deploy refused the image: unsigned, untrusted, mismatched, unattested or unscanned.

    Exit code 3 tells a refusal (the image is not acceptable) from a broken step (1).
    """

    exit_code = 3
