"""Significance tests for a strategy's edge, with numpy and the standard library only.

The gate lets a signal through only when the strategy's recent outcomes show an edge
that chance is unlikely to explain. Two one-sided tests are offered: Student's t on the
per-trade returns (uses their size) and an exact binomial sign test on wins vs losses
(robust to fat tails). Both return the p-value of "mean/median outcome ≤ 0".
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITER = 300


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz's method)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITER + 1):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 ≤ x ≤ 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


def t_test_positive_mean(outcomes: npt.ArrayLike) -> float:
    """One-sided p-value of H0: mean ≤ 0 against H1: mean > 0 (1.0 when undecidable)."""
    x = np.asarray(outcomes, dtype=np.float64)
    n = x.size
    if n < 2:
        return 1.0
    mean = float(x.mean())
    sd = float(x.std(ddof=1))
    if sd == 0.0:
        return 0.0 if mean > 0 else 1.0
    t = mean / (sd / math.sqrt(n))
    return student_t_sf(t, n - 1)


def sign_test_positive(outcomes: npt.ArrayLike) -> float:
    """Exact one-sided binomial p-value that wins outnumber losses (ties dropped)."""
    x = np.asarray(outcomes, dtype=np.float64)
    wins = int(np.count_nonzero(x > 0))
    n = wins + int(np.count_nonzero(x < 0))
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(wins, n + 1))
    return tail / 2.0**n
