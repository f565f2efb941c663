"""The image toolkit's errors: a message the user can act on, and a distinct exit code
for the one failure CI recovers from by itself (a pin superseded upstream)."""

from __future__ import annotations

from ci.errors import GateError


class ImageError(GateError):
    """Bad input or a failed image step; the CLI prints it as one line and exits 1."""


class SupersededError(ImageError):
    """A locked .deb is gone from the archive because a newer version replaced it.

    Exit code 3 lets the ``image`` session tell this apart from a real failure: CI
    refreshes the lock in its clone, reports it, and builds with the refreshed pins.
    """

    exit_code = 3

    def __init__(self, message: str, names: tuple[str, ...]) -> None:
        super().__init__(message)
        self.names = names
