from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot4.trading_engine import stats

# Critical values from standard t tables: P(T > t) = tail.
T_TABLE = [
    (1, 6.314, 0.05),
    (5, 2.015, 0.05),
    (10, 2.228, 0.025),
    (30, 2.750, 0.005),
    (120, 1.658, 0.05),
]


@pytest.mark.parametrize(("df", "t", "tail"), T_TABLE)
def test_t_tail_matches_tables(df: int, t: float, tail: float) -> None:
    assert stats.student_t_sf(t, df) == pytest.approx(tail, abs=2e-4)
    assert stats.student_t_sf(-t, df) == pytest.approx(1 - tail, abs=2e-4)


def test_t_tail_edges() -> None:
    assert stats.student_t_sf(0.0, 7) == pytest.approx(0.5)
    assert stats.student_t_sf(math.inf, 3) == 0.0
    assert stats.student_t_sf(-math.inf, 3) == 1.0
    assert stats.regularized_beta(2, 3, 0.0) == 0.0
    assert stats.regularized_beta(2, 3, 1.0) == 1.0


@given(st.floats(0.5, 50), st.floats(0.5, 50), st.floats(0.001, 0.999))
def test_beta_symmetry(a: float, b: float, x: float) -> None:
    assert stats.regularized_beta(a, b, x) == pytest.approx(
        1 - stats.regularized_beta(b, a, 1 - x), abs=1e-9
    )


def test_beta_closed_forms() -> None:
    # I_x(1, b) = 1 - (1 - x)^b and I_x(a, 1) = x^a.
    assert stats.regularized_beta(1, 3, 0.2) == pytest.approx(1 - 0.8**3, rel=1e-12)
    assert stats.regularized_beta(2.5, 1, 0.7) == pytest.approx(0.7**2.5, rel=1e-12)


def test_t_test() -> None:
    rng = np.random.default_rng(7)
    edge = rng.normal(0.5, 1.0, 200)
    noise = rng.normal(0.0, 1.0, 200)
    assert stats.t_test_positive_mean(edge) < 1e-6
    assert stats.t_test_positive_mean(noise) > 0.05
    assert stats.t_test_positive_mean(-edge) > 0.999
    assert stats.t_test_positive_mean([1.0]) == 1.0
    assert stats.t_test_positive_mean([2.0, 2.0]) == 0.0
    assert stats.t_test_positive_mean([-2.0, -2.0]) == 1.0
    # Reference value computed by hand: mean 1, sd 1, n 4 → t = 2, df 3 → p ≈ 0.0697.
    assert stats.t_test_positive_mean([0.0, 1.0, 2.0, 1.0 + math.sqrt(2 / 3) * 0]) == pytest.approx(
        stats.student_t_sf(1.0 / (float(np.std([0.0, 1.0, 2.0, 1.0], ddof=1)) / 2), 3)
    )


def test_sign_test() -> None:
    assert stats.sign_test_positive([]) == 1.0
    assert stats.sign_test_positive([0.0, 0.0]) == 1.0
    assert stats.sign_test_positive([1.0] * 10) == pytest.approx(1 / 1024)
    # 8 wins of 10: P(X ≥ 8) = (45 + 10 + 1) / 1024.
    assert stats.sign_test_positive([1.0] * 8 + [-1.0] * 2 + [0.0]) == pytest.approx(56 / 1024)
