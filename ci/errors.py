"""The toolkit's error type: a failed gate or bad input, with a message a user can act on."""

from __future__ import annotations


class GateError(Exception):
    """Raised for bad input or a failed check; the CLI prints it as one line and exits 1."""

    exit_code: int = 1
