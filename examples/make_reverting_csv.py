"""Write examples/reverting_quotes.csv: a seeded, mean-reverting ETH quote stream.

The mid oscillates around 2000 (an Ornstein-Uhlenbeck process: pulled back to its mean
at rate ``theta``), so a mean-reversion strategy has a real, measurable edge on it —
the market the engine demos and end-to-end tests use to exercise a gate that lets
orders through on evidence. Run: python examples/make_reverting_csv.py
"""

from __future__ import annotations

import math
import random
from pathlib import Path

SEED = 11
SECONDS = 60
STEP_MS = 50
THETA = 1.5  # mean reversion per second
SIGMA = 1.2  # price units per sqrt(second)
MEAN = 2000.0


def main() -> None:
    """Generate the CSV deterministically (same seed → same bytes)."""
    rng = random.Random(SEED)  # noqa: S311 - market simulation, not cryptography
    dt = STEP_MS / 1000.0
    x = MEAN
    rows = ["timestamp_ns,type,side,price,quantity"]
    for i in range(1, int(SECONDS * 1000 / STEP_MS) + 1):
        x += THETA * (MEAN - x) * dt + SIGMA * math.sqrt(dt) * rng.gauss(0.0, 1.0)
        mid_ticks = round(x * 100)
        t = i * STEP_MS * 1_000_000
        rows.append(f"{t},bid,,{(mid_ticks - 1) / 100:.2f},5.00")
        rows.append(f"{t},ask,,{(mid_ticks + 1) / 100:.2f},5.00")
    out = Path(__file__).with_name("reverting_quotes.csv")
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
