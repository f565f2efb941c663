"""Rule files, PromQL name extraction and the promtool checks, against the real promtool."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ci.ops.layout import Layout, OpsError
from ci.ops.promql import Query, metric_names, unknown_series
from ci.ops.rules import (
    check_alert_metadata,
    load_rules,
    load_yaml,
    promtool_checks,
    untested_rules,
)
from ci.ops.tools import failed_lines, find_tool, run_tool

ROOT = Path(__file__).resolve().parents[3]


def _layout(tmp_path: Path, rules: str, test: str | None = None) -> Layout:
    (tmp_path / "ops" / "rules").mkdir(parents=True)
    (tmp_path / "ops" / "tests").mkdir()
    (tmp_path / "ops" / "rules" / "r.yml").write_text(rules, encoding="utf-8")
    if test is not None:
        (tmp_path / "ops" / "tests" / "r_test.yml").write_text(test, encoding="utf-8")
    (tmp_path / "ops" / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\nrule_files: [rules/*.yml]\n", encoding="utf-8"
    )
    return Layout(tmp_path)


RULES = """groups:
  - name: g
    rules:
      - record: pressure
        expr: 100 * queue_items / queue_capacity
      - alert: Full
        expr: pressure > 80
        for: 30s
        labels: {severity: warning}
        annotations: {summary: s, description: d, runbook_url: docs/runbooks/queue-overflow.md}
"""

TEST = """rule_files: [../rules/r.yml]
group_eval_order: [g]
evaluation_interval: 1s
tests:
  - interval: 1s
    input_series:
      - {series: 'queue_items{queue="q"}', values: "81x60"}
      - {series: 'queue_capacity{queue="q"}', values: "100x60"}
    alert_rule_test:
      - eval_time: 40s
        alertname: Full
        exp_alerts: %s
"""

FIRING = """
          - exp_labels: {severity: warning, queue: q}
            exp_annotations:
              {summary: s, description: d, runbook_url: docs/runbooks/queue-overflow.md}
"""


def test_every_repository_rule_is_unit_tested_and_documented(layout: Layout) -> None:
    # promtool check/test over the repository runs in test_ops_cli (python -m ci.ops check).
    rules = load_rules(layout.rule_files)
    assert {r.name for r in rules} >= {
        "slo_burn_rate_1m",
        "queue_depth_pressure",
        "SLOBurnRateHigh",
        "QueueBackpressure",
        "CircuitBreakerFlapping",
        "QueueEmergency",
        "GlobalFuseTripped",
        "GateOverrideUsed",
    }
    assert untested_rules(layout, rules) == []
    assert check_alert_metadata(rules, layout.root) == []


def test_the_issue_thresholds_are_the_ones_written(layout: Layout) -> None:
    exprs = {r.name: (r.expr, r.duration) for r in load_rules(layout.rule_files)}
    assert exprs["SLOBurnRateHigh"] == ("slo_burn_rate_1m > 0.001", "1m")
    assert exprs["QueueBackpressure"] == ("queue_depth_pressure > 80", "30s")
    assert exprs["QueueEmergency"] == ("queue_depth_pressure > 95", "1m")
    assert "14.4 * 0.001" in exprs["SLOErrorBudgetBurnFast"][0]
    assert "6 * 0.001" in exprs["SLOErrorBudgetBurnMedium"][0]
    assert metric_names(exprs["SLOErrorBudgetBurnSlow"][0]) == {
        "slo_burn_rate_3d",
        "slo_burn_rate_6h",
    }


def test_a_failing_unit_test_is_reported_with_promtools_words(
    tmp_path: Path, promtool: str
) -> None:
    layout = _layout(tmp_path, RULES, TEST % "[]")
    problems = promtool_checks(layout, promtool)
    assert problems
    assert all(p.startswith("promtool test rules: ") for p in problems)
    assert any("FAILED" in p for p in problems)


def test_a_passing_unit_test_and_a_broken_rule(tmp_path: Path, promtool: str) -> None:
    layout = _layout(tmp_path, RULES, TEST % FIRING)
    assert promtool_checks(layout, promtool) == []
    (layout.ops / "rules" / "r.yml").write_text(
        RULES.replace("pressure > 80", "pressure >"), encoding="utf-8"
    )
    problems = promtool_checks(layout, promtool)
    assert any(p.startswith("promtool check rules: ") for p in problems)


def test_missing_rules_or_tests_are_reported(tmp_path: Path, promtool: str) -> None:
    layout = _layout(tmp_path, RULES)
    (layout.ops / "rules" / "r.yml").unlink()
    assert promtool_checks(layout, promtool) == [
        f"{layout.ops / 'rules'}: no rule files (*.yml)",
        f"{layout.ops / 'tests'}: no promtool unit tests (*_test.yml)",
    ]


def test_untested_rules_and_bad_metadata(tmp_path: Path) -> None:
    rules_text = (
        RULES
        + """      - alert: Sloppy
        expr: up == 0
        labels: {severity: critical}
        annotations: {runbook_url: docs/runbooks/nope.md}
