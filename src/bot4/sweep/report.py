"""``bot4 sweep report DIR``: plots a person would rather look at than read.

Two PNGs — the equity curves of the best and worst cells by P&L, and a heatmap of the
mean P&L over the first two swept parameters (or over parameter × scenario) — and one
self-contained HTML page with both inlined as base64 and the top and bottom rows.
Deterministic: matplotlib's Agg backend, its bundled DejaVu Sans, a fixed size and dpi,
and no metadata in the PNG (no software version, no date), so the same results give the
same bytes.
"""

from __future__ import annotations

import base64
import html
import importlib
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot4.sweep.spec import SweepError
from bot4.sweep.store import METRICS, atomic_write

_SHOWN = 3  # best and worst cells drawn
_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "figure.dpi": 100.0,
    "savefig.dpi": 100.0,
    "path.simplify": False,
    "svg.hashsalt": "bot4",
}


def _pyplot() -> Any:  # noqa: ANN401 - optional module
    try:  # the sweep extra
        mpl = importlib.import_module("matplotlib")
        mpl.use("Agg", force=True)
        return importlib.import_module("matplotlib.pyplot")
    except ImportError:
        raise SweepError(
            "bot4 sweep report needs matplotlib, which is in bot4's 'sweep' extra (not installed)"
        ) from None


def load_cells(root: Path) -> list[tuple[dict[str, Any], list[float]]]:
    """Every finished cell's row and equity curve, in cell order."""
    if not (root / "sweep.json").is_file():
        raise SweepError(f"{root}: not a sweep results directory (no sweep.json)")
    cells = []
    for record in sorted((root / "cells").glob("*/cell.json")):
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            cells.append((dict(data["row"]), [float(x) for x in data["equity"]]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SweepError(f"{record}: unreadable cell record ({exc})") from None
    if not cells:
        raise SweepError(f"{root}: no finished cells to report on")
    return sorted(cells, key=lambda c: int(c[0]["cell"]))


def _png(fig: Any) -> bytes:  # noqa: ANN401 - a matplotlib Figure
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def _label(row: dict[str, Any]) -> str:
    params = ", ".join(f"{k[6:]}={row[k]}" for k in sorted(row) if k.startswith("param."))
    return f"#{row['cell']} {Path(str(row['scenario'])).stem} seed {row['seed']} {params}".strip()


def equity_png(cells: Sequence[tuple[dict[str, Any], list[float]]]) -> bytes:
    """P&L curves of the best and worst cells by final P&L (ties: lower cell first)."""
    plt = _pyplot()
    ranked = sorted(cells, key=lambda c: (-float(c[0]["pnl"]), int(c[0]["cell"])))
    best = ranked[:_SHOWN]
    worst = [c for c in ranked[-_SHOWN:] if c not in best]
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(8.0, 4.5))
        for style, group in (("-", best), ("--", worst)):
            for row, equity in group:
                pnl = [e - equity[0] for e in equity]
                ax.plot(range(len(pnl)), pnl, style, label=_label(row), linewidth=1.2)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.set_xlabel("simulated seconds")
        ax.set_ylabel("P&L (equity − start)")
        ax.set_title("Best (solid) and worst (dashed) cells by P&L")
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        data = _png(fig)
        plt.close(fig)
    return data


def _axes(cells: Sequence[tuple[dict[str, Any], list[float]]]) -> tuple[str, str]:
    params = sorted(k for k in cells[0][0] if k.startswith("param."))
    if len(params) >= 2:
        return params[0], params[1]
    return (params[0] if params else "seed"), "scenario"


def heatmap_png(cells: Sequence[tuple[dict[str, Any], list[float]]]) -> bytes:
    """Mean P&L over two axes: the first two parameters, else parameter (or seed) × scenario."""
    plt = _pyplot()
    x_key, y_key = _axes(cells)
    xs = sorted({c[0][x_key] for c in cells}, key=lambda v: (str(type(v)), v))
    ys = sorted({c[0][y_key] for c in cells}, key=lambda v: (str(type(v)), v))
    grid = [[math.nan] * len(xs) for _ in ys]
    for yi, y in enumerate(ys):
        for xi, x in enumerate(xs):
            values = [float(r["pnl"]) for r, _ in cells if r[x_key] == x and r[y_key] == y]
            if values:
                grid[yi][xi] = math.fsum(values) / len(values)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.0, 4.5))
        image = ax.imshow(grid, cmap="RdYlGn", aspect="auto", origin="lower")
        ax.set_xticks(range(len(xs)), [_tick(x) for x in xs], rotation=45, ha="right")
        ax.set_yticks(range(len(ys)), [_tick(y) for y in ys])
        ax.set_xlabel(x_key.removeprefix("param."))
        ax.set_ylabel(y_key.removeprefix("param."))
        for yi, line in enumerate(grid):
            for xi, value in enumerate(line):
                if math.isfinite(value):
                    ax.text(xi, yi, f"{value:.3g}", ha="center", va="center", fontsize=7)
        ax.set_title("Mean P&L over the other dimensions (scenarios, seeds …)")
        fig.colorbar(image, ax=ax, label="P&L")
        fig.tight_layout()
        data = _png(fig)
        plt.close(fig)
    return data


def _tick(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return Path(text).stem if text.endswith(".toml") else text


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_tick(r[c]))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(
    name: str, cells: Sequence[tuple[dict[str, Any], list[float]]], pngs: dict[str, bytes]
) -> str:
    """The self-contained HTML page: no external resource, images inlined."""
    rows = [r for r, _ in cells]
    params = sorted(k for k in rows[0] if k.startswith("param."))
    columns = ["cell", "scenario", "seed", *params, *METRICS[:-2]]
    ranked = sorted(rows, key=lambda r: (-float(r["pnl"]), int(r["cell"])))
    images = "".join(
        f'<figure><img id="{html.escape(key)}" alt="{html.escape(key)}" '
        f'src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        f"<figcaption>{html.escape(key)}</figcaption></figure>"
        for key, data in pngs.items()
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>bot4 sweep {html.escape(name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "img{max-width:100%}</style></head><body>"
        f"<h1>bot4 sweep {html.escape(name)}</h1>"
        f'<p id="summary">{len(rows)} cells</p>{images}'
        f"<h2>Best cells</h2>{_table(ranked[:10], columns)}"
        f"<h2>Worst cells</h2>{_table(ranked[-10:][::-1], columns)}"
        "</body></html>\n"
    )


def render(root: Path) -> Path:
    """Write ``equity.png``, ``heatmap.png`` and ``report.html`` into ``root``."""
    cells = load_cells(root)
    try:
        name = str(json.loads((root / "sweep.json").read_text(encoding="utf-8"))["name"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SweepError(f"{root / 'sweep.json'}: unreadable ({exc})") from None
    pngs = {"equity": equity_png(cells), "heatmap": heatmap_png(cells)}
    for key, data in pngs.items():
        atomic_write(root / f"{key}.png", data)
    target = root / "report.html"
    atomic_write(target, page(name, cells, pngs).encode())
    return target
