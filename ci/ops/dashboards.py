"""Grafana dashboards as code: typed panels in, deterministic dashboard JSON out.

The dashboards are reviewed as Python (this file) and committed as the JSON Grafana
imports (ops/dashboards/*.json); ``python -m ci.ops dashboards --check`` fails when the
two drift. Plain frozen dataclasses instead of grafanalib/grafana-foundation-sdk: the
handful of panel kinds used here need no dependency, and the output is byte-stable
(sorted keys, fixed ids and grid positions). Every panel's PromQL is checked by the
live test to parse and to select only exported or recorded series.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ci.ops.layout import OpsError
from ci.ops.promql import Query

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_HEIGHT = 8
GRID_WIDTH = 24


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Threshold:
    """A colour change at ``value`` (the first step of a panel starts at -inf)."""

    value: float
    color: str


@dataclass(frozen=True)
class Panel:
    """A time series or stat panel."""

    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat"] = "timeseries"
    thresholds: tuple[Threshold, ...] = ()
    width: int = 12


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: a uid Grafana keys it by, a title and its panels, laid out in rows."""

    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = field(default=("bot4",))

    @property
    def filename(self) -> str:
        """Its file in ops/dashboards/."""
        return f"{self.uid}.json"


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": t.color, "value": t.value} for t in panel.thresholds]
    options: dict[str, Any] = (
        {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True}}
        if panel.kind == "timeseries"
        else {
            "colorMode": "background",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"]},
        }
    )
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": PANEL_HEIGHT, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": options,
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "expr": target.expr,
                "legendFormat": target.legend,
            }
            for index, target in enumerate(panel.targets)
        ],
    }


