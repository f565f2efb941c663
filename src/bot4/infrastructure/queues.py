"""Bounded queues with backpressure that never drop an item silently.

When a queue is full the producer gets a policy-defined answer: ``block`` waits up
to a timeout, ``reject`` refuses at once, ``shed`` makes room by evicting the oldest
item of the lowest priority below the new one. Refused items come back in
``QueueRejectedError.item``; shed items are returned by ``put``. Both are counted
and reported to listeners (and so to metrics).

``get`` returns the highest priority first, FIFO within a priority; with the default
priority 0 a queue is plain FIFO.

Emergency drain: if the queue stays above ``threshold_percent`` for longer than
``after`` seconds, the lowest-priority items are written to a dead-letter file
(JSON lines, fsync'd) until it is down to ``drain_to_percent``, and a ``drained``
event is raised. If the file cannot be written the items stay queued.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from bot4.infrastructure.clock import Clock, monotonic
from bot4.infrastructure.deadletter import DeadLetter, append_dead_letters
from bot4.infrastructure.errors import ConfigError, QueueEmptyError, QueueRejectedError

log = logging.getLogger(__name__)

T = TypeVar("T")

FullPolicy = Literal["block", "reject", "shed"]
POLICIES: tuple[FullPolicy, ...] = ("block", "reject", "shed")
EventKind = Literal["rejected", "shed", "drained"]
_KEEP_EMPTY_LANES = 8


class _Default:
    """Sentinel: 'use the queue's configured timeout'."""

    __slots__ = ()


DEFAULT = _Default()


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


@dataclass(frozen=True, slots=True)
class EmergencyDrain:
    """When and where to drain a queue that stays nearly full."""

    path: Path
    threshold_percent: float = 95.0
    after: float = 60.0
    drain_to_percent: float = 50.0
    serialize: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, Path):
            raise ConfigError(f"emergency drain path must be a pathlib.Path; got {self.path!r}")
        if not (_number(self.threshold_percent) and 0 < self.threshold_percent < 100):
            raise ConfigError(
                f"emergency threshold_percent must be in (0, 100); got {self.threshold_percent!r}"
            )
        if not (_number(self.after) and 0 <= self.after < float("inf")):
            raise ConfigError(f"emergency 'after' must be seconds >= 0; got {self.after!r}")
        if not (
            _number(self.drain_to_percent) and 0 <= self.drain_to_percent < self.threshold_percent
        ):
            raise ConfigError(
                "emergency drain_to_percent must be in [0, threshold_percent); got "
                f"{self.drain_to_percent!r}"
            )


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """Items that left the queue other than by ``get``: rejected, shed or drained."""

    queue: str
    kind: EventKind
    count: int
    reason: str
    at: float


QueueListener = Callable[[QueueEvent], None]


class _Lanes(Generic[T]):
    """One FIFO lane per priority; ``get`` takes from the highest, shedding from the lowest."""

    __slots__ = ("_lanes", "_priorities", "size")

    def __init__(self) -> None:
        self._lanes: dict[int, deque[T]] = {}
        self._priorities: list[int] = []  # ascending
        self.size = 0

    def _lane(self, priority: int) -> deque[T]:
        lane = self._lanes.get(priority)
        if lane is None:
            lane = self._lanes[priority] = deque()
            bisect.insort(self._priorities, priority)
        return lane

    def push(self, priority: int, item: T) -> None:
        lane = self._lanes.get(priority)
        (lane if lane is not None else self._lane(priority)).append(item)
        self.size += 1

    def restore(self, priority: int, item: T) -> None:
        """Put an item back at the front of its lane (undoing a removal)."""
        self._lane(priority).appendleft(item)
        self.size += 1

    # The three readers below are only called on a non-empty queue (callers check size).

    def pop_highest(self) -> T:
        priorities = self._priorities
        lane = self._lanes[priorities[-1]]
        if lane and len(lane) > 1:  # fast path: the top lane stays non-empty
            self.size -= 1
            return lane.popleft()
        index = next(i for i in range(len(priorities) - 1, -1, -1) if self._lanes[priorities[i]])
        return self._pop(index)

    def lowest_priority(self) -> int:
        return next(p for p in self._priorities if self._lanes[p])

    def pop_lowest(self) -> tuple[int, T]:
        index = next(i for i, p in enumerate(self._priorities) if self._lanes[p])
        priority = self._priorities[index]
        return priority, self._pop(index)

    def _pop(self, index: int) -> T:
        lane = self._lanes[self._priorities[index]]
        item = lane.popleft()
        self.size -= 1
        self._forget_if_empty(index, lane)
        return item

    def _forget_if_empty(self, index: int, lane: deque[T]) -> None:
        if not lane and len(self._priorities) > _KEEP_EMPTY_LANES:
            del self._lanes[self._priorities.pop(index)]


