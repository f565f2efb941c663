"""The engine's error type: every failure a user can act on is a ``Bot4Error``.

The CLI turns these into one line on stderr and a non-zero exit code, so the
message must say what was wrong and what to do about it.
"""

from __future__ import annotations


class Bot4Error(Exception):
    """An error with a message meant for the operator, not a traceback."""

    exit_code: int = 2
