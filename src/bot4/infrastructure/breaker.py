"""Circuit breaker with hysteresis, bounded half-open probes and back-off.

Why hysteresis: a breaker that opens at 50% errors and closes at the same 50% flaps
around the threshold. This one opens when the error rate over its sliding window
reaches ``open_threshold`` (with at least ``min_samples`` calls) and, after a
cooldown, lets through at most ``probe_calls`` probes; it closes only when the
probes' error rate is at or below the lower ``close_threshold``. A re-open soon
after closing multiplies the cooldown (exponential back-off); a half-open period
whose probes never finish re-opens after ``probe_timeout`` instead of sticking.

Concurrency: each breaker has its own lock, taken only off the fast path. A call in
the closed state costs one attribute read before the call and one
``deque.append`` after it; under the GIL of CPython 3.11 (the only interpreter
bot4 supports) ``deque.append`` is atomic, so no update is lost. A call that read
"closed" just before the breaker opened still runs; its outcome lands in the
discarded window. Half-open admission is always under the lock, so the probe
budget is never exceeded.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import ParamSpec, TypeVar, cast

from bot4.infrastructure.clock import Clock, monotonic
from bot4.infrastructure.errors import CircuitOpenError, ConfigError, InfrastructureError
from bot4.infrastructure.fuse import Fuse, process_fuse
from bot4.infrastructure.state import BreakerEvent, BreakerState

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN

MIN_SAMPLES_FLOOR = 10
_MAX_BACKOFF_EXPONENT = 64

Listener = Callable[[BreakerEvent], None]
Record = Callable[[bool], None]
# A closed-state admission carries the window's ``record`` (so a late outcome can be
# recognised as stale); a half-open admission carries the probe generation.
_Ticket = Record | int
_NOT_ENTERED = -1  # generations start at 0, so -1 is never a probe ticket


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"invalid circuit breaker config: {message}")


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Thresholds and timings of one breaker; invalid combinations raise ``ConfigError``.

    The window is a count window of the last ``window_calls`` outcomes, or, when
    ``window_seconds`` is set, a time window of the outcomes in the last
    ``window_seconds`` (at most ``max_window_samples`` of each kind kept).
    """

    open_threshold: float = 0.5
    close_threshold: float = 0.35
    min_samples: int = 10
    window_calls: int = 100
    window_seconds: float | None = None
    max_window_samples: int = 100_000
    probe_calls: int = 10
    probe_timeout: float = 60.0
    cooldown: float = 30.0
    backoff_factor: float = 2.0
    max_cooldown: float = 600.0
    quick_reopen: float = 60.0
    flap_window: float = 300.0
    flap_threshold: int = 10
    failure_types: tuple[type[BaseException], ...] = (Exception,)
    exclude: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        _require(
            0.0 < self.close_threshold < self.open_threshold <= 1.0,
            f"need 0 < close_threshold < open_threshold <= 1 (hysteresis); got "
            f"close_threshold={self.close_threshold!r}, open_threshold={self.open_threshold!r}",
        )
        _require(
            _is_int(self.min_samples) and self.min_samples >= MIN_SAMPLES_FLOOR,
            f"min_samples must be an integer >= {MIN_SAMPLES_FLOOR}; got {self.min_samples!r}",
        )
        _require(
            _is_int(self.window_calls) and self.window_calls >= self.min_samples,
            f"window_calls must be an integer >= min_samples ({self.min_samples}); "
            f"got {self.window_calls!r}",
        )
        _require(
            self.window_seconds is None or _positive(self.window_seconds),
            f"window_seconds must be None or a positive number; got {self.window_seconds!r}",
        )
        _require(
            _is_int(self.max_window_samples) and self.max_window_samples >= self.min_samples,
            f"max_window_samples must be an integer >= min_samples; got "
            f"{self.max_window_samples!r}",
        )
        _require(
            _is_int(self.probe_calls) and self.probe_calls >= 1,
            f"probe_calls must be an integer >= 1; got {self.probe_calls!r}",
        )
        for name in ("probe_timeout", "cooldown", "flap_window"):
            value = getattr(self, name)
            _require(_positive(value), f"{name} must be a positive number; got {value!r}")
        _require(
            _finite(self.backoff_factor) and 1.0 <= self.backoff_factor <= 100.0,
            f"backoff_factor must be in [1, 100] (1 disables back-off); got "
            f"{self.backoff_factor!r}",
        )
        _require(
            _finite(self.max_cooldown) and self.max_cooldown >= self.cooldown,
            f"max_cooldown must be >= cooldown ({self.cooldown}); got {self.max_cooldown!r}",
        )
        _require(
            _finite(self.quick_reopen) and self.quick_reopen >= 0.0,
            f"quick_reopen must be a number >= 0; got {self.quick_reopen!r}",
        )
        _require(
            _is_int(self.flap_threshold) and self.flap_threshold >= 2,
            f"flap_threshold must be an integer >= 2; got {self.flap_threshold!r}",
        )
        for name in ("failure_types", "exclude"):
            types = getattr(self, name)
            _require(
                isinstance(types, tuple)
                and all(isinstance(t, type) and issubclass(t, BaseException) for t in types),
                f"{name} must be a tuple of exception classes; got {types!r}",
            )
        _require(bool(self.failure_types), "failure_types must not be empty")

    @property
    def allowed_probe_failures(self) -> int:
        """Most probe failures that still let the breaker close (rate <= close_threshold)."""
        return math.floor(self.close_threshold * self.probe_calls + 1e-9)

    def cooldown_for(self, level: int) -> float:
        """Cooldown after the ``level``-th quick re-open in a row (0 = first open)."""
        exponent = min(level, _MAX_BACKOFF_EXPONENT)
        return min(self.cooldown * self.backoff_factor**exponent, self.max_cooldown)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: object) -> bool:
    return _finite(value) and cast(float, value) > 0.0


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A consistent view of one breaker for reports, tests and ``bot4 doctor``-style output."""

    component: str
    state: BreakerState
    samples: int
    error_rate: float
    state_changes: int
    failures_total: int
    rejected_total: int
    backoff_level: int
    forced_reason: str | None


class _ProcessFuse:
    """Sentinel type for 'register with the process-wide fuse'."""

    __slots__ = ()


PROCESS_FUSE = _ProcessFuse()


class _CountWindow:
    """The last N outcomes (True = success)."""

    __slots__ = ("_outcomes", "record")

    def __init__(self, size: int) -> None:
        self._outcomes: deque[bool] = deque(maxlen=size)
        self.record: Record = self._outcomes.append

    def rate(self, now: float) -> tuple[int, float]:
        snapshot = tuple(self._outcomes)
        samples = len(snapshot)
        return samples, (snapshot.count(False) / samples if samples else 0.0)


class _TimeWindow:
    """Outcomes in the last ``seconds``: two deques of timestamps, purged on read."""

    __slots__ = ("_failures", "_seconds", "_successes", "record")

    def __init__(self, seconds: float, max_samples: int, clock: Clock) -> None:
        self._seconds = seconds
        self._successes: deque[float] = deque(maxlen=max_samples)
        self._failures: deque[float] = deque(maxlen=max_samples)
        ok = self._successes.append
        fail = self._failures.append

        def record(success: bool) -> None:
            (ok if success else fail)(clock())

        self.record = record

    def rate(self, now: float) -> tuple[int, float]:
        horizon = now - self._seconds
        for stamps in (self._successes, self._failures):
            while stamps and stamps[0] < horizon:
                stamps.popleft()
        failures = len(self._failures)
        samples = len(self._successes) + failures
        return samples, (failures / samples if samples else 0.0)


class CircuitBreaker:
    """One component's breaker: ``@breaker``, ``breaker.call(fn, …)`` or ``with breaker.guard():``.

    ``fuse`` defaults to the process-wide fuse (``bot4.infrastructure.fuse.process_fuse()``)
    so the kill switch reaches every breaker; pass ``fuse=None`` to opt out.
    """

    def __init__(
        self,
        component: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock = monotonic,
        fuse: Fuse | _ProcessFuse | None = PROCESS_FUSE,
    ) -> None:
        if not component or not isinstance(component, str):
            raise ConfigError(
                f"a circuit breaker needs a non-empty component name; got {component!r}"
            )
        self._component = component
        self._config = config if config is not None else BreakerConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._state = CLOSED
        self._forced: str | None = None
        self._window: _CountWindow | _TimeWindow = self._make_window()
        self._record: Record = self._window.record
        self._open_until = 0.0
        self._closed_at: float | None = None
        self._backoff_level = 0
        self._last_rate = 0.0
        self._generation = 0
        self._probes_admitted = 0
        self._probe_ok = 0
        self._probe_fail = 0
        self._half_open_since = 0.0
        self._state_changes = 0
        self._change_times: deque[float] = deque(maxlen=self._config.flap_threshold)
        self._failures_total = 0
        self._rejected_total = 0
        if isinstance(fuse, _ProcessFuse):
            fuse = process_fuse()
        if fuse is not None:
            fuse.register(self)

    # -- introspection -------------------------------------------------------------------

    @property
    def component(self) -> str:
        """The component this breaker protects (the ``component`` metric label)."""
        return self._component

    @property
    def config(self) -> BreakerConfig:
        """The validated configuration."""
        return self._config

    @property
    def state(self) -> BreakerState:
        """Current state; an expired cooldown turns open into half-open on read."""
        self._emit(self._locked_advance())
        return self._state

    @property
    def forced_reason(self) -> str | None:
        """Why the breaker is held open by ``force_open`` (e.g. the fuse), else ``None``."""
        return self._forced

    @property
    def observed_state(self) -> BreakerState:
        """The state as last changed, without applying an expired cooldown (no side effects)."""
        return self._state

    @property
    def state_changes(self) -> int:
        """Total state changes since creation (``circuit_breaker_state_changes``)."""
        return self._state_changes

    @property
    def failures_total(self) -> int:
        """Failures recorded since creation (``errors_total``)."""
        return self._failures_total

    @property
    def rejected_total(self) -> int:
        """Calls refused while open or with the probe budget spent."""
        return self._rejected_total

    @property
    def cooldown_remaining(self) -> float:
        """Seconds until an open breaker half-opens (0 when not open or forced)."""
        if self._state is not OPEN or self._forced is not None:
            return 0.0
        return max(0.0, self._open_until - self._clock())

    def error_rate(self) -> float:
        """Error rate: the window's when closed, the probes' when half-open, else the trip rate."""
        return self.snapshot().error_rate

    def snapshot(self) -> BreakerSnapshot:
        """State, window and counters read together under the breaker's lock."""
        self._emit(self._locked_advance())
        with self._lock:
            now = self._clock()
            if self._state is CLOSED:
                samples, rate = self._window.rate(now)
            elif self._state is HALF_OPEN:
                samples = self._probe_ok + self._probe_fail
                rate = self._probe_fail / samples if samples else 0.0
            else:
                samples, rate = 0, self._last_rate
            return BreakerSnapshot(
                component=self._component,
                state=self._state,
                samples=samples,
                error_rate=rate,
                state_changes=self._state_changes,
                failures_total=self._failures_total,
                rejected_total=self._rejected_total,
                backoff_level=self._backoff_level,
                forced_reason=self._forced,
            )

    def is_flapping(self) -> bool:
        """True when ``flap_threshold`` state changes happened within ``flap_window``."""
        with self._lock:
            times = self._change_times
            full = len(times) == times.maxlen
            return full and times[0] >= self._clock() - self._config.flap_window

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` after every state change and failure (outside the lock)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self._component!r}, state={self._state.value})"

    # -- guarding calls ------------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` through the breaker; ``CircuitOpenError`` when refused."""
        if self._state is not CLOSED:
            return self._call_admitted(fn, *args, **kwargs)
        record = self._record
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._complete(record, exc)
            raise
        record(True)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker (cancellation is not a failure)."""
        ticket = self._record if self._state is CLOSED else self._admit()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._complete(ticket, exc)
            raise
        self._complete(ticket, None)
        return result

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a function or ``async def`` so every call goes through the breaker."""
        if inspect.iscoroutinefunction(fn):
            return cast(Callable[P, R], self._wrap_async(fn))
        breaker = self

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            if breaker._state is not CLOSED:
                return breaker._call_admitted(fn, *args, **kwargs)
            record = breaker._record
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                breaker._complete(record, exc)
                raise
            record(True)
            return result

        return guarded

    def _wrap_async(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        breaker = self

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            return await breaker.call_async(fn, *args, **kwargs)

        return guarded

    def guard(self) -> Guard:
        """A single-use context manager (``with`` or ``async with``) around one call."""
        return Guard(self)

    def _call_admitted(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        ticket = self._admit()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._complete(ticket, exc)
            raise
        self._complete(ticket, None)
        return result

    # -- manual control (the fuse) -------------------------------------------------------

    def force_open(self, reason: str) -> None:
        """Hold the breaker open until ``release``; calls are refused with ``reason``."""
        now = self._clock()
        with self._lock:
            self._forced = reason
            self._generation += 1
            events = [] if self._state is OPEN else self._set_state(OPEN, now, f"forced: {reason}")
            self._reset_window()
        self._emit(events)

    def release(self, reason: str) -> None:
        """Undo ``force_open``: the breaker half-opens, so probes decide whether it closes."""
        now = self._clock()
        with self._lock:
            if self._forced is None:
                return
            self._forced = None
            events = self._half_open(now, f"released: {reason}")
        self._emit(events)

    # -- internals (every state change happens under self._lock) --------------------------

    def _make_window(self) -> _CountWindow | _TimeWindow:
        cfg = self._config
        if cfg.window_seconds is None:
            return _CountWindow(cfg.window_calls)
        return _TimeWindow(cfg.window_seconds, cfg.max_window_samples, self._clock)

    def _reset_window(self) -> None:
        self._window = self._make_window()
        self._record = self._window.record

    def _classify(self, exc: BaseException | None) -> bool | None:
        """True success, False failure, None neither (cancellation, KeyboardInterrupt…)."""
        if exc is None or isinstance(exc, self._config.exclude):
            return True
        if isinstance(exc, self._config.failure_types):
            return False
        return None

    def _admit(self) -> _Ticket:
        now = self._clock()
        with self._lock:
            events = self._advance(now)
            ticket: _Ticket | None = None
            if self._state is CLOSED:
                ticket = self._record
            elif self._state is HALF_OPEN and self._probes_admitted < self._config.probe_calls:
                self._probes_admitted += 1
                ticket = self._generation
            else:
                self._rejected_total += 1
                reason = self._refusal_reason(now)
        self._emit(events)
        if ticket is None:
            raise CircuitOpenError(self._component, reason)
        return ticket

    def _refusal_reason(self, now: float) -> str:
        if self._forced is not None:
            return f"held open: {self._forced}"
        if self._state is HALF_OPEN:
            return (
                f"half-open with all {self._config.probe_calls} probe calls in flight; "
                "retry after they finish"
            )
        return f"open (error rate {self._last_rate:.0%}); retry in {self._open_until - now:.1f}s"

    def _complete(self, ticket: _Ticket, exc: BaseException | None) -> None:
        outcome = self._classify(exc)
        if isinstance(ticket, int):
            self._probe_done(ticket, outcome)
        elif outcome:
            ticket(True)
        elif outcome is False:
            self._closed_failure(ticket)

    def _closed_failure(self, record: Record) -> None:
        now = self._clock()
        with self._lock:
            self._failures_total += 1
            events = [self._failure_event(now)]
            if record is self._record and self._state is CLOSED:
                record(False)
                samples, rate = self._window.rate(now)
                if samples >= self._config.min_samples and rate >= self._config.open_threshold:
                    self._last_rate = rate
                    events += self._open(
                        now,
                        f"error rate {rate:.0%} over {samples} calls reached "
                        f"{self._config.open_threshold:.0%}",
                        quick=self._closed_at is not None
                        and now - self._closed_at < self._config.quick_reopen,
                    )
        self._emit(events)

    def _probe_done(self, generation: int, outcome: bool | None) -> None:
        now = self._clock()
        cfg = self._config
        with self._lock:
            events: list[BreakerEvent] = []
            if outcome is False:
                self._failures_total += 1
                events.append(self._failure_event(now))
            if generation == self._generation and self._state is HALF_OPEN:
                if outcome is None:
                    self._probes_admitted -= 1
                elif outcome:
                    self._probe_ok += 1
                else:
                    self._probe_fail += 1
                allowed = cfg.allowed_probe_failures
                done = self._probe_ok + self._probe_fail
                if self._probe_fail > allowed:
                    self._last_rate = self._probe_fail / done
                    events += self._open(
                        now,
                        f"{self._probe_fail} of {cfg.probe_calls} probes failed (closing needs "
                        f"<= {cfg.close_threshold:.0%})",
                        quick=True,
                    )
                elif self._probe_ok >= cfg.probe_calls - allowed:
                    events += self._close(now, f"{self._probe_ok} of {done} probes succeeded")
        self._emit(events)

    def _locked_advance(self) -> list[BreakerEvent]:
        now = self._clock()
        with self._lock:
            return self._advance(now)

    def _advance(self, now: float) -> list[BreakerEvent]:
        """Time-driven transitions: cooldown expiry and stuck half-open periods."""
        if self._forced is not None:
            return []
        if self._state is OPEN and now >= self._open_until:
            return self._half_open(now, "cooldown elapsed")
        cfg = self._config
        if (
            self._state is HALF_OPEN
            and self._probes_admitted >= cfg.probe_calls
            and now - self._half_open_since >= cfg.probe_timeout
        ):
            self._last_rate = 1.0
            return self._open(
                now,
                f"probes did not finish within probe_timeout={cfg.probe_timeout}s",
                quick=True,
            )
        return []

    def _open(self, now: float, reason: str, *, quick: bool) -> list[BreakerEvent]:
        self._backoff_level = self._backoff_level + 1 if quick else 0
        cooldown = self._config.cooldown_for(self._backoff_level)
        self._open_until = now + cooldown
        self._generation += 1
        self._reset_window()
        return self._set_state(OPEN, now, f"{reason}; cooldown {cooldown:g}s")

    def _half_open(self, now: float, reason: str) -> list[BreakerEvent]:
        self._generation += 1
        self._probes_admitted = self._probe_ok = self._probe_fail = 0
        self._half_open_since = now
        return self._set_state(HALF_OPEN, now, reason)

    def _close(self, now: float, reason: str) -> list[BreakerEvent]:
        self._closed_at = now
        self._generation += 1
        self._reset_window()
        return self._set_state(CLOSED, now, reason)

    def _set_state(self, new: BreakerState, now: float, reason: str) -> list[BreakerEvent]:
        old = self._state
        self._state = new
        self._state_changes += 1
        self._change_times.append(now)
        return [BreakerEvent(self._component, "state", old, new, now, reason, self._last_rate)]

    def _failure_event(self, now: float) -> BreakerEvent:
        return BreakerEvent(
            self._component,
            "failure",
            self._state,
            self._state,
            now,
            "call failed",
            self._last_rate,
        )

    def _emit(self, events: list[BreakerEvent]) -> None:
        for event in events:
            if event.kind == "state":
                level = logging.WARNING if event.new is OPEN else logging.INFO
                log.log(
                    level,
                    "circuit breaker %r: %s -> %s (%s)",
                    event.component,
                    event.old.value,
                    event.new.value,
                    event.reason,
                )
            for listener in tuple(self._listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("circuit breaker %r: a listener failed", self._component)


class Guard:
    """One guarded call as a context manager; created by ``CircuitBreaker.guard()``."""

    __slots__ = ("_breaker", "_ticket")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._ticket: _Ticket = _NOT_ENTERED

    @property
    def is_probe(self) -> bool:
        """True when the call was admitted as one of the half-open probes."""
        ticket = self._ticket
        return isinstance(ticket, int) and ticket != _NOT_ENTERED

    def __enter__(self) -> Guard:
        if self._ticket != _NOT_ENTERED:
            raise InfrastructureError("a breaker guard is single-use: call breaker.guard() again")
        breaker = self._breaker
        self._ticket = breaker._record if breaker._state is CLOSED else breaker._admit()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        ticket = self._ticket
        if exc is None and not isinstance(ticket, int):
            ticket(True)  # closed-state success: the same single append as the decorator
        else:
            self._breaker._complete(ticket, exc)

    async def __aenter__(self) -> Guard:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)
