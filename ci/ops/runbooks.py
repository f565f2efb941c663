"""Runbooks as code: their sections, the commands and PromQL they tell an operator to run."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ci.ops.layout import RUNBOOK_SECTIONS, RUNBOOKS, Layout
from ci.ops.promql import Query
from ci.ops.rules import Rule

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


def runbook_queries(layout: Layout) -> list[Query]:
    """The PromQL the runbooks tell an operator to run (``promql`` blocks)."""
    return [
        query
        for path in sorted(layout.runbooks.glob("*.md"))
        for query in promql_queries(path.read_text(encoding="utf-8"), f"docs/runbooks/{path.name}")
    ]
