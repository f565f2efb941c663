"""Injectable time: the engine asks a ``Clock`` instead of ``time.monotonic``.

Breakers, fuses and queues take a clock so tests and the simulator can run them on
simulated time; ``ManualClock`` is that simulated time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bot4.infrastructure.errors import ConfigError

Clock = Callable[[], float]
"""Seconds as a float from an arbitrary, non-decreasing origin."""

monotonic: Clock = time.monotonic


class ManualClock:
    """A clock that moves only when told to (simulated time); safe to share between threads."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (never backwards) and return the new time."""
        if not seconds >= 0.0:
            raise ConfigError(
                f"a clock cannot go backwards: advance({seconds!r}); pass seconds >= 0"
            )
        with self._lock:
            self._now += seconds
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r})"
