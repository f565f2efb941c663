"""The live check: a real Prometheus scrapes the engine's real metrics endpoint, evaluates
ops/rules, and every series a rule, a dashboard panel or a runbook query selects exists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ci.daemon import DaemonError, free_port
from ci.ops import cli as ops_cli
from ci.ops import dashboards as ops_dashboards
from ci.ops.layout import Layout, OpsError
from ci.ops.live import (
    LocalServer,
    PrometheusApi,
    http_json,
    http_ok,
    live_problems,
    prometheus_server,
    render_prometheus_config,
)
from ci.ops.promql import Query, metric_names
from ci.ops.rules import load_rules, recorded_names, rule_queries
from ci.ops.runbooks import runbook_queries

ROOT = Path(__file__).resolve().parents[3]


def _all_queries(layout: Layout) -> list[Query]:
    rules = load_rules(layout.rule_files)
    return [
        *rule_queries(rules),
        *ops_dashboards.queries(ops_dashboards.DASHBOARDS),
        *runbook_queries(layout),
    ]


@pytest.mark.e2e
def test_every_referenced_series_is_exported_or_recorded(
    live_prometheus: Any, layout: Layout
) -> None:
    rules = load_rules(layout.rule_files)
    queries = _all_queries(layout)
    assert len(queries) > 60
    assert live_problems(live_prometheus.api, queries, recorded_names(rules)) == []


@pytest.mark.e2e
def test_recorded_series_are_defined_by_rules_and_evaluated(
    live_prometheus: Any, layout: Layout
) -> None:
    rules = load_rules(layout.rule_files)
    recorded = recorded_names(rules)
    referenced = set().union(*(metric_names(q.expr) for q in _all_queries(layout)))
    scraped = live_prometheus.api.series_names()
    # A referenced name the engine does not export must be one a rule records.
    assert referenced - scraped <= recorded
    # The short-window recordings already have results (the long ones need hours of data).
    pressure = live_prometheus.api.query("queue_depth_pressure")
    assert [(s["metric"]["queue"], float(s["value"][1])) for s in pressure] == [("orders", 100.0)]
    assert {s["metric"]["component"] for s in live_prometheus.api.query("slo_burn_rate_1m")} == {
        "exchange"
    }


@pytest.mark.e2e
def test_the_engine_exports_what_the_rules_were_written_against(live_prometheus: Any) -> None:
    names = live_prometheus.api.series_names()
    assert {
        "requests_total",
        "errors_total",
        "queue_items",
        "queue_capacity",
        "queue_rejected_total",
        "circuit_breaker_state",
        "circuit_breaker_state_changes_total",
        "cb_error_rate",
        "circuit_breaker_fuse_tripped",
        "gate_decisions_total",
        "gate_decision_seconds_bucket",
        "bot4_risk_rejects_total",
    } <= names
    # The counter was declared as "circuit_breaker_state_changes": only the _total name exists.
    assert "circuit_breaker_state_changes" not in names


@pytest.mark.e2e
def test_a_rule_on_a_metric_nobody_exports_is_reported(live_prometheus: Any) -> None:
    queries = [
        Query("bad.yml: alert Ghost", "rate(circuit_breaker_state_changes[5m]) > 10"),
        Query("ok.yml: alert Fine", "queue_depth_pressure > 80"),
    ]
    problems = live_problems(live_prometheus.api, queries, {"queue_depth_pressure"})
    assert problems == [
        "bad.yml: alert Ghost: selects circuit_breaker_state_changes, which nothing exports "
        "or records"
    ]


@pytest.mark.e2e
def test_a_query_that_does_not_parse_is_reported(live_prometheus: Any) -> None:
    problems = live_prometheus.api.parse_problems(
        [Query("panel X", "sum by (queue (queue_items)"), Query("panel Y", "up")]
    )
    assert len(problems) == 1
    assert problems[0].startswith("panel X: 'sum by (queue (queue_items)' does not parse:")


@pytest.mark.e2e
def test_live_check_command_against_the_running_server(
    live_prometheus: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = ops_cli.main(
        ["--root", str(ROOT), "live-check", "--prometheus", live_prometheus.server.url]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "queries parse and select live series" in out


@pytest.mark.e2e
def test_live_check_reports_a_target_that_is_down(
    live_prometheus: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # The second server's target port has no listener: the scrape failed.
    url = live_prometheus.down.url
    assert PrometheusApi(url).targets_up() is False
    assert ops_cli.main(["--root", str(ROOT), "live-check", "--prometheus", url]) == 1
    err = capsys.readouterr().err
    assert f"{url}: not every target is up" in err
    # The series check fails too: no engine series were scraped.
    assert "which nothing exports or records" in err


@pytest.mark.e2e
def test_a_server_that_exits_at_start_is_an_error_with_its_log(
    prometheus_bin: str, tmp_path: Path
) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text("scrape_configs: [{job_name: 1, static_configs: nope}]\n", encoding="utf-8")
    with pytest.raises(DaemonError, match=r"prometheus exited with status [1-9]"):
        prometheus_server(prometheus_bin, config, tmp_path, host="127.0.0.1")


@pytest.mark.e2e
def test_a_server_that_never_becomes_ready_is_stopped(tmp_path: Path) -> None:
    # A real process that never serves HTTP: the wait is bounded and the process is killed.
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(DaemonError, match=r"timed out after 0.5s waiting for python"):
        LocalServer(argv, tmp_path / "log", host="127.0.0.1", startup_timeout=0.5)


@pytest.mark.e2e
def test_close_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    script = (
        "import signal, http.server, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    server = LocalServer(
        [sys.executable, "-c", script, "{port}"], tmp_path / "log", host="127.0.0.1"
    )
    assert http_ok(f"{server.url}/-/ready")
    server.close(timeout=0.5)
    assert server.process is not None
    assert server.process.returncode == -9
    server.close()  # already stopped: nothing to do


@pytest.mark.e2e
def test_prometheus_api_errors_are_one_line(live_prometheus: Any) -> None:
    api = PrometheusApi(live_prometheus.server.url)
    with pytest.raises(OpsError, match=r"Prometheus /api/v1/query: .*parse error"):
        api.query("sum(")
    with pytest.raises(OpsError, match=r"answered with something that is not JSON"):
        http_json(f"{live_prometheus.server.url}/-/ready")
    port = free_port("127.0.0.1")
    with pytest.raises(OpsError, match=rf"127.0.0.1:{port}"):
        http_json(f"http://127.0.0.1:{port}/api/v1/query")
    with pytest.raises(OpsError, match="only plain http"):
        http_json("file:///etc/passwd")
    with pytest.raises(OpsError, match="only plain http"):
        http_ok("file:///etc/passwd")
    assert http_ok(f"http://127.0.0.1:{port}/") is False


def test_render_config_points_the_scrape_at_one_target(layout: Layout, tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load(render_prometheus_config(layout, "127.0.0.1:1234"))
    assert data["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:1234"]}]
    assert data["global"]["scrape_interval"] == "1s"
    assert data["rule_files"] == [str(layout.ops / "rules/*.yml")]
    assert "alerting" not in data
    bad = tmp_path / "ops"
    bad.mkdir()
    (bad / "prometheus.yml").write_text("scrape_configs: []\n", encoding="utf-8")
    with pytest.raises(OpsError, match="exactly one scrape job"):
        render_prometheus_config(Layout(tmp_path), "x:1")


def test_render_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ops_cli.main(["--root", str(ROOT), "render-config", "--target", "localhost:9"]) == 0
    assert "localhost:9" in capsys.readouterr().out
    out = tmp_path / "p.yml"
    args = ["--root", str(ROOT), "render-config", "--target", "localhost:9", "--out", str(out)]
    assert ops_cli.main(args) == 0
    assert "localhost:9" in out.read_text(encoding="utf-8")
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.e2e
def test_python_dash_m_ci_ops_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ci.ops", "--root", str(ROOT), "render-config", "--target", "h:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.dumps("h:1")[1:-1] in proc.stdout
