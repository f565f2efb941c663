"""Pools: per-thread caches sized by ``BOT4_TLS_CACHE_SIZE``, object pools, TLS client contexts.

Why per thread: a cache each thread owns needs no lock, so reuse costs a dict
lookup. The size comes from ``BOT4_TLS_CACHE_SIZE`` (default 128); a value that is
not an integer in 1..65536 is refused when the cache is built (at startup), never
silently replaced by the default.

``TLSContextCache`` keeps one ``ssl.SSLContext`` per distinct client setting per
thread: building a context (loading the CA bundle) costs milliseconds, reusing
one costs nothing, and a context also carries the TLS session cache.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot4.infrastructure.errors import ConfigError

log = logging.getLogger(__name__)

TLS_CACHE_ENV = "BOT4_TLS_CACHE_SIZE"
DEFAULT_TLS_CACHE_SIZE = 128
MAX_TLS_CACHE_SIZE = 65_536

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


def tls_cache_size(environ: Mapping[str, str] | None = None) -> int:
    """``BOT4_TLS_CACHE_SIZE`` as an int (default 128); anything else is a ``ConfigError``."""
    env = os.environ if environ is None else environ
    raw = env.get(TLS_CACHE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_TLS_CACHE_SIZE
    text = raw.strip()
    if not text.isdecimal() or not 1 <= int(text) <= MAX_TLS_CACHE_SIZE:
        raise ConfigError(
            f"{TLS_CACHE_ENV} must be a whole number from 1 to {MAX_TLS_CACHE_SIZE} "
            f"(default {DEFAULT_TLS_CACHE_SIZE}); got {raw!r}"
        )
    return int(text)


def _check_size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_TLS_CACHE_SIZE:
        raise ConfigError(
            f"cache size must be an integer from 1 to {MAX_TLS_CACHE_SIZE}; got {size!r}"
        )
    return size


@dataclass(frozen=True, slots=True)
class CacheStats:
    """The calling thread's view of a per-thread cache."""

    size: int
    entries: int
    hits: int
    misses: int
    evictions: int


class _ThreadState(threading.local, Generic[K, V]):
    def __init__(self) -> None:
        self.entries: OrderedDict[K, V] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0


class ThreadLocalCache(Generic[K, V]):
    """A least-recently-used cache per thread; no locks, no sharing between threads."""

    def __init__(self, size: int | None = None) -> None:
        self._size = tls_cache_size() if size is None else _check_size(size)
        self._state: _ThreadState[K, V] = _ThreadState()

    @property
    def size(self) -> int:
        """Maximum entries per thread."""
        return self._size

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        """This thread's value for ``key``, built by ``factory`` on a miss."""
        state = self._state
        entries = state.entries
        value = entries.get(key)
        if value is not None:
            entries.move_to_end(key)
            state.hits += 1
            return value
        state.misses += 1
        value = factory()
        entries[key] = value
        if len(entries) > self._size:
            entries.popitem(last=False)
            state.evictions += 1
        return value

    def clear(self) -> None:
        """Forget this thread's entries."""
        self._state.entries.clear()

    def stats(self) -> CacheStats:
        """Hits, misses and evictions of the calling thread."""
        state = self._state
        return CacheStats(self._size, len(state.entries), state.hits, state.misses, state.evictions)


class ObjectPool(Generic[T]):
    """Reuse expensive objects (connections, buffers) through a per-thread free list.

    ``acquire()`` hands out an idle object of this thread or a new one; on a clean
    exit it goes back to the thread's free list (at most ``size`` idle per thread,
    extra ones are closed). An object whose block raised is closed, not reused,
    since it may be broken.
    """

    def __init__(
        self,
        factory: Callable[[], T],
        *,
        size: int | None = None,
        close: Callable[[T], None] | None = None,
    ) -> None:
        self._factory = factory
        self._close = close
        self._size = tls_cache_size() if size is None else _check_size(size)
        self._local = threading.local()
        self._counts_lock = threading.Lock()  # creating/closing is the slow path anyway
        self._created_total = 0
        self._closed_total = 0

    @property
    def size(self) -> int:
        """Maximum idle objects kept per thread."""
        return self._size

    @property
    def created(self) -> int:
        """Objects built by the factory so far (all threads)."""
        return self._created_total

    @property
    def closed(self) -> int:
        """Objects closed (broken or surplus) so far (all threads)."""
        return self._closed_total

    def idle(self) -> int:
        """Idle objects in the calling thread's free list."""
        return len(self._free())

    def _free(self) -> list[T]:
        free: list[T] | None = getattr(self._local, "free", None)
        if free is None:
            free = self._local.free = []
        return free

    @contextmanager
    def acquire(self) -> Iterator[T]:
        """Borrow an object for the duration of the ``with`` block."""
        free = self._free()
        if free:
            obj = free.pop()
        else:
            obj = self._factory()
            with self._counts_lock:
                self._created_total += 1
        try:
            yield obj
        except BaseException:
            self._discard(obj)
            raise
        if len(free) < self._size:
            free.append(obj)
        else:
            self._discard(obj)

    def _discard(self, obj: T) -> None:
        with self._counts_lock:
            self._closed_total += 1
        if self._close is not None:
            self._close(obj)


@dataclass(frozen=True, slots=True)
class TLSClientSettings:
    """What makes two TLS client contexts different (the cache key).

    Certificate verification and hostname checking are always on.
    """

    cafile: str | None = None
    capath: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    alpn: tuple[str, ...] = ()


def build_client_context(settings: TLSClientSettings) -> ssl.SSLContext:
    """A verifying client context for ``settings``; unreadable files are a ``ConfigError``."""
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=settings.cafile, capath=settings.capath
        )
        context.minimum_version = settings.minimum_version
        if settings.certfile is not None:
            context.load_cert_chain(settings.certfile, settings.keyfile)
        if settings.alpn:
            context.set_alpn_protocols(list(settings.alpn))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            f"cannot build the TLS client context (cafile={settings.cafile}, "
            f"certfile={settings.certfile}): {exc}; check the paths and file contents"
        ) from None
    return context


class TLSContextCache:
    """``ssl.SSLContext`` reuse for exchange connections, one per setting per thread."""

    def __init__(self, size: int | None = None) -> None:
        self._cache: ThreadLocalCache[TLSClientSettings, ssl.SSLContext] = ThreadLocalCache(size)

    def context(self, settings: TLSClientSettings | None = None) -> ssl.SSLContext:
        """The calling thread's context for ``settings`` (built on first use)."""
        key = settings if settings is not None else TLSClientSettings()
        return self._cache.get_or_create(key, lambda: build_client_context(key))

    def stats(self) -> CacheStats:
        """The calling thread's hits, misses and evictions."""
        return self._cache.stats()
