"""Seeded random streams: one per component, derived from the scenario seed and a name.

Deriving by name keeps components independent (more flow on one instrument does not shift
another's latency draws) and ``random.Random`` seeded from a string hashes it with SHA-512,
which does not depend on ``PYTHONHASHSEED``: the same seed gives the same run everywhere.
This is simulation randomness, never used for anything secret.
"""

from __future__ import annotations

import random


def stream(seed: int, name: str) -> random.Random:
    """The random stream called ``name`` for a run with ``seed``."""
    return random.Random(f"bot4.simulator:{seed}:{name}")  # noqa: S311  # nosec B311
