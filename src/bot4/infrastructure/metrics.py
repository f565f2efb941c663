"""Prometheus metrics: one registry, the names the ops rules and dashboards use.

Nothing here sits on a hot path. Gauges (breaker state, error rate, queue depth) are
computed at scrape time from the live objects (``set_function``), and counters are
bumped from breaker/queue listeners, which only run on failures, state changes,
rejections and drains. Labelled children are created once, when an object is bound.

prometheus-client appends ``_total`` to counters (and adds ``_created``), so the
exported names differ from the constructor names; ``EXPORTED_NAMES`` lists them and
docs/infrastructure.md documents them for the ops rules.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)

from bot4.infrastructure.errors import ConfigError, InfrastructureError
from bot4.infrastructure.queues import QueueEvent
from bot4.infrastructure.state import BreakerEvent

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from bot4.infrastructure.breaker import CircuitBreaker
    from bot4.infrastructure.fuse import Fuse

log = logging.getLogger(__name__)

T = TypeVar("T")

ADDRESS_ENV = "BOT4_METRICS_ADDRESS"
PORT_ENV = "BOT4_METRICS_PORT"
DEFAULT_ADDRESS = "localhost"
DEFAULT_PORT = 9108

# Metric as declared → the sample names Prometheus scrapes (what rules must use).
EXPORTED_NAMES: Mapping[str, tuple[str, ...]] = {
    "requests_total": ("requests_total",),
    "errors_total": ("errors_total{component}",),
    "queue_items": ("queue_items{queue}",),
    "queue_capacity": ("queue_capacity{queue}",),
    "queue_depth_percent": ("queue_depth_percent{queue}",),
    "queue_rejected_total": ("queue_rejected_total{queue,reason}",),
    "queue_shed_total": ("queue_shed_total{queue}",),
    "queue_dead_lettered_total": ("queue_dead_lettered_total{queue}",),
    "queue_emergency_drains_total": ("queue_emergency_drains_total{queue}",),
    "circuit_breaker_state": ("circuit_breaker_state{component}",),
    "circuit_breaker_state_changes": ("circuit_breaker_state_changes_total{component}",),
    "cb_error_rate": ("cb_error_rate{component}",),
    "circuit_breaker_fuse_tripped": ("circuit_breaker_fuse_tripped",),
}


class QueueLike(Protocol):
    """What the metrics need from a bounded queue."""

    @property
    def name(self) -> str: ...  # pragma: no cover - protocol

    @property
    def depth(self) -> int: ...  # pragma: no cover - protocol

    @property
    def capacity(self) -> int: ...  # pragma: no cover - protocol

    @property
    def depth_percent(self) -> float: ...  # pragma: no cover - protocol

    def add_listener(self, listener: Callable[[QueueEvent], None]) -> None: ...  # pragma: no cover


@dataclass(frozen=True, slots=True)
class ComponentMetrics:
    """The labelled children of one component, created once."""

    errors: Counter
    state: Gauge
    state_changes: Counter
    error_rate: Gauge


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    """The labelled children of one queue, created once (``rejected`` per reason on demand)."""

    items: Gauge
    capacity: Gauge
    depth_percent: Gauge
    shed: Counter
    dead_lettered: Counter
    emergency_drains: Counter


def _live(ref: weakref.ReferenceType[T], read: Callable[[T], float]) -> Callable[[], float]:
    """A gauge function that reads a live object, or NaN once it is gone."""

    def value() -> float:
        target = ref()
        return math.nan if target is None else read(target)

    return value


class Metrics:
    """The engine's metrics on their own ``CollectorRegistry``."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, process_metrics: bool = False
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        if process_metrics:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)
        self.requests = Counter("requests", "Requests the engine sent out.", registry=reg)
        self.audit_tree_size = Gauge(
            "audit_tree_size", "Tree size of the audit log's last signed checkpoint.", registry=reg
        )
        self.audit_tree_head = Gauge(
            "audit_tree_head",
            "The last signed checkpoint: origin and root (hex) as labels, tree size as value.",
            ["origin", "root"],
            registry=reg,
        )
        self.errors = Counter(
            "errors", "Failed calls, by protected component.", ["component"], registry=reg
        )
        self.queue_items = Gauge("queue_items", "Items in the queue.", ["queue"], registry=reg)
        self.queue_capacity = Gauge(
            "queue_capacity", "Maximum items the queue holds.", ["queue"], registry=reg
        )
        self.queue_depth_percent = Gauge(
            "queue_depth_percent",
            "Queue depth as a percentage of capacity.",
            ["queue"],
            registry=reg,
        )
        self.queue_rejected = Counter(
            "queue_rejected",
            "Items handed back to the producer, by reason.",
            ["queue", "reason"],
            registry=reg,
        )
        self.queue_shed = Counter(
            "queue_shed", "Low-priority items shed to make room.", ["queue"], registry=reg
        )
        self.queue_dead_lettered = Counter(
            "queue_dead_lettered", "Items written to the dead-letter file.", ["queue"], registry=reg
        )
        self.queue_emergency_drains = Counter(
            "queue_emergency_drains", "Emergency drains performed.", ["queue"], registry=reg
        )
        self.breaker_state = Gauge(
            "circuit_breaker_state",
            "Breaker state: 0 closed, 1 open, 2 half-open.",
            ["component"],
            registry=reg,
        )
        self.breaker_state_changes = Counter(
            "circuit_breaker_state_changes",
            "Breaker state changes (flapping shows as a high rate).",
            ["component"],
            registry=reg,
        )
        self.breaker_error_rate = Gauge(
            "cb_error_rate",
            "Error rate in the breaker's current window.",
            ["component"],
            registry=reg,
        )
        self.fuse_tripped = Gauge(
            "circuit_breaker_fuse_tripped",
            "1 while the global fuse holds every breaker open.",
            registry=reg,
        )
        self._lock = threading.Lock()
        self._components: dict[str, ComponentMetrics] = {}
        self._queues: dict[str, QueueMetrics] = {}
        self._bound: weakref.WeakSet[object] = weakref.WeakSet()

    def component(self, name: str) -> ComponentMetrics:
        """The children for ``component=name`` (created on first use, then reused)."""
        with self._lock:
            children = self._components.get(name)
            if children is None:
                children = ComponentMetrics(
                    errors=self.errors.labels(name),
                    state=self.breaker_state.labels(name),
                    state_changes=self.breaker_state_changes.labels(name),
                    error_rate=self.breaker_error_rate.labels(name),
                )
                self._components[name] = children
            return children

    def queue(self, name: str) -> QueueMetrics:
        """The children for ``queue=name`` (created on first use, then reused)."""
        with self._lock:
            children = self._queues.get(name)
            if children is None:
                children = QueueMetrics(
                    items=self.queue_items.labels(name),
                    capacity=self.queue_capacity.labels(name),
                    depth_percent=self.queue_depth_percent.labels(name),
                    shed=self.queue_shed.labels(name),
                    dead_lettered=self.queue_dead_lettered.labels(name),
                    emergency_drains=self.queue_emergency_drains.labels(name),
                )
                self._queues[name] = children
            return children

    def bind_breaker(self, breaker: CircuitBreaker) -> ComponentMetrics:
        """Export ``breaker``: state and error rate at scrape time, counters from its events."""
        children = self.component(breaker.component)
        with self._lock:
            if breaker in self._bound:
                return children
            self._bound.add(breaker)
        ref = weakref.ref(breaker)
        children.state.set_function(_live(ref, lambda b: float(b.observed_state.code)))
        children.error_rate.set_function(_live(ref, lambda b: b.error_rate()))

        def on_event(event: BreakerEvent) -> None:
            if event.kind == "failure":
                children.errors.inc()
            else:
                children.state_changes.inc()

        breaker.add_listener(on_event)
        return children

    def bind_queue(self, queue: QueueLike) -> QueueMetrics:
        """Export depth, capacity and fill at scrape time; count rejections, sheds and drains."""
        children = self.queue(queue.name)
        with self._lock:
            if queue in self._bound:
                return children
            self._bound.add(queue)
        rejected: dict[str, Counter] = {}

        def on_event(event: QueueEvent) -> None:
            if event.kind == "rejected":
                child = rejected.get(event.reason)
                if child is None:
                    child = rejected[event.reason] = self.queue_rejected.labels(
                        event.queue, event.reason
                    )
                child.inc(event.count)
            elif event.kind == "shed":
                children.shed.inc(event.count)
            elif event.count:
                children.dead_lettered.inc(event.count)
                children.emergency_drains.inc()

        queue.add_listener(on_event)
        ref = weakref.ref(queue)
        children.items.set_function(_live(ref, lambda q: float(q.depth)))
        children.capacity.set_function(_live(ref, lambda q: float(q.capacity)))
        children.depth_percent.set_function(_live(ref, lambda q: q.depth_percent))
        return children

    def bind_fuse(self, fuse: Fuse) -> None:
        """Export whether ``fuse`` is tripped (0 until a fuse is bound)."""
        ref = weakref.ref(fuse)
        self.fuse_tripped.set_function(_live(ref, lambda f: float(f.tripped)))

    def record_checkpoint(self, origin: str, size: int, root_hex: str) -> None:
        """Export the audit log's latest signed tree head, so a scraper keeps a copy of it."""
        self.audit_tree_size.set(size)
        self.audit_tree_head.clear()
        self.audit_tree_head.labels(origin=origin, root=root_hex).set(size)

    def exposition(self) -> bytes:
        """The current metrics in the Prometheus text format."""
        return generate_latest(self.registry)


