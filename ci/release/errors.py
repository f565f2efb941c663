"""The release toolkit's errors: one line a user can act on, never a traceback.

One exit-code table for every ``python -m ci.release`` command:

==== ========================================================================
0    success
1    a failed step or bad input file (registry unreachable, push failed, …)
2    usage: the command line itself is wrong (argparse, a malformed reference
     or option value, a tag where a digest is needed, a missing directory)
3    refused: the image is not acceptable (unsigned, untrusted, tampered,
     unattested, failing the scan); nothing ran
==== ========================================================================
"""

from __future__ import annotations

from ci.errors import GateError

OK, ERROR, USAGE, REFUSED = 0, 1, 2, 3


class ReleaseError(GateError):
    """Bad input or a failed release step (push, sign, pull); exit code 1."""

    exit_code = ERROR


class UsageError(ReleaseError):
    """The command line is wrong (the same exit code as argparse's own errors)."""

    exit_code = USAGE


class RegistryError(ReleaseError):
    """The registry refused a request or could not be reached (after retries)."""


class RefusedError(ReleaseError):
    """Deploy refused the image: unsigned, untrusted, mismatched, unattested or unscanned.

    Exit code 3 tells a refusal (the image is not acceptable) from a broken step (1).
    """

    exit_code = REFUSED


class TamperedError(RegistryError, RefusedError):
    """The registry served bytes that do not hash to the digest asked for (exit code 3)."""

    exit_code = REFUSED
