"""Fixtures for the ops tests: the real ops tools, the engine's metrics endpoint and a real
Prometheus scraping it (all on 127.0.0.1, every wait bounded, servers stopped by PID).

The tools come from Debian's prometheus and prometheus-alertmanager packages. When they
are missing the tests fail with the install command — a missing promtool must not pass
the gate silently. ``BOT4_OPS_TOOLS=absent`` (a deliberate choice, e.g. on a laptop
without the packages) turns that into a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bot4.infrastructure.breaker import CircuitBreaker
from bot4.infrastructure.errors import QueueRejectedError
from bot4.infrastructure.fuse import Fuse
from bot4.infrastructure.metrics import Metrics, MetricsEndpoint, MetricsServer, serve_metrics
from bot4.infrastructure.queues import BoundedQueue
from bot4.risk.metrics import RiskMetrics
from bot4.trading_engine.emotion_gate import EmotionFreeGate, GateMetrics, Signal
from ci.daemon import free_port, wait_until
from ci.ops.layout import Layout, OpsError
from ci.ops.live import (
    LocalServer,
    PrometheusApi,
    http_json,
    prometheus_server,
    render_prometheus_config,
)
from ci.ops.tools import find_tool

ROOT = Path(__file__).resolve().parents[3]
LOOPBACK = "127.0.0.1"


def _tool(*names: str) -> str:
    """The first of ``names`` on PATH; otherwise skip, which fails unless declared absent."""
    problem = ""
    for name in names:
        try:
            return find_tool(name)
        except OpsError as exc:
            problem = problem or str(exc)
    pytest.skip(problem)  # a failure unless the run declares it (BOT4_ABSENT=promtool, …)


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool (Debian package prometheus)."""
    return _tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    """amtool (Debian package prometheus-alertmanager)."""
    return _tool("amtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """The Prometheus server binary."""
    return _tool("prometheus")


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    """The Alertmanager binary (Debian installs it as prometheus-alertmanager)."""
    return _tool("prometheus-alertmanager", "alertmanager")


@pytest.fixture(scope="session")
def layout() -> Layout:
    """The repository's ops files."""
    return Layout(ROOT)


@dataclass
class Engine:
    """The engine's metrics endpoint with one of each instrumented object bound to it."""

    metrics: Metrics
    server: MetricsServer
    breaker: CircuitBreaker
    queue: BoundedQueue[int]
    fuse: Fuse
    gate: EmotionFreeGate

    @property
    def target(self) -> str:
        """host:port for a scrape config."""
        return f"{LOOPBACK}:{self.server.port}"


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The metrics the engine exports, served on a free loopback port.

    A breaker, a bounded queue (with one rejection, so the labelled rejection counter
    exists), the global fuse, the trading gate (one real decision) and the risk counters
    all register on one registry, as in the engine.
    """
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    fuse = Fuse()
    breaker = CircuitBreaker("exchange", fuse=fuse)
    metrics.bind_breaker(breaker)
    metrics.bind_fuse(fuse)
    queue: BoundedQueue[int] = BoundedQueue("orders", 2, policy="reject")
    metrics.bind_queue(queue)
    queue.put(1)
    queue.put(2)
    with pytest.raises(QueueRejectedError):
        queue.put(3)
    RiskMetrics(registry)
    gate = EmotionFreeGate(metrics=GateMetrics(registry), clock=lambda: 0)
    gate.decide(Signal("o-1", "BTC-USD", 1, 1.0, 100.0, 0))
    server = serve_metrics(metrics, MetricsEndpoint(LOOPBACK, 0))
    try:
        yield Engine(metrics, server, breaker, queue, fuse, gate)
    finally:
        server.close()


@dataclass
class LivePrometheus:
    """A Prometheus server that has scraped the engine and evaluated the rules, and one
    whose only target is a port nobody listens on (its scrape has been attempted)."""

    server: LocalServer
    api: PrometheusApi
    down: LocalServer


def _first_scrape_attempted(api: PrometheusApi) -> bool:
    data = http_json(f"{api.url}/api/v1/targets")["data"]
    return any(t.get("lastScrape", "").startswith("2") for t in data["activeTargets"])


@pytest.fixture(scope="session")
def live_prometheus(
    prometheus_bin: str,
    layout: Layout,
    engine: Engine,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LivePrometheus]:
    """Prometheus on 127.0.0.1 with ops/prometheus.yml pointed at the engine; waits (bounded)
    for a successful scrape and for the recording rules' first results.

    Prometheus holds its first scrape for about 5 s (service discovery settles), so both
    servers start before either is waited on.
    """
    servers: list[LocalServer] = []
    try:
        for name, target in (
            ("live", engine.target),
            ("down", f"{LOOPBACK}:{free_port(LOOPBACK)}"),
        ):
            workdir = tmp_path_factory.mktemp(f"prometheus-{name}")
            config = workdir / "prometheus.yml"
            config.write_text(render_prometheus_config(layout, target), encoding="utf-8")
            servers.append(prometheus_server(prometheus_bin, config, workdir, host=LOOPBACK))
        live, down = servers
        api = PrometheusApi(live.url)
        wait_until(api.targets_up, 30, "a successful scrape of the engine")
        recorded = {"queue_depth_pressure", "slo_burn_rate_1m"}
        wait_until(lambda: recorded <= api.series_names(), 30, "the recording rules' first results")
        down_api = PrometheusApi(down.url)
        wait_until(lambda: _first_scrape_attempted(down_api), 30, "a first scrape attempt")
        yield LivePrometheus(live, api, down)
    finally:
        for server in servers:
            server.close()
