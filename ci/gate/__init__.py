"""The gate's own checks, starting with what must run before anything is installed.

Imports nothing: ``preinstall`` and ``venvcheck`` run on the runner's bare interpreter,
before any environment built from the locks exists.
"""

from __future__ import annotations

__all__: list[str] = []