"""
    )
    layout = _layout(tmp_path, rules_text, TEST % "[]")
    rules = load_rules(layout.rule_files)
    assert untested_rules(layout, rules) == [
        "r.yml: record pressure has no promtool unit test",
        "r.yml: alert Sloppy has no promtool unit test",
    ]
    assert check_alert_metadata(rules, ROOT) == [
        "r.yml: alert Sloppy: severity must be one of page, warning",
        "r.yml: alert Sloppy: missing annotation summary",
        "r.yml: alert Sloppy: missing annotation description",
        "r.yml: alert Sloppy: runbook_url docs/runbooks/nope.md is not a file in the repository",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("groups: [", "not valid YAML"),
        ("rules: []", "top-level `groups` list"),
        ("groups: [{name: g}]", "a `rules` list"),
        ("groups: [{name: g, rules: [42]}]", "must be a mapping"),
        ("groups: [{name: g, rules: [{alert: A}]}]", "string `alert` or `record` and `expr`"),
        ("groups: [{name: g, rules: [{alert: A, expr: up, labels: [x]}]}]", "mapping of strings"),
    ],
)
def test_malformed_rule_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OpsError, match=message) as info:
        load_rules([path])
    assert "\n" not in str(info.value)


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OpsError, match="cannot read"):
        load_yaml(tmp_path / "missing.yml")


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ("rate(errors_total[5m])", {"errors_total"}),
        (
            "sum by (component) (rate(errors_total[1m]))"
            " / ignoring(component) group_left() sum(rate(requests_total[1m]))",
            {"errors_total", "requests_total"},
        ),
        (
            'gate_decisions_total{reason="operator_override", outcome!~"b.*"}',
            {"gate_decisions_total"},
        ),
        ('{__name__="queue_items", queue="q"}', {"queue_items"}),
        ('{__name__=~"queue_.*"}', set()),
        ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))", {"x_bucket"}),
        ("sum without (instance) (a) and on (job) b or c unless d", {"a", "b", "c", "d"}),
        ("max_over_time(a[1h:5m] offset 1d) > bool 2", {"a"}),
        ("topk(3, a) * 1e3 + 0x1f - inf", {"a"}),
        ('label_replace(a, "dst", "$1", "src", "(.*)")', {"a"}),
        ("a @ start()", {"a"}),
        ('count_values without (x) ("v", a)', {"a"}),
        ("job:errors:rate5m > 0  # recorded", {"job:errors:rate5m"}),
        ("sum(a) by (x)", {"a"}),
        ("atan2(a, b)", {"a", "b"}),
        ("a ^ 2 % 3 != 0", {"a"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_metric_names_rejects_what_it_cannot_read() -> None:
    with pytest.raises(OpsError, match="unbalanced"):
        metric_names("rate(a[5m)")
    with pytest.raises(OpsError, match="unbalanced"):
        metric_names('a{x="1"')
    with pytest.raises(OpsError, match="cannot read PromQL"):
        metric_names("a ! b")


def test_unknown_series() -> None:
    queries = [Query("w", "a + b"), Query("v", "c")]
    assert unknown_series(queries, {"a"}, {"c"}) == [
        "w: selects b, which nothing exports or records"
    ]


def test_find_tool_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(OpsError, match="install Debian's prometheus-alertmanager package"):
        find_tool("amtool", path=str(tmp_path))
    with pytest.raises(OpsError, match="install Debian's prometheus package"):
        find_tool("promtool", path=str(tmp_path))


def test_run_tool_failures_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(OpsError, match="cannot run"):
        run_tool([str(tmp_path / "nope")])
    with pytest.raises(OpsError, match=r"did not finish within 0\.2s"):
        run_tool([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)
    result = run_tool([sys.executable, "-c", "import sys; print('o'); sys.exit(3)"])
    assert (result.ok, result.returncode, result.output) == (False, 3, "o")
    silent = run_tool([sys.executable, "-c", "import sys; sys.exit(4)"])
    assert failed_lines(silent, "x") == ["x: exited 4"]
