"""Render README's benchmark table from reports/bench.json (written by benchmarks/suite.py).

Run: python benchmarks/readme_table.py [--json reports/bench.json] [--write]
Without ``--write`` the table is printed; with it, the block between the
``<!-- bench-table:begin -->`` and ``<!-- bench-table:end -->`` markers in README.md is replaced,
so the README quotes exactly what one bench run measured, misses included.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"


def fmt(value: float, unit: str) -> str:
    """Human figure: 1.23M orders/s, 45.6k signals/s, 123 ns, 14.2 ms."""
    if unit.endswith("/s"):
        return f"{value / 1e6:.2f}M {unit}" if value >= 1e6 else f"{value / 1e3:.1f}k {unit}"
    return f"{value:.2f} {unit}" if unit == "ms" else f"{value:.0f} {unit}"


def table(report: dict[str, Any]) -> str:
    """A Markdown table, one line per row of the bench run."""
    machine = report["machine"]
    lines = [
        f"Measured by `scripts/gate -s bench` (Python {machine['python']}, numpy "
        f"{machine['numpy']}, {machine['cpus']} CPUs{', --quick' if report['quick'] else ''}); "
        "ratios are against the peer timed in the same run.",
        "",
        "| row | figure | goal | met | in-run peer | ratio (floor) |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        met = {None: "–", True: "yes", False: "**no**"}[row["goal_met"]]
        if row.get("rounds_met") is not None:
            met += f" ({row['rounds_met']} of {len(row['round_ratios'])} rounds)"
        if row["ratio"] is None:
            peer, ratio = "–", "–"
        else:
            peer = f"{row['peer']}: {fmt(row['peer_value'], row['unit'])}"
            floor = "" if row["floor"] is None else f" ({row['floor']:g}×)"
            ratio = f"{row['ratio']:.2f}×{floor}"
            if row.get("round_ratios"):
                ratio = f"{row['ratio']:.2f}× worst of {len(row['round_ratios'])}{floor}"
        figure = fmt(row["value"], row["unit"])
        lines.append(
            f"| {row['title']} | {figure} | {row['goal_text']} | {met} | {peer} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "bench.json")
    parser.add_argument("--write", action="store_true", help="rewrite README.md's table")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    try:
        report = json.loads(args.json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(
            f"readme_table: cannot read {args.json}: {exc}; run scripts/gate -s bench",
            file=sys.stderr,
        )
        return 2
    rendered = table(report)
    if not args.write:
        print(rendered)
        return 0
    text = args.readme.read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        print(f"readme_table: {args.readme} needs one {BEGIN} … {END} block", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    args.readme.write_text(f"{head}{BEGIN}\n{rendered}\n{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
