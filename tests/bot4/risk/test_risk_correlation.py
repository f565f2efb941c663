"""Correlation: vector vs scalar vs np.corrcoef, constant columns, input validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bot4.risk import (
    RiskError,
    correlation,
    correlation_matrix,
    correlation_scalar,
    correlation_vector,
    covariance_matrix,
)

# returns on a 1/64 grid, with some constant columns forced in
returns_arrays = st.integers(2, 40).flatmap(
    lambda t: st.integers(1, 8).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.int64, (t, n), elements=st.integers(-64, 64)),
            st.lists(st.booleans(), min_size=n, max_size=n),
            st.integers(-5, 5),
        )
    )
)


@settings(max_examples=150)
@given(returns_arrays)
def test_vector_and_scalar_agree(drawn: tuple[np.ndarray, list[bool], int]) -> None:
    grid, constant, level = drawn
    returns = grid / 64.0
    returns[:, np.array(constant)] = level / 7.0
    vector = correlation_vector(returns)
    scalar = correlation_scalar(returns)
    np.testing.assert_allclose(vector, scalar, rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(vector))
    assert np.array_equal(np.diag(vector), np.ones(returns.shape[1]))
    assert np.array_equal(vector, vector.T)


def test_matches_numpy_corrcoef_without_constant_columns() -> None:
    rng = np.random.default_rng(7)
    returns = rng.normal(size=(500, 12)) @ rng.normal(size=(12, 12))
    expected = np.corrcoef(returns, rowvar=False)
    np.testing.assert_allclose(correlation_vector(returns), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(correlation_scalar(returns), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        covariance_matrix(returns), np.cov(returns, rowvar=False), rtol=1e-12
    )


def test_constant_column_is_zero_off_diagonal() -> None:
    returns = np.array([[0.1, 1.0, 2.0], [0.1, 2.0, 4.0], [0.1, 3.0, 5.0]])
    for corr in (correlation_vector(returns), correlation_scalar(returns)):
        assert corr[0].tolist() == [1.0, 0.0, 0.0]
        assert corr[:, 0].tolist() == [1.0, 0.0, 0.0]
        assert corr[1, 2] == pytest.approx(np.corrcoef(returns[:, 1], returns[:, 2])[0, 1])


def test_dispatch(caplog: pytest.LogCaptureFixture) -> None:
    returns = np.arange(12.0).reshape(4, 3) ** 2
    default = correlation_matrix(returns)
    np.testing.assert_allclose(default, correlation_matrix(returns, path="scalar"), atol=1e-12)
    np.testing.assert_allclose(default, correlation_matrix(returns, path="vector"), atol=1e-12)


@pytest.mark.parametrize(
    ("returns", "message"),
    [
        ([1.0, 2.0], "must be 2-D"),
        (np.ones((1, 3)), "at least 2 observations"),
        (np.ones((3, 0)), "at least 2 observations"),
        ([[1.0, np.nan], [1.0, 2.0]], "NaN or inf"),
        ([[1.0, np.inf], [1.0, 2.0]], "NaN or inf"),
        ([[1.0, np.inf], [1.0, -np.inf]], "NaN or inf"),
        ([["a"], ["b"]], "must be numeric"),
    ],
)
def test_invalid_returns(returns: object, message: str) -> None:
    for func in (correlation_vector, correlation_scalar, covariance_matrix):
        with pytest.raises(RiskError, match=message):
            func(returns)


def test_overflowing_returns_are_refused() -> None:
    with pytest.raises(RiskError, match="too large"):
        correlation_vector([[1e308, 1.0], [1e308, 2.0]])


def test_near_constant_column_is_not_mistaken_for_constant() -> None:
    base = np.full((50, 2), 0.1)
    base[:, 1] = np.linspace(0.0, 1.0, 50)
    base[7, 0] = np.nextafter(0.1, 1.0)  # one ulp away: tiny variance, not constant
    for corr in (correlation_vector(base), correlation_scalar(base)):
        assert corr[0, 1] != 0.0
        assert np.all(np.isfinite(corr))
    # A spread of one ulp is below float resolution: the value itself is rounding noise
    # (np.corrcoef is no better), so the paths are not expected to agree here.


def test_wide_matrix_is_symmetric_bit_for_bit_and_matches_corrcoef() -> None:
    """More columns than one mirror block: every block of the lower triangle is copied."""
    rng = np.random.default_rng(11)
    returns = rng.normal(size=(300, 150)) @ rng.normal(size=(150, 150))
    corr = correlation_vector(returns)
    assert np.array_equal(corr, corr.T)
    np.testing.assert_allclose(corr, np.corrcoef(returns, rowvar=False), rtol=1e-12, atol=1e-13)


def test_centring_buffer_is_reused_and_large_inputs_get_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The per-thread buffer grows, is reused, and is bypassed above WORKSPACE_MAX."""
    rng = np.random.default_rng(12)
    small, large = rng.normal(size=(40, 30)), rng.normal(size=(60, 50))
    expected = [np.corrcoef(r, rowvar=False) for r in (small, large, small)]
    for returns, want in zip((small, large, small), expected, strict=True):
        np.testing.assert_allclose(correlation_vector(returns), want, rtol=1e-12, atol=1e-13)
    buffer = correlation._centring_buffer((60, 50))
    assert buffer.base is correlation._centring_buffer((40, 30)).base  # one buffer, reused
    monkeypatch.setattr(correlation, "WORKSPACE_MAX", 100)
    fresh = correlation._centring_buffer((60, 50))
    assert fresh.base is None and fresh.shape == (60, 50)
    np.testing.assert_allclose(correlation_vector(large), expected[1], rtol=1e-12, atol=1e-13)
