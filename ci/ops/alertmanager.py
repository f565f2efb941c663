"""Alertmanager routing: every alert reaches the receivers its severity demands (amtool)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ci.ops.layout import Layout, OpsError
from ci.ops.rules import Rule, load_yaml, str_map
from ci.ops.tools import failed_lines, run_tool

# --- Alertmanager ------------------------------------------------------------------------


_TEMPLATE = re.compile(r"\{\{.*?\}\}")


@dataclass(frozen=True)
class RouteCase:
    """Alert labels and the receivers Alertmanager must notify for them, in order."""

    labels: Mapping[str, str]
    receivers: tuple[str, ...]


def load_route_cases(path: Path, rules: Iterable[Rule]) -> list[RouteCase]:
    """The explicit cases in ``path`` plus one per alert, from ``severity_receivers``."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise OpsError(f"{path}: expected `severity_receivers` and `cases`")
    by_severity = data.get("severity_receivers")
    if not isinstance(by_severity, dict):
        raise OpsError(f"{path}: `severity_receivers` must map each severity to receivers")
    cases = []
    for raw in data.get("cases") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("receivers"), list):
            raise OpsError(f"{path}: every case needs `labels` and a `receivers` list")
        labels = str_map(raw.get("labels"), f"{path}: case labels")
        cases.append(RouteCase(labels, tuple(str(r) for r in raw["receivers"])))
    for rule in rules:
        if rule.kind != "alert":
            continue
        labels = {"alertname": rule.name, **(rule.labels or {})}
        # Templated values ({{ $labels.queue }}) are filled in at alert time; any value routes.
        labels = {k: _TEMPLATE.sub("x", v) for k, v in labels.items()}
        labels.setdefault("component", "any")
        severity = labels.get("severity", "")
        if severity not in by_severity:
            raise OpsError(f"{path}: no receivers for severity {severity!r} (alert {rule.name})")
        cases.append(RouteCase(labels, tuple(str(r) for r in by_severity[severity])))
    return cases


def amtool_checks(layout: Layout, amtool: str, cases: Iterable[RouteCase]) -> list[str]:
    """``amtool check-config``, then each case through ``amtool config routes test``."""
    config = str(layout.alertmanager_config)
    problems = failed_lines(run_tool([amtool, "check-config", config]), "amtool check-config")
    if problems:
        return problems
    for case in cases:
        labels = [f"{k}={v}" for k, v in sorted(case.labels.items())]
        argv = [amtool, "config", "routes", "test", f"--config.file={config}", *labels]
        result = run_tool(argv)
        got = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
        want = ",".join(case.receivers)
        if not result.ok or got != want:
            problems.append(f"route {' '.join(labels)}: expected {want}, got {got or '(none)'}")
    return problems
