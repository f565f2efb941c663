"""Correlation: vector vs scalar vs np.corrcoef, constant columns, input validation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import event, given, settings
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


# Columns at a level (in units of the grid) plus a spread: levels near 0 are returns (the
# vector path multiplies them uncentred), large ones prices (it centres them first).
LEVELS = (0.0, 0.001, 0.05, 0.25, 1.0, 3.0, 100.0, -2500.0)
leveled_arrays = st.integers(2, 300).flatmap(
    lambda t: st.integers(1, 8).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.int64, (t, n), elements=st.integers(-64, 64)),
            st.lists(st.sampled_from(LEVELS), min_size=n, max_size=n),
            st.lists(st.booleans(), min_size=n, max_size=n),
        )
    )
)


@settings(max_examples=200)
@given(leveled_arrays)
def test_uncentred_and_centred_products_agree_with_the_scalar_twin(
    drawn: tuple[np.ndarray, list[float], list[bool]],
) -> None:
    """Equal within 1e-12 (absolute and relative), either product, constant columns included.

    The vector path's rounding is a few T·eps (T ≤ 300: ≤ 7e-14, times 1 + 1/16 when
    uncentred); the scalar twin sums exactly (``math.fsum``). 1e-12 is the stated bound.
    """
    grid, levels, constant = drawn
    returns = grid / 64.0 + np.array(levels)
    returns[:, np.array(constant)] = np.array(levels)[np.array(constant)]
    uncentred = correlation._uncentred_product(returns, returns.mean(axis=0)) is not None
    event(f"uncentred product: {uncentred}")
    vector = correlation_vector(returns)
    np.testing.assert_allclose(vector, correlation_scalar(returns), rtol=1e-12, atol=1e-12)
    assert np.array_equal(vector, vector.T)
    assert np.array_equal(np.diag(vector), np.ones(returns.shape[1]))
    for col in np.flatnonzero(np.all(returns == returns[0], axis=0)):  # constant: 0 off-diagonal
        assert np.count_nonzero(vector[col]) == 1 and np.count_nonzero(vector[:, col]) == 1


@settings(max_examples=100)
@given(
    returns_arrays,
    st.sampled_from([np.nan, np.inf, -np.inf]),
    st.integers(0, 10**6),
)
def test_nan_or_inf_anywhere_is_refused_by_both_paths(
    drawn: tuple[np.ndarray, list[bool], int], bad: float, where: int
) -> None:
    grid, constant, level = drawn
    returns = grid / 64.0
    returns[:, np.array(constant)] = level / 7.0
    returns.flat[where % returns.size] = bad
    for func in (correlation_vector, correlation_scalar):
        with pytest.raises(RiskError, match="NaN or inf"):
            func(returns)


def test_returns_take_the_uncentred_product_and_prices_the_centred_one() -> None:
    rng = np.random.default_rng(4)
    returns = rng.normal(0.0, 0.01, size=(400, 20))
    mean = returns.mean(axis=0)
    uncentred = correlation._uncentred_product(returns, mean)
    assert uncentred is not None
    product, sum_sq = uncentred
    centred = returns - mean
    np.testing.assert_allclose(product, centred.T @ centred, rtol=1e-12, atol=1e-15)
    assert np.array_equal(sum_sq, np.diag(product))  # its diagonal, a copy
    assert not np.shares_memory(sum_sq, product)
    for refused in (
        returns + 100.0,  # prices: the mean dwarfs the spread
        np.hstack([returns, np.full((400, 1), 0.5)]),  # a constant column other than 0
        returns[:, ::2],  # a strided view: numpy would multiply it without BLAS
    ):
        assert correlation._uncentred_product(refused, refused.mean(axis=0)) is None
    # A head that looks like returns but a tail that does not: confirmed on the diagonal.
    drift = returns.copy()
    drift[300:, 0] += 5.0
    assert correlation._uncentred_product(drift, drift.mean(axis=0)) is None
    np.testing.assert_allclose(
        correlation_vector(drift), np.corrcoef(drift, rowvar=False), rtol=1e-12, atol=1e-13
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
        ([["1.5"], ["2.5"]], "must be numeric"),  # text is not a number, even when it parses
        (np.array([[1 + 1j, 2.0], [3.0, 4j], [0.0, 1.0]]), "must be real"),  # imag not dropped
        ([[1.0, 2j], [3.0, 4.0]], "must be real"),
    ],
)
def test_invalid_returns(returns: object, message: str) -> None:
    for func in (correlation_vector, correlation_scalar, covariance_matrix):
        with pytest.raises(RiskError, match=message):
            func(returns)


def test_a_covariance_beyond_float64_is_refused_not_returned_as_inf() -> None:
    returns = np.array([[1e160, 1.0], [-1e160, 2.0], [3e160, 4.0]])
    with pytest.raises(RiskError, match="beyond float64's range") as caught:
        covariance_matrix(returns)
    assert "\n" not in str(caught.value)
    with pytest.warns(RuntimeWarning, match="overflow"):  # the peer: inf, and a warning only
        assert not np.all(np.isfinite(np.cov(returns, rowvar=False)))


def test_a_covariance_in_range_from_sums_that_overflow_is_exact() -> None:
    # Column sums overflow (np.cov: NaN); the covariance itself is small and exact.
    returns = np.array([[1.5e308, 1.0, 1e150], [1.5e308, 2.0, -1e150], [1.5e308, 4.0, 1e150]])
    got = covariance_matrix(returns)
    ones = np.array([1.0, 2.0, 4.0])
    var1 = float(np.var(ones, ddof=1))
    assert got[0].tolist() == [0.0, 0.0, 0.0]
    assert got[:, 0].tolist() == [0.0, 0.0, 0.0]
    assert got[1, 1] == pytest.approx(var1, rel=1e-15)
    assert got[2, 2] == pytest.approx(np.var([1.0, -1.0, 1.0], ddof=1) * 1e300, rel=1e-12)
    assert got[1, 2] == got[2, 1]
    assert got[1, 2] == pytest.approx(np.cov(ones, [1.0, -1.0, 1.0])[0, 1] * 1e150, rel=1e-12)
    # Values in range take the plain product: bit for bit what it gave before.
    plain = np.array([[1e150, 1.0], [-1e150, 2.0], [3e150, 4.0]])
    centred = plain - plain.mean(axis=0)
    assert np.array_equal(covariance_matrix(plain), (centred.T @ centred) / 2)


def test_returns_whose_column_sums_overflow_are_rescaled_not_refused() -> None:
    """Finite values are valid input: a column sum above float64's range is no reason to refuse."""
    returns = np.array([[1e308, 1.0, 1e308], [1.5e308, 2.0, 1e308], [1.7e308, 4.0, 1e308]])
    want = np.corrcoef([[1.0, 1.0], [1.5, 2.0], [1.7, 4.0]], rowvar=False)
    for path in ("vector", "scalar"):
        corr = correlation_matrix(returns, path=path)
        np.testing.assert_allclose(corr[:2, :2], want, rtol=1e-12)
        assert np.array_equal(corr[2], [0.0, 0.0, 1.0])  # the constant column


