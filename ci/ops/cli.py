"""``python -m ci.ops``: the ops checks as commands (``nox -s ops`` runs ``check``).

Exit 0 when everything holds, 1 with one line per problem, 2 on bad usage; a missing
tool or a broken file is one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ci.errors import run_command
from ci.ops import dashboards as ops_dashboards
from ci.ops.alertmanager import amtool_checks, load_route_cases
from ci.ops.layout import Layout, OpsError
from ci.ops.live import PrometheusApi, live_problems, render_prometheus_config
from ci.ops.rules import (
    check_alert_metadata,
    load_rules,
    promtool_checks,
    recorded_names,
    rule_queries,
    untested_rules,
)
from ci.ops.runbooks import check_runbooks, runbook_queries
from ci.ops.tools import find_tool

DEFAULT_CLI = "bot4.cli:build_parser"


def _err(message: str) -> None:
    print(f"ci.ops: error: {message}", file=sys.stderr)


def load_parser(spec: str) -> argparse.ArgumentParser:
    """The argparse tree of a CLI, from ``module:function`` (e.g. bot4.cli:build_parser)."""
    module_name, sep, function = spec.partition(":")
    if not sep or not module_name or not function:
        raise OpsError(f"--cli expects MODULE:FUNCTION, got {spec!r}")
    try:
        factory: Callable[[], argparse.ArgumentParser] = getattr(
            importlib.import_module(module_name), function
        )
    except (ImportError, AttributeError) as exc:
        raise OpsError(f"--cli {spec}: cannot load ({exc})") from None
    return factory()


def parsers(spec: str) -> dict[str, argparse.ArgumentParser]:
    """The CLIs runbook commands are checked against: bot4 and this one."""
    return {"bot4": load_parser(spec), "python -m ci.ops": build_parser()}


def _report(problems: Sequence[str], success: str) -> int:
    for problem in problems:
        _err(problem)
    if problems:
        _err(f"{len(problems)} problem(s)")
        return 1
    print(success)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Rules, rule unit tests, Alertmanager routing, dashboards and runbooks (no server)."""
    layout = Layout(Path(args.root).resolve())
    clis = parsers(args.cli)
    rules = load_rules(layout.rule_files)
    problems = promtool_checks(layout, find_tool("promtool"))
    problems += untested_rules(layout, rules)
    problems += check_alert_metadata(rules, layout.root)
    cases = load_route_cases(layout.route_cases, rules)
    problems += amtool_checks(layout, find_tool("amtool"), cases)
    problems += ops_dashboards.drift(ops_dashboards.DASHBOARDS, layout.dashboards)
    problems += check_runbooks(layout, rules, clis)
    alerts = sum(rule.kind == "alert" for rule in rules)
    return _report(
        problems,
        f"ops: {len(rules)} rules ({alerts} alerts) checked and unit-tested, "
        f"{len(cases)} routes, {len(ops_dashboards.DASHBOARDS)} dashboards, runbooks ok",
    )


def cmd_dashboards(args: argparse.Namespace) -> int:
    """Regenerate ops/dashboards/*.json (--write) or fail if they drifted (default)."""
    directory = Layout(Path(args.root).resolve()).dashboards
    if args.write:
        for path in ops_dashboards.write(ops_dashboards.DASHBOARDS, directory):
            print(f"wrote {path}")
        return 0
    problems = ops_dashboards.drift(ops_dashboards.DASHBOARDS, directory)
    return _report(problems, f"dashboards: {directory} matches the generator")


def cmd_render_config(args: argparse.Namespace) -> int:
    """Print ops/prometheus.yml scraping TARGET, with absolute rule paths (for a test server)."""
    text = render_prometheus_config(Layout(Path(args.root).resolve()), args.target)
    if args.out:
        out = Path(args.out)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    else:
        print(text, end="")
    return 0


def cmd_live_check(args: argparse.Namespace) -> int:
    """Against a Prometheus that scrapes the engine: rule, dashboard and runbook queries
    parse and select only scraped or recorded series."""
    layout = Layout(Path(args.root).resolve())
    rules = load_rules(layout.rule_files)
    api = PrometheusApi(args.prometheus)
    queries = [
        *rule_queries(rules),
        *ops_dashboards.queries(ops_dashboards.DASHBOARDS),
        *runbook_queries(layout),
    ]
    problems = [] if api.targets_up() else [f"{args.prometheus}: not every target is up"]
    problems += live_problems(api, queries, recorded_names(rules))
    return _report(problems, f"live check: {len(queries)} queries parse and select live series")


def build_parser() -> argparse.ArgumentParser:
    """The parser for every ops command."""
    parser = argparse.ArgumentParser(prog="python -m ci.ops", description=__doc__)
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check", help=cmd_check.__doc__)
    p.add_argument("--cli", default=DEFAULT_CLI, help=f"CLI runbooks use (default {DEFAULT_CLI})")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("dashboards", help=cmd_dashboards.__doc__)
    p.add_argument("--write", action="store_true", help="write the JSON instead of checking it")
    p.set_defaults(func=cmd_dashboards)

    p = sub.add_parser("render-config", help=cmd_render_config.__doc__)
    p.add_argument("--target", required=True, help="HOST:PORT of the engine's /metrics")
    p.add_argument("--out", help="write here instead of stdout")
    p.set_defaults(func=cmd_render_config)

    p = sub.add_parser("live-check", help=cmd_live_check.__doc__)
    p.add_argument("--prometheus", required=True, help="Prometheus URL, e.g. http://localhost:9090")
    p.set_defaults(func=cmd_live_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; GateError becomes a one-line message and exit status 1."""
    args = build_parser().parse_args(argv)
    return run_command(args, _err)