class _QueueCore(Generic[T]):
    """Storage, policies, counters and the emergency drain; callers provide the locking."""

    def __init__(
        self,
        name: str,
        capacity: int,
        policy: FullPolicy,
        timeout: float | None,
        emergency: EmergencyDrain | None,
        clock: Clock,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ConfigError(f"a queue needs a non-empty name; got {name!r}")
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ConfigError(f"queue {name!r}: capacity must be an integer >= 1; got {capacity!r}")
        if policy not in POLICIES:
            raise ConfigError(
                f"queue {name!r}: policy must be one of {', '.join(POLICIES)}; got {policy!r}"
            )
        _check_timeout(name, timeout)
        self._name = name
        self._capacity = capacity
        self._policy = policy
        self._timeout = timeout
        self._emergency = emergency
        self._clock = clock
        self._lanes: _Lanes[T] = _Lanes()
        self._high_since: float | None = None
        self._freed = False  # a drain made room: wake blocked producers
        self._pending: list[QueueEvent] = []
        self._listeners: list[QueueListener] = []
        self.rejected_total = 0
        self.shed_total = 0
        self.dead_lettered_total = 0
        self.emergency_drains = 0

    @property
    def name(self) -> str:
        """The queue's name (the ``queue`` metric label)."""
        return self._name

    @property
    def capacity(self) -> int:
        """Maximum number of items."""
        return self._capacity

    @property
    def policy(self) -> FullPolicy:
        """What ``put`` does when the queue is full."""
        return self._policy

    @property
    def depth(self) -> int:
        """Items in the queue now."""
        return self._lanes.size

    @property
    def depth_percent(self) -> float:
        """Depth as a percentage of capacity (``queue_depth_percent``)."""
        return 100.0 * self._lanes.size / self._capacity

    def add_listener(self, listener: QueueListener) -> None:
        """Call ``listener(event)`` for every rejection, shed and drain."""
        self._listeners.append(listener)

    def __len__(self) -> int:
        return self._lanes.size

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._name!r}, depth={self._lanes.size}, "
            f"capacity={self._capacity}, policy={self._policy!r})"
        )

    # -- called with the lock held ---------------------------------------------------------

    def _resolve_timeout(self, timeout: float | _Default | None) -> float | None:
        if isinstance(timeout, _Default):
            return self._timeout
        _check_timeout(self._name, timeout)
        return timeout

    def _try_put(self, item: T, priority: int) -> tuple[T, ...] | None:
        """Store ``item``; returns shed items, or ``None`` when full and nothing may be shed."""
        lanes = self._lanes
        if lanes.size < self._capacity:
            lanes.push(priority, item)
            if self._emergency is not None:
                self._watch(self._emergency)
            return ()
        if self._policy == "shed":
            lowest = lanes.lowest_priority()
            if lowest < priority:
                _, shed = lanes.pop_lowest()
                lanes.push(priority, item)
                self.shed_total += 1
                self._event("shed", 1, f"priority {lowest} item shed for priority {priority}")
                return (shed,)
        return None

    def _rejection(self, item: T, priority: int, waited: float | None) -> QueueRejectedError:
        if waited is not None:
            reason, detail = "timeout", f"still full after waiting {waited:g}s"
        elif self._policy == "shed":
            reason = "priority"
            detail = (
                f"full and nothing queued has a priority below {priority}; "
                "retry later or raise the priority"
            )
        else:
            reason, detail = "full", f"full ({self._capacity} items); retry later"
        self.rejected_total += 1
        self._event("rejected", 1, reason)
        return QueueRejectedError(self._name, reason, detail, item)

    def _take(self) -> T:
        item = self._lanes.pop_highest()
        if self._emergency is not None:
            self._watch(self._emergency)
        return item

    def _watch(self, emergency: EmergencyDrain) -> None:
        """Track how long the queue has been above the emergency threshold; drain if too long."""
        if self.depth_percent <= emergency.threshold_percent:
            self._high_since = None
            return
        now = self._clock()
        if self._high_since is None:
            self._high_since = now
        elif now - self._high_since > emergency.after:
            self._drain(emergency, now)

    def _drain(self, emergency: EmergencyDrain, now: float) -> None:
        target = int(self._capacity * emergency.drain_to_percent / 100.0)
        removed: list[tuple[int, T]] = []
        while self._lanes.size > target:
            removed.append(self._lanes.pop_lowest())
        serialize = emergency.serialize or (lambda item: item)
        try:
            letters = [DeadLetter(self._name, p, now, serialize(item)) for p, item in removed]
            written = append_dead_letters(emergency.path, letters)
        except (OSError, TypeError, ValueError) as exc:
            for priority, item in reversed(removed):
                self._lanes.restore(priority, item)
            self._high_since = now  # try again after another 'after' seconds
            log.error(  # noqa: TRY400 - a traceback could echo the items' contents
                "queue %r: emergency drain to %s failed (%s); %d items kept in the queue",
                self._name,
                emergency.path,
                type(exc).__name__,
                len(removed),
            )
            self._event("drained", 0, f"failed: {type(exc).__name__}")
            return
        self._high_since = None
        self._freed = True
        self.dead_lettered_total += written
        self.emergency_drains += 1
        log.warning(
            "queue %r: above %g%% for more than %gs: drained %d items to %s",
            self._name,
            emergency.threshold_percent,
            emergency.after,
            written,
            emergency.path,
        )
        self._event("drained", written, str(emergency.path))

    def _event(self, kind: EventKind, count: int, reason: str) -> None:
        self._pending.append(QueueEvent(self._name, kind, count, reason, self._clock()))

    # -- called without the lock -----------------------------------------------------------

    def _flush(self) -> None:
        if not self._pending:
            return
        events, self._pending = self._pending, []
        for event in events:
            for listener in tuple(self._listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("queue %r: a listener failed", self._name)


def _check_timeout(name: str, timeout: float | None) -> None:
    if timeout is not None and not (_number(timeout) and 0 <= timeout < float("inf")):
        raise ConfigError(f"queue {name!r}: timeout must be None or seconds >= 0; got {timeout!r}")


class BoundedQueue(_QueueCore[T]):
    """A thread-safe bounded queue (see the module docstring for the policies)."""

    def __init__(
        self,
        name: str,
        capacity: int,
        *,
        policy: FullPolicy = "block",
        timeout: float | None = 1.0,
        emergency: EmergencyDrain | None = None,
        clock: Clock = monotonic,
    ) -> None:
        super().__init__(name, capacity, policy, timeout, emergency, clock)
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._waiting_getters = 0
        self._waiting_putters = 0

    def put(
        self, item: T, *, priority: int = 0, timeout: float | _Default | None = DEFAULT
    ) -> tuple[T, ...]:
        """Queue ``item``; returns any items shed for it; ``QueueRejectedError`` hands it back.

        ``timeout`` (block policy) is seconds to wait for room: ``None`` waits forever;
        the default is the queue's configured timeout.
        """
        with self._lock:
            lanes = self._lanes
            if lanes.size < self._capacity and self._emergency is None:  # fast path
                lanes.push(priority, item)
                if self._waiting_getters:
                    self._not_empty.notify()
                return ()
            outcome = self._try_put(item, priority)
            if outcome is None and self._policy == "block":
                wait = self._resolve_timeout(timeout)
                deadline = None if wait is None else monotonic() + wait
                while outcome is None:
                    remaining = None if deadline is None else deadline - monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self._waiting_putters += 1
                    try:
                        self._not_full.wait(remaining)
                    finally:
                        self._waiting_putters -= 1
                    outcome = self._try_put(item, priority)
                result = self._rejection(item, priority, wait) if outcome is None else outcome
            else:
                result = self._rejection(item, priority, None) if outcome is None else outcome
            if outcome is not None:
                self._not_empty.notify()
            self._wake_producers()
        self._flush()
        if isinstance(result, QueueRejectedError):
            raise result
        return result

    def get(self, timeout: float | None = None) -> T:
        """Take the oldest item of the highest priority; waits up to ``timeout`` (None: forever)."""
        with self._lock:
            lanes = self._lanes
            if lanes.size and self._emergency is None:  # fast path
                item = lanes.pop_highest()
                if self._waiting_putters:
                    self._not_full.notify()
                return item
            if not lanes.size:
                _check_timeout(self._name, timeout)
                deadline = None if timeout is None else monotonic() + timeout
                while not lanes.size:
                    remaining = None if deadline is None else deadline - monotonic()
                    if remaining is not None and remaining <= 0:
                        raise QueueEmptyError(f"queue {self._name!r} stayed empty for {timeout:g}s")
                    self._waiting_getters += 1
                    try:
                        self._not_empty.wait(remaining)
                    finally:
                        self._waiting_getters -= 1
            item = self._take()
            self._not_full.notify()
            self._wake_producers()
        self._flush()
        return item

    def check_emergency(self) -> None:
        """Re-evaluate the emergency drain now (call periodically when producers are idle)."""
        if self._emergency is None:
            return
        with self._lock:
            self._watch(self._emergency)
            self._wake_producers()
        self._flush()

    def _wake_producers(self) -> None:
        if self._freed:
            self._freed = False
            self._not_full.notify_all()


class AsyncBoundedQueue(_QueueCore[T]):
    """The asyncio twin of ``BoundedQueue``; use it from one event loop."""

    def __init__(
        self,
        name: str,
        capacity: int,
        *,
        policy: FullPolicy = "block",
        timeout: float | None = 1.0,
        emergency: EmergencyDrain | None = None,
        clock: Clock = monotonic,
    ) -> None:
        super().__init__(name, capacity, policy, timeout, emergency, clock)
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()

    async def put(
        self, item: T, *, priority: int = 0, timeout: float | _Default | None = DEFAULT
    ) -> tuple[T, ...]:
        """Queue ``item``; returns shed items; ``QueueRejectedError`` hands it back."""
        lanes = self._lanes
        if lanes.size < self._capacity and self._emergency is None:  # fast path
            lanes.push(priority, item)
            if self._getters:
                _wake(self._getters)
            return ()
        outcome = self._try_put(item, priority)
        if outcome is None and self._policy == "block":
            wait = self._resolve_timeout(timeout)
            try:
                async with asyncio.timeout(wait):
                    while outcome is None:
                        await self._wait(self._putters)
                        outcome = self._try_put(item, priority)
            except TimeoutError:
                pass
            result = self._rejection(item, priority, wait) if outcome is None else outcome
        else:
            result = self._rejection(item, priority, None) if outcome is None else outcome
        if outcome is not None:
            _wake(self._getters)
        self._wake_producers()
        self._flush()
        if isinstance(result, QueueRejectedError):
            raise result
        return result

    async def get(self, timeout: float | None = None) -> T:
        """Take the oldest item of the highest priority; waits up to ``timeout`` (None: forever)."""
        lanes = self._lanes
        if lanes.size and self._emergency is None:  # fast path
            item = lanes.pop_highest()
            if self._putters:
                _wake(self._putters)
            return item
        if not lanes.size:
            _check_timeout(self._name, timeout)
            try:
                async with asyncio.timeout(timeout):
                    while not self._lanes.size:
                        await self._wait(self._getters)
            except TimeoutError:
                raise QueueEmptyError(
                    f"queue {self._name!r} stayed empty for {timeout:g}s"
                ) from None
        item = self._take()
        _wake(self._putters)
        self._wake_producers()
        self._flush()
        return item

    def check_emergency(self) -> None:
        """Re-evaluate the emergency drain now (call periodically when producers are idle)."""
        if self._emergency is None:
            return
        self._watch(self._emergency)
        self._wake_producers()
        self._flush()

    def _wake_producers(self) -> None:
        if self._freed:
            self._freed = False
            for _ in range(self._capacity - self._lanes.size):
                if not _wake(self._putters):
                    break

    async def _wait(self, waiters: deque[asyncio.Future[None]]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(future)
        try:
            await future
        except BaseException:
            future.cancel()
            if future in waiters:
                waiters.remove(future)
            # We may have been woken just as we were cancelled: pass the wake-up on.
            if future.done() and not future.cancelled():
                _wake(waiters)
            raise


def _wake(waiters: deque[asyncio.Future[None]]) -> bool:
    while waiters:
        future = waiters.popleft()
        if not future.done():
            future.set_result(None)
            return True
    return False