def test_near_constant_column_is_not_mistaken_for_constant() -> None:
    base = np.full((50, 2), 0.1)
    base[:, 1] = np.linspace(0.0, 1.0, 50)
    base[7, 0] = np.nextafter(0.1, 1.0)  # one ulp away: tiny variance, not constant
    for corr in (correlation_vector(base), correlation_scalar(base)):
        assert corr[0, 1] != 0.0
        assert np.all(np.isfinite(corr))
    # A spread of one ulp is below float resolution: the value itself is rounding noise
    # (np.corrcoef is no better), so the paths are not expected to agree here.


@pytest.mark.parametrize("layout", ["C", "F", "strided", "prices"])
def test_wide_matrix_is_symmetric_bit_for_bit_and_matches_corrcoef(layout: str) -> None:
    """Whatever the input's layout or level, each product path gives an exactly symmetric matrix."""
    rng = np.random.default_rng(11)
    returns = rng.normal(size=(300, 300)) @ rng.normal(size=(300, 300))
    returns = {
        "C": returns,
        "F": np.asfortranarray(returns),
        "strided": returns[:, ::2],
        "prices": returns + 1e4,
    }[layout]
    corr = correlation_vector(returns)
    assert np.array_equal(corr, corr.T)
    np.testing.assert_allclose(corr, np.corrcoef(returns, rowvar=False), rtol=1e-12, atol=1e-13)


