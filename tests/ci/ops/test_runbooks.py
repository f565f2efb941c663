"""Runbooks: the ten exist with their sections, every alert links one that lists it, and
every ``bot4 …`` / ``python -m ci.ops …`` command in them exists in the real CLI."""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import pytest

from bot4.cli import build_parser
from ci.ops import cli as ops_cli
from ci.ops.layout import RUNBOOKS, Layout
from ci.ops.promql import Query
from ci.ops.rules import load_rules
from ci.ops.runbooks import (
    check_runbooks,
    command_problem,
    promql_queries,
    runbook_queries,
    shell_commands,
)

ROOT = Path(__file__).resolve().parents[3]


def _parsers() -> dict[str, argparse.ArgumentParser]:
    return {"bot4": build_parser(), "python -m ci.ops": ops_cli.build_parser()}


def test_the_repository_runbooks(layout: Layout) -> None:
    rules = load_rules(layout.rule_files)
    assert check_runbooks(layout, rules, _parsers()) == []
    assert len(RUNBOOKS) == 10
    for rule in rules:
        if rule.kind == "alert":
            url = (rule.annotations or {})["runbook_url"]
            assert (ROOT / url).is_file(), rule.name
            assert url.startswith("docs/runbooks/")


def test_runbooks_use_real_bot4_commands(layout: Layout) -> None:
    used = {
        " ".join(words[:3])
        for path in layout.runbooks.glob("*.md")
        for words in shell_commands(path.read_text(encoding="utf-8"))
        if words[0] == "bot4"
    }
    assert {"bot4 doctor", "bot4 audit verify"} <= {u.split(" /")[0].split(" --")[0] for u in used}


def test_shell_commands_are_split_like_a_shell() -> None:
    text = """intro `bot4 nope` inline is ignored
```sh
PROM=http://localhost:9090
$ BOT4_FORCE_SCALAR=1 bot4 doctor --json | jq .path
curl -s "$PROM/api/v1/query" --data-urlencode 'query=up' && bot4 audit verify a.log  # note
# a comment line
bot4 audit verify \\
  --public-key k.pem a.log
```
```promql
up
```
```
bot4 ignored-no-language
```
"""
    assert shell_commands(text) == [
        ["bot4", "doctor", "--json"],
        ["jq", ".path"],
        ["curl", "-s", "$PROM/api/v1/query", "--data-urlencode", "query=up"],
        ["bot4", "audit", "verify", "a.log"],
        ["bot4", "audit", "verify", "--public-key", "k.pem", "a.log"],
    ]
    assert promql_queries(text, "w") == [Query("w", "up")]


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        (["doctor"], None),
        (["doctor", "--json"], None),
        (["audit", "verify", "--hmac-key-file=k", "a.log"], None),
        (["--verbose", "doctor"], None),
        ([], r"`bot4` needs a subcommand \(audit, chaos, doctor\b.*\)"),
        (["-v"], r"`bot4` needs a subcommand \(audit, chaos, doctor\b.*\)"),
        (["--version"], None),
        (["teleport", "now"], r"`bot4 teleport`: no such command \(has audit, chaos, doctor\b.*\)"),
        (
            ["audit"],
            r"`bot4 audit` needs a subcommand "
            r"\(check-proof, consistency, head, keygen, prove, verify\)",
        ),
        (["audit", "--help"], None),
        (
            ["audit", "replay"],
            r"`bot4 audit replay`: no such command \(has check-proof, .*verify\)",
        ),
        (["doctor", "--yaml"], "`bot4 doctor` has no option --yaml"),
        (["audit", "verify", "-", "--public-key", "k"], None),
        (["audit", "verify", "--public-key", "doctor", "a.log"], None),
    ],
)
def test_command_problem(words: list[str], problem: str | None) -> None:
    parser = build_parser()
    parser.prog = "bot4"
    found = command_problem(words, parser)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert re.fullmatch(problem, found), found


def test_command_problem_skips_option_values() -> None:
    parser = ops_cli.build_parser()
    assert command_problem(["--root", ".", "check", "--cli", "m:f"], parser) is None
    assert command_problem(["--root=.", "dashboards", "--write"], parser) is None
    assert command_problem(["--root", "."], parser) == (
        "`python -m ci.ops` needs a subcommand (check, dashboards, live-check, render-config)"
    )


def _copy_layout(tmp_path: Path, layout: Layout) -> Layout:
    shutil.copytree(layout.runbooks, tmp_path / "docs" / "runbooks")
    return Layout(tmp_path)


def test_broken_runbooks_are_reported(tmp_path: Path, layout: Layout) -> None:
    rules = load_rules(layout.rule_files)
    copy = _copy_layout(tmp_path, layout)
    (copy.runbooks / "drawdown-halt.md").unlink()
    (copy.runbooks / "incident-template.md").unlink()
    flapping = copy.runbooks / "breaker-flapping.md"
    text = flapping.read_text(encoding="utf-8")
    text = text.replace("## Escalate\n", "## Escalation\n")
    text = text.replace("- `CircuitBreakerFlappingFast`", "- `QueueEmergency`")
    text += "\n```sh\nbot4 teleport --seed 1\npython -m ci.ops check --fast\n```\n"
    flapping.write_text(text, encoding="utf-8")
    problems = check_runbooks(copy, rules, _parsers())
    assert re.fullmatch(
        r"docs/runbooks/breaker-flapping.md: `bot4 teleport`: no such command \(has audit, .*\)",
        problems.pop(5),
    )
    assert problems == [
        "docs/runbooks/drawdown-halt.md: missing (one of the ten critical runbooks)",
        "docs/runbooks/incident-template.md: missing",
        "docs/runbooks/breaker-flapping.md: missing section '## Escalate'",
        "docs/runbooks/breaker-flapping.md: alert CircuitBreakerFlappingFast points here but is "
        "not listed under ## Alerts",
        "docs/runbooks/breaker-flapping.md: lists alert QueueEmergency, which no rule defines "
        "with this runbook",
        "docs/runbooks/breaker-flapping.md: `python -m ci.ops check` has no option --fast",
    ]


def test_a_runbook_without_an_alerts_section(tmp_path: Path, layout: Layout) -> None:
    copy = _copy_layout(tmp_path, layout)
    path = copy.runbooks / "global-fuse.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("## Alerts\n", "## Alarms\n"), encoding="utf-8")
    problems = check_runbooks(copy, load_rules(layout.rule_files), _parsers())
    assert problems == [
        "docs/runbooks/global-fuse.md: missing section '## Alerts'",
        "docs/runbooks/global-fuse.md: alert GlobalFuseTripped points here but is not listed "
        "under ## Alerts",
    ]


def test_runbook_queries_are_collected(layout: Layout) -> None:
    queries = runbook_queries(layout)
    assert {q.where for q in queries} >= {
        f"docs/runbooks/{s}.md" for s in ("slo-burn", "global-fuse")
    }
    assert all(q.expr and not q.expr.startswith("#") for q in queries)