_default_lock = threading.Lock()
_default: Metrics | None = None


def default_metrics() -> Metrics:
    """The process-wide metrics (with process, platform and GC collectors)."""
    global _default  # noqa: PLW0603 - one registry per process, created on first use
    with _default_lock:
        if _default is None:
            _default = Metrics(process_metrics=True)
        return _default


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    """Where to serve ``/metrics``; defaults keep it on the loopback interface."""

    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not self.address.strip():
            raise ConfigError(
                f"metrics address must be a host name or address; got {self.address!r}"
            )
        port = self.port
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ConfigError(f"metrics port must be an integer in 0..65535; got {port!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MetricsEndpoint:
        """Read ``BOT4_METRICS_ADDRESS`` (default localhost) and ``BOT4_METRICS_PORT`` (9108)."""
        env = os.environ if environ is None else environ
        address = env.get(ADDRESS_ENV, DEFAULT_ADDRESS)
        raw = env.get(PORT_ENV, str(DEFAULT_PORT)).strip()
        try:
            port = int(raw)
        except ValueError:
            raise ConfigError(
                f"{PORT_ENV} must be an integer port in 0..65535; got {raw!r}"
            ) from None
        return cls(address=address, port=port)


class MetricsServer:
    """A running ``/metrics`` HTTP endpoint; ``close()`` (or ``with``) stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread, address: str) -> None:
        self._server = server
        self._thread = thread
        self.address = address
        self.port: int = server.server_port

    @property
    def url(self) -> str:
        """The scrape URL."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(metrics: Metrics, endpoint: MetricsEndpoint | None = None) -> MetricsServer:
    """Serve ``metrics`` over HTTP in a daemon thread (port 0 picks a free port)."""
    where = endpoint if endpoint is not None else MetricsEndpoint.from_env()
    try:
        server, thread = start_http_server(
            where.port, addr=where.address, registry=metrics.registry
        )
    except OSError as exc:
        raise InfrastructureError(
            f"cannot serve metrics on {where.address}:{where.port}: {exc.strerror or exc}; "
            f"choose another port ({PORT_ENV} / --metrics-port) or address ({ADDRESS_ENV})"
        ) from None
    handle = MetricsServer(server, thread, where.address)
    log.info("serving metrics on %s", handle.url)
    return handle
