"""Ours against a peer, timed in alternation: best-of-N per side, and rounds of that.

Alternating (ours, peer, ours, peer, …) rather than all of ours then all of the peer
keeps a change in the machine's load from landing on one side of the ratio only. Used
by ``benchmarks/suite.py`` (the README's table) and the per-area benches that time the
same rows (``benchmarks/risk/bench_risk.py``), so both report one measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


def best(fn: Callable[[], object], repeat: int) -> float:
    """Least disturbed wall time of one call (seconds)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def best_pair(
    ours: Callable[[], object], peer: Callable[[], object], repeat: int, peer_repeat: int = 0
) -> tuple[float, float]:
    """Least disturbed wall times of ours and the peer (seconds), timed in alternation;
    the peer ``peer_repeat`` times when given (a slow peer), else ``repeat`` times."""
    t_ours, t_peer = float("inf"), float("inf")
    for k in range(max(repeat, peer_repeat or repeat)):
        if k < repeat:
            t_ours = min(t_ours, best(ours, 1))
        if k < (peer_repeat or repeat):
            t_peer = min(t_peer, best(peer, 1))
    return t_ours, t_peer


@dataclass(frozen=True)
class Rounds:
    """``best_pair`` run ``len(times)`` times: a goal such as "no slower in 5 of 5" is
    judged on every round, so one lucky round cannot carry it."""

    times: tuple[tuple[float, float], ...]  # (ours, peer) seconds per round

    @property
    def ratios(self) -> tuple[float, ...]:
        """Peer time / ours per round (> 1: ours is faster)."""
        return tuple(theirs / ours for ours, theirs in self.times)

    @property
    def worst(self) -> tuple[float, float]:
        """The (ours, peer) times of the round with the lowest ratio."""
        ratios = self.ratios
        return self.times[ratios.index(min(ratios))]

    def met(self, goal: float) -> int:
        """How many rounds have a ratio of at least ``goal``."""
        return sum(r >= goal for r in self.ratios)


def rounds(
    ours: Callable[[], object], peer: Callable[[], object], repeat: int, count: int
) -> Rounds:
    """``count`` rounds of :func:`best_pair` (``repeat`` calls per side each)."""
    return Rounds(tuple(best_pair(ours, peer, repeat) for _ in range(count)))
