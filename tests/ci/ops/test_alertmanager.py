"""Alertmanager: the config passes amtool, every alert routes by severity, and a real
Alertmanager inhibits a component's warnings while a page for it fires."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci.daemon import wait_until
from ci.ops.alertmanager import RouteCase, amtool_checks, load_route_cases
from ci.ops.layout import Layout, OpsError
from ci.ops.live import alertmanager_server, http_json
from ci.ops.rules import load_rules

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.e2e
def test_the_repository_config_and_every_route(layout: Layout, amtool: str) -> None:
    rules = load_rules(layout.rule_files)
    cases = load_route_cases(layout.route_cases, rules)
    alerts = [r for r in rules if r.kind == "alert"]
    assert len(cases) >= len(alerts) + 3
    page = next(
        c
        for c in cases
        if c.labels.get("alertname") == "QueueEmergency" and "queue" not in c.labels
    )
    assert page.receivers == ("chat", "pager")
    assert page.labels["component"] == "queue:x"  # templated label filled in for routing
    assert amtool_checks(layout, amtool, cases) == []


def test_a_wrong_expectation_is_reported(layout: Layout, amtool: str) -> None:
    cases = [
        RouteCase({"severity": "warning", "component": "c"}, ("pager",)),
        RouteCase({"severity": "page", "component": "c"}, ("chat", "pager")),
    ]
    assert amtool_checks(layout, amtool, cases) == [
        "route component=c severity=warning: expected pager, got chat"
    ]


def test_a_broken_config_stops_before_routing(tmp_path: Path, amtool: str) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "alertmanager.yml").write_text("route: {receiver: nobody}\n", "utf-8")
    problems = amtool_checks(Layout(tmp_path), amtool, [RouteCase({}, ("x",))])
    assert problems
    assert all(p.startswith("amtool check-config: ") for p in problems)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected `severity_receivers` and `cases`"),
        ("cases: []", "`severity_receivers` must map"),
        ("severity_receivers: {page: [p]}\ncases: [{labels: {}}]", "needs `labels` and a"),
        ("severity_receivers: {page: [p]}", "no receivers for severity 'warning'"),
    ],
)
def test_bad_route_case_files(tmp_path: Path, layout: Layout, text: str, message: str) -> None:
    path = tmp_path / "routes.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OpsError, match=message):
        load_route_cases(path, load_rules(layout.rule_files))


def _post(url: str, alerts: list[dict[str, object]]) -> None:
    http_json(f"{url}/api/v2/alerts", data=json.dumps(alerts).encode())


def _states(url: str) -> dict[str, str]:
    alerts = http_json(f"{url}/api/v2/alerts")
    return {
        f"{a['labels']['alertname']}/{a['labels']['component']}": a["status"]["state"]
        for a in alerts
    }


def test_a_page_inhibits_the_same_components_warnings(
    layout: Layout, alertmanager_bin: str, tmp_path: Path
) -> None:
    with alertmanager_server(
        alertmanager_bin, layout.alertmanager_config, tmp_path, host="127.0.0.1"
    ) as server:
        _post(
            server.url,
            [
                {
                    "labels": {
                        "alertname": "QueueBackpressure",
                        "severity": "warning",
                        "component": "queue:orders",
                    }
                },
                {
                    "labels": {
                        "alertname": "QueueBackpressure",
                        "severity": "warning",
                        "component": "queue:fills",
                    }
                },
            ],
        )
        wait_until(lambda: len(_states(server.url)) == 2, 10, "two alerts")
        assert set(_states(server.url).values()) == {"active"}
        _post(
            server.url,
            [
                {
                    "labels": {
                        "alertname": "QueueEmergency",
                        "severity": "page",
                        "component": "queue:orders",
                    }
                }
            ],
        )
        expected = {
            "QueueBackpressure/queue:orders": "suppressed",
            "QueueBackpressure/queue:fills": "active",
            "QueueEmergency/queue:orders": "active",
        }
        wait_until(lambda: _states(server.url) == expected, 10, "the inhibition")
    assert server.process is not None
    assert server.process.poll() is not None
