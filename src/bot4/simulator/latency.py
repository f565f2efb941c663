"""Latency distributions for each message type: constant, normal, log-normal, empirical.

Scenario values are in microseconds (what people quote for venue latency); samples are
integer nanoseconds, clamped at zero so a wide normal never sends a message back in time.
Sampling uses the caller's seeded ``random.Random``: per-message numpy calls would cost
more than the rest of the event.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bot4.simulator.errors import SimulatorError

_NS_PER_US = 1_000


class LatencyKind(StrEnum):
    """The family of a latency distribution."""

    CONSTANT = "constant"
    NORMAL = "normal"
    LOGNORMAL = "lognormal"
    EMPIRICAL = "empirical"


def latency_problem(
    kind: LatencyKind,
    value: float,
    mean: float,
    sigma: float,
    samples: tuple[float, ...],
    mu: float = 0.0,
) -> str | None:
    """What is wrong with these parameters, phrased ``field must be …, got …``; None if fine."""
    if not all(math.isfinite(x) for x in (value, mean, sigma, mu, *samples)):
        return "parameters must be finite numbers"
    if value < 0:
        return f"value must be ≥ 0, got {value:g}"
    if mean < 0:
        return f"mean must be ≥ 0, got {mean:g}"
    if sigma < 0:
        return f"sigma must be ≥ 0, got {sigma:g}"
    if kind is LatencyKind.EMPIRICAL:
        if not samples:
            return "samples must list at least one latency"
        negative = [x for x in samples if x < 0]
        if negative:
            return f"samples must be ≥ 0, got {negative[0]:g}"
    return None


@dataclass(frozen=True, slots=True)
class LatencyDistribution:
    """One message type's latency, in microseconds.

    - constant: ``value``
    - normal: ``mean``, ``sigma`` (clamped at 0)
    - lognormal: ``mu``, ``sigma`` of the natural log of the latency in microseconds
    - empirical: uniform draws from ``samples``
    """

    kind: LatencyKind = LatencyKind.CONSTANT
    value: float = 0.0
    mean: float = 0.0
    sigma: float = 0.0
    mu: float = 0.0
    samples: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        problem = latency_problem(
            self.kind, self.value, self.mean, self.sigma, self.samples, self.mu
        )
        if problem is not None:
            raise SimulatorError(f"latency {problem}")

    def sampler(self, rng: random.Random) -> Callable[[], int]:
        """A zero-argument function returning one latency in ns (≥ 0) per call."""
        kind = self.kind
        if kind is LatencyKind.CONSTANT:
            fixed = round(self.value * _NS_PER_US)
            return lambda: fixed
        if kind is LatencyKind.NORMAL:
            mean, sigma, gauss = self.mean, self.sigma, rng.gauss
            return lambda: max(0, round(gauss(mean, sigma) * _NS_PER_US))
        if kind is LatencyKind.LOGNORMAL:
            mu, sigma, lognorm = self.mu, self.sigma, rng.lognormvariate
            return lambda: round(lognorm(mu, sigma) * _NS_PER_US)
        values = tuple(round(s * _NS_PER_US) for s in self.samples)
        choice = rng.choice
        return lambda: choice(values)

    def describe(self) -> str:
        """Short human form for summaries."""
        if self.kind is LatencyKind.CONSTANT:
            return f"constant {self.value:g}µs"
        if self.kind is LatencyKind.NORMAL:
            return f"normal mean={self.mean:g}µs sigma={self.sigma:g}µs"
        if self.kind is LatencyKind.LOGNORMAL:
            return f"lognormal mu={self.mu:g} sigma={self.sigma:g}"
        return f"empirical n={len(self.samples)}"


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Latency per message type: requests to the venue, reports back, and market data."""

    submit: LatencyDistribution = LatencyDistribution()
    cancel: LatencyDistribution = LatencyDistribution()
    ack: LatencyDistribution = LatencyDistribution()
    market_data: LatencyDistribution = LatencyDistribution()