def test_workspace_is_reused_and_large_inputs_get_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The per-thread buffer grows, is reused, and is bypassed above WORKSPACE_MAX."""
    rng = np.random.default_rng(12)
    small, large = rng.normal(size=(40, 30)) + 50.0, rng.normal(size=(60, 50)) + 50.0  # centred
    expected = [np.corrcoef(r, rowvar=False) for r in (small, large, small)]
    for returns, want in zip((small, large, small), expected, strict=True):
        np.testing.assert_allclose(correlation_vector(returns), want, rtol=1e-12, atol=1e-13)
    buffer = correlation._workspace((60, 50))
    assert buffer.base is correlation._workspace((40, 30)).base  # one buffer, reused
    monkeypatch.setattr(correlation, "WORKSPACE_MAX", 100)
    fresh = correlation._workspace((60, 50))
    assert fresh.base is None and fresh.shape == (60, 50)
    np.testing.assert_allclose(correlation_vector(large), expected[1], rtol=1e-12, atol=1e-13)


@given(
    returns_arrays,
    st.lists(st.integers(-1000, 1000), min_size=8, max_size=8),
)
def test_columns_scaled_by_powers_of_two_keep_their_correlation(
    drawn: tuple[np.ndarray, list[bool], int], exponents: list[int]
) -> None:
    """Correlation is scale-free: columns of any magnitude float64 holds give the same matrix.

    Scaling a column by 2**k is exact, so both paths must return what they return for
    the unscaled columns. Why: squares of values below ~1e-154 underflow and above ~1e154
    overflow, which once gave ±1 for independent columns, NaN, or a traceback.
    """
    values, _, _ = drawn
    returns = values.astype(np.float64)
    scaled = np.ldexp(returns, np.array(exponents[: returns.shape[1]]))
    want = correlation_scalar(returns)
    for func in (correlation_vector, correlation_scalar):
        np.testing.assert_allclose(func(scaled), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-160, 1e-170, 1e-300, 1e-310, 1e153, 1e200, 1e300])
def test_tiny_and_huge_returns_give_the_correlation_of_ordinary_ones(scale: float) -> None:
    """Through the entry point, with a non-power-of-two scale and one ordinary column."""
    rng = np.random.default_rng(21)
    base = rng.normal(size=(200, 3))
    returns = base.copy()
    returns[:, :2] *= scale
    want = np.corrcoef(base, rowvar=False)
    for path in ("vector", "scalar"):
        corr = correlation_matrix(returns, path=path)
        np.testing.assert_allclose(corr, want, rtol=1e-9, atol=1e-12)


def test_successive_results_and_threads_do_not_share_the_workspace() -> None:
    """Each result is its own array: a later call (other shape, other thread) leaves it intact."""
    rng = np.random.default_rng(31)
    inputs = [rng.normal(0.0, 0.01, size=(300, 40)), rng.normal(size=(50, 7)) + 100.0]
    first = [correlation_vector(r) for r in inputs]
    kept = [c.copy() for c in first]
    with ThreadPoolExecutor(max_workers=3) as pool:
        again = list(pool.map(correlation_vector, inputs * 6))
    for result in (*first, *again):
        assert not np.shares_memory(result, correlation._workspace((300, 40)))
    for got, want in zip(first + again, kept + kept * 6, strict=True):
        assert np.array_equal(got, want)
