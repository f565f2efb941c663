"""Prometheus rules: load and validate them, their alert metadata, promtool checks and tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from ci.ops.layout import SEVERITIES, Layout, OpsError
from ci.ops.promql import Query, metric_names
from ci.ops.tools import failed_lines, run_tool

# --- rules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One recording or alerting rule, as written in a rule file."""

    file: Path
    group: str
    kind: Literal["alert", "record"]
    name: str
    expr: str
    duration: str = "0s"
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None


def load_yaml(path: Path) -> Any:  # noqa: ANN401 - parsed YAML, validated by the caller
    """Parse a YAML file; unreadable or malformed files are one-line errors."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OpsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise OpsError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None


def str_map(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise OpsError(f"{where}: expected a mapping of strings to strings")
    return dict(value)


def _rule(path: Path, group: str, raw: object) -> Rule:
    where = f"{path}: group {group}"
    if not isinstance(raw, dict):
        raise OpsError(f"{where}: every rule must be a mapping")
    kind: Literal["alert", "record"] = "alert" if "alert" in raw else "record"
    name, expr = raw.get(kind), raw.get("expr")
    if not isinstance(name, str) or not isinstance(expr, str):
        raise OpsError(f"{where}: every rule needs a string `alert` or `record` and `expr`")
    return Rule(
        file=path,
        group=group,
        kind=kind,
        name=name,
        expr=expr.strip(),
        duration=str(raw.get("for", "0s")),
        labels=str_map(raw.get("labels"), f"{where}: {name} labels"),
        annotations=str_map(raw.get("annotations"), f"{where}: {name} annotations"),
    )


def load_rules(paths: Iterable[Path]) -> tuple[Rule, ...]:
    """Every rule in the given Prometheus rule files, in file order."""
    rules: list[Rule] = []
    for path in paths:
        data = load_yaml(path)
        groups = data.get("groups") if isinstance(data, dict) else None
        if not isinstance(groups, list):
            raise OpsError(f"{path}: a rule file needs a top-level `groups` list")
        for group in groups:
            if not isinstance(group, dict) or not isinstance(group.get("rules"), list):
                raise OpsError(f"{path}: every group needs a `name` and a `rules` list")
            name = str(group.get("name"))
            rules.extend(_rule(path, name, raw) for raw in group["rules"])
    return tuple(rules)


def recorded_names(rules: Iterable[Rule]) -> frozenset[str]:
    """The series the recording rules define."""
    return frozenset(rule.name for rule in rules if rule.kind == "record")


# --- rule metadata and promtool ----------------------------------------------------------


def check_alert_metadata(rules: Iterable[Rule], root: Path) -> list[str]:
    """Every alert has a known severity, a summary, a description and a runbook that exists."""
    problems: list[str] = []
    for rule in rules:
        if rule.kind != "alert":
            continue
        where = f"{rule.file.name}: alert {rule.name}"
        labels, notes = rule.labels or {}, rule.annotations or {}
        if labels.get("severity") not in SEVERITIES:
            problems.append(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
        problems.extend(
            f"{where}: missing annotation {key}"
            for key in ("summary", "description", "runbook_url")
            if not notes.get(key)
        )
        url = notes.get("runbook_url")
        if url and not (root / url).is_file():
            problems.append(f"{where}: runbook_url {url} is not a file in the repository")
    return problems


def promtool_checks(layout: Layout, promtool: str) -> list[str]:
    """``promtool check config``, ``check rules`` and ``test rules`` over ops/."""
    rules = [str(path) for path in layout.rule_files]
    tests = [str(path) for path in layout.rule_tests]
    problems: list[str] = []
    if not rules:
        problems.append(f"{layout.ops / 'rules'}: no rule files (*.yml)")
    if not tests:
        problems.append(f"{layout.ops / 'tests'}: no promtool unit tests (*_test.yml)")
    if problems:
        return problems
    config = [promtool, "check", "config", str(layout.prometheus_config)]
    problems += failed_lines(run_tool(config), "promtool check config")
    problems += failed_lines(run_tool([promtool, "check", "rules", *rules]), "promtool check rules")
    problems += failed_lines(run_tool([promtool, "test", "rules", *tests]), "promtool test rules")
    return problems


def untested_rules(layout: Layout, rules: Iterable[Rule]) -> list[str]:
    """Rules that no promtool unit test names (an alertname or a recorded series)."""
    tested: set[str] = set()
    for path in layout.rule_tests:
        data = load_yaml(path)
        for case in data.get("tests", []) if isinstance(data, dict) else []:
            tested.update(t.get("alertname", "") for t in case.get("alert_rule_test", []))
            for t in case.get("promql_expr_test", []):
                tested.update(metric_names(t.get("expr", "")))
    return [
        f"{rule.file.name}: {rule.kind} {rule.name} has no promtool unit test"
        for rule in rules
        if rule.name not in tested
    ]


def rule_queries(rules: Iterable[Rule]) -> list[Query]:
    """Every rule's expression."""
    return [Query(f"{rule.file.name}: {rule.kind} {rule.name}", rule.expr) for rule in rules]