def to_json(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana JSON model; panels flow left to right, then down."""
    panels = []
    x = y = 0
    for panel_id, panel in enumerate(dashboard.panels, start=1):
        if not 0 < panel.width <= GRID_WIDTH:
            raise OpsError(f"{dashboard.uid}: panel {panel.title!r} width must be 1..24")
        if x + panel.width > GRID_WIDTH:
            x, y = 0, y + PANEL_HEIGHT
        panels.append(_panel_json(panel, panel_id, x, y))
        x += panel.width
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "editable": False,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "5s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "utc",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                }
            ]
        },
        "panels": panels,
    }


def render(dashboard: Dashboard) -> str:
    """The committed file content: sorted keys, two-space indent, trailing newline."""
    return json.dumps(to_json(dashboard), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def queries(dashboards: Iterable[Dashboard]) -> list[Query]:
    """Every panel query, named by dashboard and panel."""
    return [
        Query(f"dashboard {d.uid}: {p.title}", t.expr)
        for d in dashboards
        for p in d.panels
        for t in p.targets
    ]


def write(dashboards: Iterable[Dashboard], directory: Path) -> list[Path]:
    """Write each dashboard's JSON (temp file, then rename); returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in dashboards:
        path = directory / dashboard.filename
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(render(dashboard), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def drift(dashboards: Iterable[Dashboard], directory: Path) -> list[str]:
    """One line per dashboard whose committed JSON differs from the generated one, and per
    JSON file no dashboard generates."""
    expected: Mapping[str, str] = {d.filename: render(d) for d in dashboards}
    problems = []
    for name, content in expected.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{path}: missing — run scripts/gate -s dashboards")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{path}: differs from the generator — run scripts/gate -s dashboards")
    problems.extend(
        f"{path}: not generated by ci/ops/dashboards.py — remove it or add its dashboard"
        for path in sorted(directory.glob("*.json"))
        if path.name not in expected
    )
    return problems


# --- the dashboards ------------------------------------------------------------------------

_BUDGET = 0.001  # 99.9 % SLO
_GATE_BUCKETS = "sum by (le) (rate(gate_decision_seconds_bucket[5m]))"


def _burn(window_long: str, window_short: str, factor: float) -> Panel:
    return Panel(
        title=f"Error ratio over {window_long} and {window_short} (page/ticket at {factor:g}×)",
        description=(
            f"Both windows above {factor:g} × 0.1 % fire the multiwindow burn-rate alert; "
            "the short window lets it clear quickly once errors stop."
        ),
        targets=(
            Target(f"slo_burn_rate_{window_long}", f"{{{{component}}}} {window_long}"),
            Target(f"slo_burn_rate_{window_short}", f"{{{{component}}}} {window_short}"),
        ),
        unit="percentunit",
        thresholds=(Threshold(factor * _BUDGET, "red"),),
        width=8,
    )


SLO = Dashboard(
    uid="bot4-slo",
    title="bot4 / SLO burn rate",
    description="99.9 % of requests succeed: error ratio per component against the budget.",
    panels=(
        Panel(
            title="Error ratio, last minute",
            description=(
                "slo_burn_rate_1m per component; SLOBurnRateHigh fires above 0.1 % for 1 min."
            ),
            targets=(Target("slo_burn_rate_1m", "{{component}}"),),
            unit="percentunit",
            thresholds=(Threshold(_BUDGET, "red"),),
            width=24,
        ),
        _burn("1h", "5m", 14.4),
        _burn("6h", "30m", 6),
        _burn("3d", "6h", 1),
        Panel(
            title="Requests per second",
            description="Requests the engine sent out (requests_total).",
            targets=(Target("sum(rate(requests_total[1m]))", "requests"),),
            unit="reqps",
        ),
        Panel(
            title="Errors per second by component",
            description="Failed calls through each component's circuit breaker.",
            targets=(Target("sum by (component) (rate(errors_total[1m]))", "{{component}}"),),
            unit="reqps",
        ),
    ),
)

QUEUES = Dashboard(
    uid="bot4-queues",
    title="bot4 / queue pressure",
    description="Bounded queues: fill level, backpressure, shedding and emergency drains.",
    panels=(
        Panel(
            title="Queue pressure",
            description=(
                "queue_depth_pressure: % of capacity. "
                "Warning above 80 % for 30 s, page above 95 % for 1 min."
            ),
            targets=(Target("queue_depth_pressure", "{{queue}}"),),
            unit="percent",
            thresholds=(Threshold(80, "orange"), Threshold(95, "red")),
            width=24,
        ),
        Panel(
            title="Items and capacity",
            description="Items queued next to each queue's capacity.",
            targets=(
                Target("sum by (queue) (queue_items)", "{{queue}} items"),
                Target("sum by (queue) (queue_capacity)", "{{queue}} capacity"),
            ),
        ),
        Panel(
            title="Rejected per second by reason",
            description="Items handed back to producers: full, timeout or priority.",
            targets=(
                Target(
                    "sum by (queue, reason) (rate(queue_rejected_total[1m]))",
                    "{{queue}} {{reason}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            title="Shed per second",
            description="Low-priority items dropped to make room for higher-priority ones.",
            targets=(Target("sum by (queue) (rate(queue_shed_total[1m]))", "{{queue}}"),),
            unit="reqps",
        ),
        Panel(
            title="Emergency drains and dead-lettered items (last hour)",
            description="Drains above the emergency threshold move items to the dead-letter file.",
            targets=(
                Target(
                    "sum by (queue) (increase(queue_emergency_drains_total[1h]))",
                    "{{queue}} drains",
                ),
                Target(
                    "sum by (queue) (increase(queue_dead_lettered_total[1h]))", "{{queue}} items"
                ),
            ),
        ),
    ),
)

BREAKERS_GATE = Dashboard(
    uid="bot4-breakers-gate",
    title="bot4 / breakers and gate",
    description="Circuit breakers, the global fuse, the emotion-free gate and pre-trade risk.",
    panels=(
        Panel(
            title="Global fuse",
            description="1 while the fuse holds every breaker open (GlobalFuseTripped pages).",
            targets=(Target("max(circuit_breaker_fuse_tripped)", "tripped"),),
            kind="stat",
            thresholds=(Threshold(1, "red"),),
            width=6,
        ),
        Panel(
            title="Gate overrides (last hour)",
            description="Orders passed on a signed operator override; each must be reviewed.",
            targets=(
                Target(
                    'sum(increase(gate_decisions_total{reason="operator_override"}[1h]))',
                    "overrides",
                ),
            ),
            kind="stat",
            thresholds=(Threshold(1, "orange"),),
            width=6,
        ),
        Panel(
            title="Breaker state",
            description="0 closed, 1 open, 2 half-open.",
            targets=(Target("max by (component) (circuit_breaker_state)", "{{component}}"),),
            thresholds=(Threshold(1, "red"),),
        ),
        Panel(
            title="Breaker error rate",
            description="Error rate in each breaker's window: opens at ≥ 50 %, closes at ≤ 35 %.",
            targets=(Target("max by (component) (cb_error_rate)", "{{component}}"),),
            unit="percentunit",
            thresholds=(Threshold(0.35, "orange"), Threshold(0.5, "red")),
        ),
        Panel(
            title="Breaker state changes per minute",
            description="Flapping: warning above 10 changes in 5 min, page above 5 per minute.",
            targets=(
                Target(
                    "sum by (component) (rate(circuit_breaker_state_changes_total[5m])) * 60",
                    "{{component}}",
                ),
            ),
            thresholds=(Threshold(5, "red"),),
        ),
        Panel(
            title="Gate decisions per second",
            description="Every gate decision by outcome and reason.",
            targets=(
                Target(
                    "sum by (outcome, reason) (rate(gate_decisions_total[1m]))",
                    "{{outcome}} {{reason}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            title="Gate decision latency",
            description="p50 and p99 time to a gate decision.",
            targets=(
                Target(f"histogram_quantile(0.5, {_GATE_BUCKETS})", "p50"),
                Target(f"histogram_quantile(0.99, {_GATE_BUCKETS})", "p99"),
            ),
            unit="s",
        ),
        Panel(
            title="Pre-trade checks per second",
            description="Orders checked, accepted and rejected by the first failing rule.",
            targets=(
                Target("sum(rate(bot4_risk_checks_total[1m]))", "checked"),
                Target("sum(rate(bot4_risk_accepted_total[1m]))", "accepted"),
                Target(
                    "sum by (reason) (rate(bot4_risk_rejects_total[1m]))", "rejected {{reason}}"
                ),
            ),
            unit="reqps",
            width=24,
        ),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (SLO, QUEUES, BREAKERS_GATE)
