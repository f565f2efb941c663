"""A real Prometheus (and Alertmanager) on loopback, scraping the engine: the live checks."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from ci.daemon import Daemon, free_port
from ci.ops.layout import Layout, OpsError
from ci.ops.promql import Query, unknown_series
from ci.ops.rules import load_yaml

log = logging.getLogger(__name__)

# --- Prometheus configuration and server -------------------------------------------------------


def render_prometheus_config(layout: Layout, target: str) -> str:
    """ops/prometheus.yml with one scrape target and absolute rule paths (for a test server)."""
    data = load_yaml(layout.prometheus_config)
    jobs = data.get("scrape_configs") if isinstance(data, dict) else None
    if not isinstance(jobs, list) or len(jobs) != 1 or not isinstance(jobs[0], dict):
        raise OpsError(f"{layout.prometheus_config}: expected exactly one scrape job (the engine)")
    jobs[0]["static_configs"] = [{"targets": [target]}]
    data["rule_files"] = [str(layout.ops / pattern) for pattern in data.get("rule_files", [])]
    data.pop("alerting", None)
    return str(yaml.safe_dump(data, sort_keys=False))


def http_json(url: str, *, timeout: float = 5, data: bytes | None = None) -> Any:  # noqa: ANN401
    """GET (or POST ``data``) ``url`` and parse the JSON answer (error bodies included)."""
    if not url.startswith("http://"):
        raise OpsError(f"only plain http URLs on a local server are queried; got {url!r}")
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - checked
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # nosec B310
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
    except (urllib.error.URLError, OSError) as exc:
        raise OpsError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    try:
        return json.loads(body) if body else None
    except json.JSONDecodeError:
        raise OpsError(f"{url}: answered with something that is not JSON") from None


class PrometheusApi:
    """The HTTP query API of a Prometheus server."""

    def __init__(self, url: str, timeout: float = 5) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, **params: str) -> Any:  # noqa: ANN401 - JSON "data" field
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        answer = http_json(f"{self.url}{path}{query}", timeout=self.timeout)
        if not isinstance(answer, dict) or answer.get("status") != "success":
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise OpsError(f"Prometheus {path}: {error}")
        return answer.get("data")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; a query that does not parse is an error."""
        data = self._get("/api/v1/query", query=expr)
        result = data.get("result", []) if isinstance(data, dict) else []
        return list(result) if isinstance(result, list) else []

    def series_names(self) -> frozenset[str]:
        """Every metric name the server holds."""
        return frozenset(str(name) for name in self._get("/api/v1/label/__name__/values"))

    def targets_up(self) -> bool:
        """Whether every active scrape target has been scraped successfully."""
        data = self._get("/api/v1/targets", state="active")
        targets = data.get("activeTargets", []) if isinstance(data, dict) else []
        return bool(targets) and all(t.get("health") == "up" for t in targets)

    def parse_problems(self, queries: Iterable[Query]) -> list[str]:
        """One line per query the server rejects."""
        problems = []
        for query in queries:
            try:
                self.query(query.expr)
            except OpsError as exc:
                problems.append(f"{query.where}: {query.expr!r} does not parse: {exc}")
        return problems


def http_ok(url: str, timeout: float = 2) -> bool:
    """Whether ``url`` answers 200 (readiness probes)."""
    if not url.startswith("http://"):
        raise OpsError(f"only plain http URLs on a local server are probed; got {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  # nosec B310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class LocalServer(Daemon):
    """A server on a loopback port (a ``ci.daemon.Daemon``), started on construction.

    ``argv`` may contain ``{host}`` and ``{port}``; the server is ready when
    ``http://host:port{ready_path}`` answers 200 (bounded by ``startup_timeout``).
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        ready_path: str = "/-/ready",
        host: str = "localhost",
        port: int | None = None,
        startup_timeout: float = 60,  # a bound: < 1 s idle, far more on a loaded machine
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.url = f"http://{host}:{self.port}"
        super().__init__(
            [arg.format(host=host, port=self.port) for arg in argv],
            log_path,
            lambda: http_ok(f"{self.url}{ready_path}"),
            start_timeout=startup_timeout,
        )
        self.start()

    def close(self, timeout: float | None = None) -> None:
        """Stop the server (SIGTERM, then SIGKILL); nothing to do when it already stopped."""
        self.stop(timeout)


def prometheus_server(
    prometheus: str, config: Path, workdir: Path, *, host: str = "localhost"
) -> LocalServer:
    """A Prometheus with ``config`` and throwaway storage under ``workdir``."""
    argv = [
        prometheus,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        "--web.listen-address={host}:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    return LocalServer(argv, workdir / "prometheus.log", host=host)


def alertmanager_server(
    alertmanager: str, config: Path, workdir: Path, *, host: str = "localhost"
) -> LocalServer:
    """A single (non-clustered) Alertmanager with ``config`` and storage under ``workdir``."""
    argv = [
        alertmanager,
        f"--config.file={config}",
        f"--storage.path={workdir / 'data'}",
        "--web.listen-address={host}:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    return LocalServer(argv, workdir / "alertmanager.log", host=host)


def live_problems(
    api: PrometheusApi, queries: Sequence[Query], recorded: Collection[str]
) -> list[str]:
    """Against a server scraping the engine: every query parses and selects only series
    that were scraped or are recorded by a rule."""
    available = api.series_names()
    return api.parse_problems(queries) + unknown_series(queries, available, recorded)
