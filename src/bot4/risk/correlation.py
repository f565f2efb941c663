"""Correlation and covariance of returns, with a vector (BLAS) and a scalar twin.

The vector path is one centred matrix product, as ``np.corrcoef`` does. A column
whose values are all equal has no defined correlation; we report 0 against every
other column and 1 on the diagonal (it carries no co-movement information, and a
0 keeps downstream maths such as portfolio variance finite instead of spreading
NaN). Constant columns are found by exact equality, not by a variance threshold,
so both paths agree on which columns they are.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from bot4.infrastructure.platform import Path_, selected_path
from bot4.risk.errors import RiskError

F64 = NDArray[np.float64]


def validate_returns(
    returns: object, *, min_rows: int = 2, name: str = "returns", check_finite: bool = True
) -> F64:
    """A finite 2-D float array with at least ``min_rows`` rows and one column, or RiskError.

    ``check_finite=False`` skips the full NaN/inf scan for callers that detect
    non-finite input from a column sum they compute anyway (see :func:`require_finite`).
    """
    try:
        arr = np.asarray(returns, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RiskError(f"{name} must be numeric: {exc}") from exc
    if arr.ndim != 2:
        raise RiskError(f"{name} must be 2-D (observations × assets), got shape {arr.shape}")
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise RiskError(
            f"{name} needs at least {min_rows} observations and 1 asset, got shape {arr.shape}"
        )
    if check_finite:
        require_finite(arr, name)
    return arr


def require_finite(arr: F64, name: str = "returns") -> None:
    """Raise the one clear error for NaN/inf in ``arr``."""
    if not np.all(np.isfinite(arr)):
        raise RiskError(f"{name} contains NaN or inf: clean or drop those observations first")


def correlation_matrix(returns: object, *, path: Path_ | None = None) -> F64:
    """Correlation of the columns of ``returns`` (T × N) on the process-wide path."""
    chosen = selected_path() if path is None else path
    if chosen == "vector":
        return correlation_vector(returns)
    return correlation_scalar(returns)


def covariance_matrix(returns: object, *, ddof: int = 1) -> F64:
    """Sample covariance of the columns (one centred BLAS product)."""
    arr = validate_returns(returns, min_rows=ddof + 1)
    centred = arr - arr.mean(axis=0)
    cov: F64 = (centred.T @ centred) / (arr.shape[0] - ddof)
    return cov


def _constant_columns(arr: F64, sum_sq: F64) -> NDArray[np.bool_]:
    """Columns whose values are all equal (exact comparison).

    Only columns that could be constant, judging by ``sum_sq`` (the centred sums
    of squares), are compared: for a constant column c, |mean − c| ≤ (T + 1)·eps·|c|
    whatever the summation order, so its sum of squares is at most
    T·((T + 1)·eps·c)²; we test 4× that bound, then confirm exactly.
    """
    t = arr.shape[0]
    eps = np.finfo(np.float64).eps
    bound = 4.0 * t * ((t + 1) * eps * arr[0]) ** 2
    constant: NDArray[np.bool_] = np.less_equal(sum_sq, bound)
    candidates = np.flatnonzero(constant)
    if candidates.size:
        block = arr[:, candidates]
        constant[candidates] = np.all(block == block[0], axis=0)
    return constant


def correlation_vector(returns: object) -> F64:
    """Vector path: centre, one ``Xᵀ X`` through BLAS, scale by the standard deviations."""
    arr = validate_returns(returns, check_finite=False)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = arr.mean(axis=0)
    if not np.all(np.isfinite(mean)):  # NaN/inf anywhere in a column reaches its mean
        require_finite(arr)
        raise RiskError("returns are too large: their column sums overflow float64")
    centred = arr - mean
    product = centred.T @ centred
    sum_sq = np.diag(product).copy()
    constant = _constant_columns(arr, sum_sq)
    std = np.sqrt(sum_sq)
    std[constant] = 1.0  # avoid 0/0; the rows are overwritten below
    corr: F64 = product / np.multiply.outer(std, std)
    corr += corr.T  # BLAS need not return an exactly symmetric product; the result is
    corr *= 0.5  # symmetric bit for bit, like the scalar path
    np.clip(corr, -1.0, 1.0, out=corr)
    corr[constant, :] = 0.0
    corr[:, constant] = 0.0
    np.fill_diagonal(corr, 1.0)
    return corr


def correlation_scalar(returns: object) -> F64:
    """Scalar path: pure Python sums (``math.fsum``) over lists; the oracle and the fallback."""
    arr = validate_returns(returns)
    columns = arr.T.tolist()
    t = len(columns[0])
    centred = []
    constant = []  # exact comparison, as in the vector path
    for col in columns:
        first = col[0]
        constant.append(all(x == first for x in col))
        mean = math.fsum(col) / t
        centred.append([x - mean for x in col])
    norms = [math.sqrt(math.fsum(x * x for x in c)) for c in centred]
    n = len(columns)
    out = [[0.0] * n for _ in range(n)]
    for p in range(n):
        out[p][p] = 1.0
        if constant[p]:
            continue
        cp = centred[p]
        for q in range(p + 1, n):
            if constant[q]:
                continue
            value = (
                math.fsum(x * y for x, y in zip(cp, centred[q], strict=True)) / norms[p] / norms[q]
            )
            value = min(1.0, max(-1.0, value))
            out[p][q] = out[q][p] = value
    result: F64 = np.array(out, dtype=np.float64)
    return result
