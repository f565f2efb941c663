"""Breaker states and the events breakers emit: values shared by breakers, the fuse and metrics."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal


class BreakerState(enum.Enum):
    """Where a breaker is; ``code`` is the value exported as ``circuit_breaker_state``."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def code(self) -> int:
        """0 closed, 1 open, 2 half-open (the gauge value the ops rules read)."""
        return _CODES[self]


_CODES = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """A state change (``kind="state"``) or a recorded failure (``kind="failure"``)."""

    component: str
    kind: Literal["state", "failure"]
    old: BreakerState
    new: BreakerState
    at: float
    reason: str
    error_rate: float
