"""A small PromQL tokenizer: the metric names a query selects, not a parser."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from ci.ops.layout import OpsError

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
