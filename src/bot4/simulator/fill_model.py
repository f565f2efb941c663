"""How the venue fills and cancels a participant's orders beyond plain price-time matching.

Modelled on nautilus_trader's FillModel and hftbacktest's queue models, reduced to what a
book with real synthetic depth still needs:

- ``partial_fills`` on: a marketable order walks the book's depth and the rest rests (or is
  cancelled for IOC/market) and fills later as flow arrives. Off: a marketable order fills
  its whole quantity at once at the touch (infinite depth), and a resting order hit by flow
  fills completely in one report.
- ``prob_fill_at_touch``: the chance a resting participant order fills when flow reaches
  exactly its price rather than trading through it (queue ahead we cannot see).
- ``prob_slippage`` / ``slippage_ticks``: an all-at-once fill is moved against the taker by
  ``slippage_ticks`` with that probability, never beyond the order's limit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FillModel:
    """Fill behaviour; defaults are a plain, deterministic price-time matcher."""

    partial_fills: bool = True
    prob_fill_at_touch: float = 1.0
    prob_slippage: float = 0.0
    slippage_ticks: int = 1


@dataclass(frozen=True, slots=True)
class CancelModel:
    """Cancels that go wrong, as on a real venue.

    ``late_probability``: a cancel arrives after the order filled; the order fills in full
    at its limit (against liquidity the participant could not see) and the cancel is
    rejected ``too_late_to_cancel``. ``pull_probability``: a resting order is pulled by the
    venue after an exponential delay with mean ``pull_mean_s`` and reported ``venue_pulled``.
    """

    late_probability: float = 0.0
    pull_probability: float = 0.0
    pull_mean_s: float = 1.0
