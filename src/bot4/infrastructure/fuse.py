"""The global fuse: one switch that holds every registered breaker open (a kill switch).

It trips manually (``trip``) or automatically when ``max_open`` breakers are open at
once or when breakers change state ``max_state_changes`` times within
``flap_window`` seconds (flapping everywhere usually means a shared dependency is
sick). Resetting is never automatic: ``reset`` needs who and why, and is logged.
Tripping and resetting are rare, so the fuse uses its own lock; breakers never
read the fuse on their fast path — the fuse pushes ``force_open`` into them.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot4.infrastructure.clock import Clock, monotonic
from bot4.infrastructure.errors import ConfigError
from bot4.infrastructure.state import BreakerEvent, BreakerState


class Fusible(Protocol):
    """What the fuse needs of a breaker: the fuse knows breakers only through this."""

    @property
    def component(self) -> str: ...

    @property
    def observed_state(self) -> BreakerState: ...

    def add_listener(self, listener: Callable[[BreakerEvent], None]) -> None: ...

    def remove_listener(self, listener: Callable[[BreakerEvent], None]) -> None: ...

    def force_open(self, reason: str) -> None: ...

    def release(self, reason: str) -> None: ...


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FuseConfig:
    """Automatic trip conditions; ``None`` disables a condition (manual trips always work)."""

    max_open: int | None = None
    max_state_changes: int | None = None
    flap_window: float = 300.0

    def __post_init__(self) -> None:
        for name in ("max_open", "max_state_changes"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ConfigError(
                    f"invalid fuse config: {name} must be None or an integer >= 1; got {value!r}"
                )
        window = self.flap_window
        if (
            not isinstance(window, int | float)
            or isinstance(window, bool)
            or not 0 < window < float("inf")
        ):
            raise ConfigError(
                f"invalid fuse config: flap_window must be a positive number; got {window!r}"
            )


class Fuse:
    """Holds every registered breaker open while tripped."""

    def __init__(self, config: FuseConfig | None = None, *, clock: Clock = monotonic) -> None:
        self._config = config if config is not None else FuseConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: weakref.WeakSet[Fusible] = weakref.WeakSet()
        self._tripped: str | None = None
        self._changes: deque[float] = deque()
        self._trips = 0

    @property
    def config(self) -> FuseConfig:
        """The automatic trip conditions in force."""
        return self._config

    def configure(self, config: FuseConfig) -> None:
        """Replace the automatic trip conditions (e.g. from the engine's settings at startup)."""
        with self._lock:
            self._config = config
            self._changes.clear()

    @property
    def tripped(self) -> bool:
        """True while the fuse holds the breakers open."""
        return self._tripped is not None

    @property
    def reason(self) -> str | None:
        """Why the fuse tripped, or ``None``."""
        return self._tripped

    @property
    def trips(self) -> int:
        """How many times the fuse has tripped."""
        return self._trips

    @property
    def breakers(self) -> tuple[Fusible, ...]:
        """The live registered breakers, by component name."""
        with self._lock:
            return tuple(sorted(self._breakers, key=lambda b: b.component))

    def register(self, breaker: Fusible) -> None:
        """Put ``breaker`` under the fuse (held open at once if the fuse is tripped)."""
        with self._lock:
            if breaker in self._breakers:
                return
            self._breakers.add(breaker)
            reason = self._tripped
        breaker.add_listener(self._on_event)
        if reason is not None:
            breaker.force_open(f"global fuse tripped: {reason}")

    def unregister(self, breaker: Fusible) -> None:
        """Take ``breaker`` out from under the fuse (it stays in whatever state it is)."""
        with self._lock:
            self._breakers.discard(breaker)
        breaker.remove_listener(self._on_event)

    def trip(self, reason: str) -> bool:
        """Hold every registered breaker open; returns False if it was already tripped."""
        with self._lock:
            if self._tripped is not None:
                return False
            self._tripped = reason
            self._trips += 1
            targets = tuple(self._breakers)
        log.error("global fuse tripped: %s (%d breakers held open)", reason, len(targets))
        for breaker in targets:
            breaker.force_open(f"global fuse tripped: {reason}")
        return True

    def reset(self, *, by: str, reason: str) -> bool:
        """Release every breaker (they half-open and probe); returns False if not tripped.

        Deliberately explicit: ``by`` (who) and ``reason`` (why) are required and logged.
        """
        if not by.strip() or not reason.strip():
            raise ConfigError("resetting the global fuse needs who (by=…) and why (reason=…)")
        with self._lock:
            was = self._tripped
            if was is None:
                log.info("global fuse reset by %s ignored: it is not tripped", by)
                return False
            self._tripped = None
            self._changes.clear()
            targets = tuple(self._breakers)
        log.warning("global fuse reset by %s: %s (it was tripped: %s)", by, reason, was)
        for breaker in targets:
            breaker.release(f"global fuse reset by {by}")
        return True

    def _on_event(self, event: BreakerEvent) -> None:
        """Listener on every breaker: check the automatic trip conditions."""
        if event.kind != "state" or self._tripped is not None:
            return
        config = self._config
        reason: str | None = None
        with self._lock:
            if config.max_state_changes is not None:
                now = self._clock()
                changes = self._changes
                changes.append(now)
                while changes and changes[0] < now - config.flap_window:
                    changes.popleft()
                if len(changes) >= config.max_state_changes:
                    reason = (
                        f"{len(changes)} breaker state changes within {config.flap_window:g}s "
                        "(flapping)"
                    )
            if config.max_open is not None and event.new is BreakerState.OPEN:
                open_now = sorted(
                    b.component for b in self._breakers if b.observed_state is BreakerState.OPEN
                )
                if len(open_now) >= config.max_open:
                    reason = f"{len(open_now)} breakers open at once: {', '.join(open_now)}"
        if reason is not None:
            self.trip(reason)


@functools.cache
def process_fuse() -> Fuse:
    """The process-wide fuse every breaker registers with by default."""
    return Fuse()
