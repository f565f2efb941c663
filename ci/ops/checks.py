"""Operations checks: Prometheus rules, Alertmanager routing and runbooks, checked as code.

A rule on a metric nobody exports never fires, and a runbook that names a command the
CLI does not have fails the operator at the worst moment. So every check here is made
against the real thing: ``promtool`` and ``amtool`` from Debian's ``prometheus`` and
``prometheus-alertmanager`` packages, a real Prometheus server scraping the engine
(``PrometheusServer``, used by the live test and ``python -m ci.ops live-check``), and the
engine's own argparse tree for runbook commands. Each check returns one line per problem.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from ci.errors import GateError

log = logging.getLogger(__name__)

SEVERITIES = ("page", "warning")
RUNBOOK_SECTIONS = ("## Alerts", "## Symptoms", "## Diagnose", "## Mitigate", "## Escalate")
# The ten critical runbooks (docs/runbooks/<slug>.md); the test and `check` demand each.
RUNBOOKS = (
    "breaker-flapping",
    "queue-overflow",
    "slo-burn",
    "global-fuse",
    "gate-override",
    "audit-log-verification",
    "exchange-outage",
    "rate-limit-rejects",
    "drawdown-halt",
    "image-signature-refusal",
)
TOOLS = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "alertmanager": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


class OpsError(GateError):
    """A broken ops file, a missing tool or a failed server; the message says what to do."""


@dataclass(frozen=True)
class Layout:
    """Where the ops files live, relative to the repository root."""

    root: Path

    @property
    def ops(self) -> Path:
        """The ops/ directory."""
        return self.root / "ops"

    @property
    def rule_files(self) -> list[Path]:
        """ops/rules/*.yml, sorted."""
        return sorted((self.ops / "rules").glob("*.yml"))

    @property
    def rule_tests(self) -> list[Path]:
        """ops/tests/*_test.yml (promtool unit tests), sorted."""
        return sorted((self.ops / "tests").glob("*_test.yml"))

    @property
    def prometheus_config(self) -> Path:
        """ops/prometheus.yml."""
        return self.ops / "prometheus.yml"

    @property
    def alertmanager_config(self) -> Path:
        """ops/alertmanager.yml."""
        return self.ops / "alertmanager.yml"

    @property
    def route_cases(self) -> Path:
        """ops/alertmanager-routes.yml: labels → expected receivers."""
        return self.ops / "alertmanager-routes.yml"

    @property
    def dashboards(self) -> Path:
        """ops/dashboards/ (generated JSON)."""
        return self.ops / "dashboards"

    @property
    def runbooks(self) -> Path:
        """docs/runbooks/."""
        return self.root / "docs" / "runbooks"


# --- tools -----------------------------------------------------------------------------


def find_tool(name: str, path: str | None = None) -> str:
    """The executable ``name`` on ``path`` (default $PATH), or an error naming the package."""
    found = shutil.which(name, path=path)
    if found is None:
        package = TOOLS.get(name, name)
        raise OpsError(
            f"{name} not found on PATH: install Debian's {package} package "
            f"(apt-get install -y prometheus prometheus-alertmanager)"
        )
    return found


@dataclass(frozen=True)
class ToolResult:
    """A finished tool run: its exit status and what it printed."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """Whether it exited 0."""
        return self.returncode == 0

    @property
    def output(self) -> str:
        """stdout and stderr together, stripped."""
        return f"{self.stdout}\n{self.stderr}".strip()


def run_tool(argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 120) -> ToolResult:
    """Run a tool found by ``find_tool``; a tool that cannot start or hangs is an error."""
    try:
        proc = subprocess.run(  # noqa: S603 - argv from find_tool, no shell  # nosec B603
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OpsError(f"{Path(argv[0]).name} did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise OpsError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    return ToolResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)


def _failed(result: ToolResult, what: str) -> list[str]:
    if result.ok:
        return []
    return [f"{what}: {line}" for line in result.output.splitlines() if line.strip()] or [
        f"{what}: exited {result.returncode}"
    ]


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


def _str_map(value: object, where: str) -> dict[str, str]:
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
        labels=_str_map(raw.get("labels"), f"{where}: {name} labels"),
        annotations=_str_map(raw.get("annotations"), f"{where}: {name} annotations"),
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


# --- PromQL ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
      (?P<space>\s+|\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}\[\]@])
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"offset", "bool", "inf", "nan", "atan2"}
)
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile"}
)
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise OpsError(f"cannot read PromQL at {expr[pos : pos + 20]!r} in {expr!r}")
        kind = match.lastgroup or "space"
        if kind != "space":
            tokens.append((kind, match.group()))
        pos = match.end()
    return tokens


def _skip_group(tokens: Sequence[tuple[str, str]], start: int, close: str) -> int:
    """The index after the bracket that closes the one at ``start`` (label matchers,
    ranges and grouping label lists do not nest)."""
    for index in range(start + 1, len(tokens)):
        if tokens[index][1] == close:
            return index + 1
    raise OpsError(f"unbalanced {tokens[start][1]!r} in PromQL")


def metric_names(expr: str) -> frozenset[str]:
    """The metric names a PromQL expression selects (``{__name__="x"}`` included).

    A small tokenizer, not a parser: names are identifiers that are not keywords,
    functions or aggregations (followed by ``(`` or ``by``/``without``), label matchers,
    grouping labels or durations. The live check asks Prometheus to parse each expression.
    """
    tokens = _tokens(expr)
    names: set[str] = set()
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if text == "{":
            end = _skip_group(tokens, index, "}")
            inner = tokens[index + 1 : end - 1]
            names.update(
                value[1][1:-1]
                for name, op, value in zip(inner, inner[1:], inner[2:], strict=False)
                if name[1] == "__name__" and op[1] == "=" and value[0] == "string"
            )
            index = end
        elif text == "[":
            index = _skip_group(tokens, index, "]")
        elif kind == "ident" and text in _GROUPING and following == "(":
            index = _skip_group(tokens, index + 1, ")")
        else:
            is_name = (
                kind == "ident"
                and text not in _KEYWORDS
                and following != "("
                and not (text in _AGGREGATIONS and following in ("by", "without"))
            )
            if is_name:
                names.add(text)
            index += 1
    return frozenset(names)


@dataclass(frozen=True)
class Query:
    """A PromQL expression and where it was written (for problem lines)."""

    where: str
    expr: str


def rule_queries(rules: Iterable[Rule]) -> list[Query]:
    """Every rule's expression."""
    return [Query(f"{rule.file.name}: {rule.kind} {rule.name}", rule.expr) for rule in rules]


def unknown_series(
    queries: Iterable[Query], available: Collection[str], recorded: Collection[str]
) -> list[str]:
    """One line per query that selects a series neither available (scraped) nor recorded."""
    problems = []
    for query in queries:
        missing = sorted(metric_names(query.expr) - set(available) - set(recorded))
        if missing:
            problems.append(
                f"{query.where}: selects {', '.join(missing)}, which nothing exports or records"
            )
    return problems


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
    problems += _failed(run_tool(config), "promtool check config")
    problems += _failed(run_tool([promtool, "check", "rules", *rules]), "promtool check rules")
    problems += _failed(run_tool([promtool, "test", "rules", *tests]), "promtool test rules")
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
        labels = _str_map(raw.get("labels"), f"{path}: case labels")
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
    problems = _failed(run_tool([amtool, "check-config", config]), "amtool check-config")
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


# --- runbooks ------------------------------------------------------------------------------

_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SHELL = frozenset({"sh", "shell", "bash", "console"})
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SEPARATORS = frozenset({"|", "||", "&&", ";", "&", "(", ")"})


def code_blocks(text: str, languages: Collection[str]) -> list[str]:
    """The bodies of the fenced code blocks in ``languages``."""
    return [m.group(2) for m in _FENCE.finditer(text) if m.group(1) in languages]


def shell_commands(text: str) -> list[list[str]]:
    """Every simple command in the shell blocks (``$ `` prompts, env prefixes stripped)."""
    commands: list[list[str]] = []
    for block in code_blocks(text, _SHELL):
        for raw in block.replace("\\\n", " ").splitlines():
            line = raw.strip().removeprefix("$ ").strip()
            if not line or line.startswith("#"):
                continue
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token in _SEPARATORS:
                    while words and _ENV_ASSIGNMENT.match(words[0]):
                        words.pop(0)
                    if words:
                        commands.append(words)
                    words = []
                else:
                    words.append(token)
    return commands


def promql_queries(text: str, where: str) -> list[Query]:
    """Each non-empty, non-comment line of the ``promql`` blocks is one query."""
    return [
        Query(where, line.strip())
        for block in code_blocks(text, {"promql"})
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _subcommands(parser: argparse.ArgumentParser) -> tuple[dict[str, Any], bool]:
    """The parser's subcommands and whether one is required."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices), bool(action.required)
    return {}, False


def command_problem(words: Sequence[str], parser: argparse.ArgumentParser) -> str | None:
    """Why ``words`` (after the program name) is not a command of ``parser``, or None.

    Walks the argparse tree as argparse would: options must exist on the (sub)parser
    they follow, option values are skipped, the first positional word picks a subcommand.
    """
    current, path = parser, [parser.prog]
    remaining = list(words)
    exits = False  # --help / --version end parsing early: no subcommand needed
    while remaining:
        word = remaining.pop(0)
        if word.startswith("-") and word != "-":
            option, has_value = word.split("=", 1)[0], "=" in word
            action = current._option_string_actions.get(option)
            if action is None:
                return f"`{' '.join(path)}` has no option {option}"
            exits = exits or isinstance(action, argparse._HelpAction | argparse._VersionAction)
            if action.nargs != 0 and not has_value and remaining:
                remaining.pop(0)
            continue
        choices, _ = _subcommands(current)
        if choices:
            if word not in choices:
                known = ", ".join(sorted(choices))
                return f"`{' '.join(path)} {word}`: no such command (has {known})"
            current, path = choices[word], [*path, word]
    choices, required = _subcommands(current)
    if choices and required and not exits:
        return f"`{' '.join(path)}` needs a subcommand ({', '.join(sorted(choices))})"
    return None


def check_runbooks(
    layout: Layout, rules: Iterable[Rule], parsers: Mapping[str, argparse.ArgumentParser]
) -> list[str]:
    """The ten runbooks exist with their sections; alerts and runbooks name each other;
    every command a runbook gives for a CLI in ``parsers`` (``"bot4"``, ``"python -m ci.ops"``)
    exists there with the options used."""
    problems: list[str] = []
    alerts_by_book: dict[str, set[str]] = {}
    for rule in rules:
        url = (rule.annotations or {}).get("runbook_url", "")
        if rule.kind == "alert" and url:
            alerts_by_book.setdefault(Path(url).name, set()).add(rule.name)
    books = {path.name: path for path in sorted(layout.runbooks.glob("*.md"))}
    problems.extend(
        f"docs/runbooks/{slug}.md: missing (one of the ten critical runbooks)"
        for slug in RUNBOOKS
        if f"{slug}.md" not in books
    )
    if "incident-template.md" not in books:
        problems.append("docs/runbooks/incident-template.md: missing")
    for name, path in books.items():
        text = path.read_text(encoding="utf-8")
        where = f"docs/runbooks/{name}"
        if name.removesuffix(".md") in RUNBOOKS:
            problems.extend(
                f"{where}: missing section {section!r}"
                for section in RUNBOOK_SECTIONS
                if f"\n{section}\n" not in f"\n{text}"
            )
            listed = set(re.findall(r"`([A-Z][A-Za-z]+)`", _section(text, "## Alerts")))
            expected = alerts_by_book.get(name, set())
            problems.extend(
                f"{where}: alert {alert} points here but is not listed under ## Alerts"
                for alert in sorted(expected - listed)
            )
            problems.extend(
                f"{where}: lists alert {alert}, which no rule defines with this runbook"
                for alert in sorted(listed - expected)
            )
        for words in shell_commands(text):
            problems.extend(_cli_problems(where, words, parsers))
    return problems


def _section(text: str, heading: str) -> str:
    start = text.find(f"{heading}\n")
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end >= 0 else len(text)]


def _cli_problems(
    where: str, words: Sequence[str], parsers: Mapping[str, argparse.ArgumentParser]
) -> list[str]:
    for prefix, parser in parsers.items():
        head = prefix.split()
        if list(words[: len(head)]) == head:
            problem = command_problem(words[len(head) :], parser)
            return [f"{where}: {problem}"] if problem else []
    return []


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


def free_port(host: str) -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


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


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.1
) -> None:
    """Poll ``check`` until it is true; after ``timeout`` seconds, fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise OpsError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


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


class LocalServer:
    """A server process on a loopback port, logging to a file; ``close()`` stops it by PID.

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
        startup_timeout: float = 20,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.log_path = log_path
        command = [arg.format(host=host, port=self.port) for arg in argv]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as sink:
            self.process = subprocess.Popen(  # noqa: S603 - argv from find_tool  # nosec B603
                command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.name = Path(command[0]).name
        try:
            wait_until(
                lambda: self._ready(ready_path), startup_timeout, f"{self.name} on {self.url}"
            )
        except OpsError:
            self.close()
            raise

    def _ready(self, path: str) -> bool:
        if self.process.poll() is not None:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            tail = " ".join(text.split())[-1000:]
            raise OpsError(f"{self.name} exited with status {self.process.returncode}: {tail}")
        return http_ok(f"{self.url}{path}")

    def close(self, timeout: float = 10) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        if self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def runbook_queries(layout: Layout) -> list[Query]:
    """The PromQL the runbooks tell an operator to run (``promql`` blocks)."""
    return [
        query
        for path in sorted(layout.runbooks.glob("*.md"))
        for query in promql_queries(path.read_text(encoding="utf-8"), f"docs/runbooks/{path.name}")
    ]
