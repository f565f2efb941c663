"""Metrics: the exported names, scrape-time values, children created once, a real /metrics."""

from __future__ import annotations

import gc
import math
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot4.infrastructure.breaker import BreakerConfig, CircuitBreaker
from bot4.infrastructure.clock import ManualClock
from bot4.infrastructure.errors import ConfigError, InfrastructureError
from bot4.infrastructure.fuse import Fuse
from bot4.infrastructure.metrics import (
    DEFAULT_ADDRESS,
    DEFAULT_PORT,
    EXPORTED_NAMES,
    Metrics,
    MetricsEndpoint,
    default_metrics,
    serve_metrics,
)


class BoomError(Exception):
    pass


def fail() -> None:
    raise BoomError("down")


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


def test_breaker_metrics_use_the_documented_names() -> None:
    clock = ManualClock()
    metrics = Metrics()
    breaker = CircuitBreaker("exchange", BreakerConfig(), clock=clock, fuse=None)
    metrics.bind_breaker(breaker)
    assert value(metrics, "circuit_breaker_state", component="exchange") == 0
    for _ in range(10):
        with pytest.raises(BoomError):
            breaker.call(fail)
    assert value(metrics, "errors_total", component="exchange") == 10
    assert value(metrics, "circuit_breaker_state", component="exchange") == 1
    assert value(metrics, "circuit_breaker_state_changes_total", component="exchange") == 1
    assert value(metrics, "cb_error_rate", component="exchange") == 1.0
    clock.advance(30)
    breaker.call(int)
    assert value(metrics, "circuit_breaker_state", component="exchange") == 2
    assert value(metrics, "circuit_breaker_state_changes_total", component="exchange") == 2
    assert value(metrics, "cb_error_rate", component="exchange") == 0.0
    metrics.requests.inc(3)
    assert value(metrics, "requests_total") == 3


def test_every_documented_name_is_exported() -> None:
    metrics = Metrics()
    metrics.bind_breaker(CircuitBreaker("c", fuse=None))
    metrics.component("c")
    metrics.queue("q")
    metrics.queue_rejected.labels("q", "full")
    metrics.bind_fuse(Fuse())
    exported = {name for name, _ in samples(metrics)}
    for names in EXPORTED_NAMES.values():
        for name in names:
            assert name.split("{")[0] in exported


def test_children_are_created_once_and_binding_twice_does_not_double_count() -> None:
    metrics = Metrics()
    assert metrics.component("a") is metrics.component("a")
    assert metrics.queue("q") is metrics.queue("q")
    breaker = CircuitBreaker("a", fuse=None)
    assert metrics.bind_breaker(breaker) is metrics.bind_breaker(breaker)
    with pytest.raises(BoomError):
        breaker.call(fail)
    assert value(metrics, "errors_total", component="a") == 1


def test_gauges_of_a_collected_breaker_read_nan() -> None:
    metrics = Metrics()
    metrics.bind_breaker(CircuitBreaker("gone", fuse=None))
    gc.collect()
    assert math.isnan(value(metrics, "circuit_breaker_state", component="gone"))


def test_fuse_gauge() -> None:
    metrics = Metrics()
    assert value(metrics, "circuit_breaker_fuse_tripped") == 0
    fuse = Fuse()
    metrics.bind_fuse(fuse)
    fuse.trip("test")
    assert value(metrics, "circuit_breaker_fuse_tripped") == 1


def test_default_metrics_is_one_registry_with_process_metrics() -> None:
    metrics = default_metrics()
    assert metrics is default_metrics()
    names = {name for name, _ in samples(metrics)}
    assert "python_info" in names
    assert "process_cpu_seconds_total" in names
    assert "python_info" not in {name for name, _ in samples(Metrics())}


def test_endpoint_defaults_to_localhost() -> None:
    assert MetricsEndpoint() == MetricsEndpoint(DEFAULT_ADDRESS, DEFAULT_PORT)
    assert DEFAULT_ADDRESS == "localhost"
    assert MetricsEndpoint.from_env({}) == MetricsEndpoint("localhost", 9108)
    env = {"BOT4_METRICS_ADDRESS": "metrics.internal", "BOT4_METRICS_PORT": " 9200 "}
    assert MetricsEndpoint.from_env(env) == MetricsEndpoint("metrics.internal", 9200)


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"BOT4_METRICS_PORT": "http"}, "BOT4_METRICS_PORT must be an integer port"),
        ({"BOT4_METRICS_PORT": "70000"}, "metrics port must be an integer in 0..65535"),
        ({"BOT4_METRICS_ADDRESS": " "}, "metrics address must be a host name"),
    ],
)
def test_bad_endpoint_settings(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        MetricsEndpoint.from_env(env)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback test URL
        body: bytes = response.read()
    return body.decode()


def test_serves_metrics_over_http_on_loopback() -> None:
    metrics = Metrics()
    metrics.requests.inc()
    with serve_metrics(metrics, MetricsEndpoint("127.0.0.1", 0)) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        body = get(server.url)
    assert "requests_total 1.0" in body


def test_serves_on_localhost_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT4_METRICS_PORT", "0")
    monkeypatch.delenv("BOT4_METRICS_ADDRESS", raising=False)
    metrics = Metrics()
    with serve_metrics(metrics) as server:
        assert server.address == "localhost"
        assert "requests_total 0.0" in get(server.url)


def test_port_in_use_is_a_clear_error() -> None:
    metrics = Metrics()
    with (
        serve_metrics(metrics, MetricsEndpoint("127.0.0.1", 0)) as first,
        pytest.raises(
            InfrastructureError,
            match=r"cannot serve metrics on 127.0.0.1:\d+: .*choose another port",
        ),
    ):
        serve_metrics(metrics, MetricsEndpoint("127.0.0.1", first.port))


def test_ipv6_url_is_bracketed() -> None:
    metrics = Metrics()
    try:
        server = serve_metrics(metrics, MetricsEndpoint("::1", 0))
    except InfrastructureError:
        pytest.skip("no IPv6 loopback on this machine")
    with server:
        assert server.url == f"http://[::1]:{server.port}/metrics"
        assert "requests_total" in get(server.url)
