"""Correlation and covariance of returns, with a vector (BLAS) and a scalar twin.

The vector path is one centred matrix product, as ``np.corrcoef`` does, but on a
per-thread centring buffer (no fresh pages to fault in per call) and as ``Xᵀ X`` on
one buffer, which numpy hands to BLAS ``syrk`` (half the multiplications of the
``gemm`` that ``np.corrcoef`` runs on two buffers). A column
whose values are all equal has no defined correlation; we report 0 against every
other column and 1 on the diagonal (it carries no co-movement information, and a
0 keeps downstream maths such as portfolio variance finite instead of spreading
NaN). Constant columns are found by exact equality, not by a variance threshold,
so both paths agree on which columns they are.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.typing import NDArray

from bot4.infrastructure.platform import Path_, selected_path
from bot4.risk.errors import RiskError

F64 = NDArray[np.float64]

WORKSPACE_MAX = 1 << 22  # float64 entries (32 MiB): larger inputs centre into a fresh array
_MIRROR_BLOCK = 64  # rows per block when copying the upper triangle onto the lower one
_LOCAL = threading.local()


def _centring_buffer(shape: tuple[int, int]) -> F64:
    """A per-thread T × N array to centre into (fresh when it would exceed ``WORKSPACE_MAX``).

    Why: a fresh 10 MB temporary per call is handed back to the kernel and faulted in
    again next time; that cost about an eighth of a T=2520 × N=500 correlation.
    """
    size = shape[0] * shape[1]
    if size > WORKSPACE_MAX:
        return np.empty(shape)
    buf: F64 | None = getattr(_LOCAL, "centring", None)
    if buf is None or buf.shape[0] < size:
        buf = np.empty(max(size, 1024))
        _LOCAL.centring = buf
    return buf[:size].reshape(shape)


def _mirror_upper(square: F64) -> None:
    """Copy the upper triangle onto the lower one (in blocks: no full-size temporary).

    The result is symmetric bit for bit whatever order BLAS summed in, like the
    scalar path; only copies, so the upper triangle's values are kept as computed.
    """
    n = square.shape[0]
    for start in range(0, n, _MIRROR_BLOCK):
        stop = min(start + _MIRROR_BLOCK, n)
        square[stop:, start:stop] = square[start:stop, stop:].T
        block = square[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        block[lower] = block.T[lower]


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
    centred = np.subtract(arr, mean, out=_centring_buffer(arr.shape))
    corr: F64 = centred.T @ centred  # the only full-size result: returned, scaled in place
    sum_sq = np.diag(corr).copy()
    constant = _constant_columns(arr, sum_sq)
    std = np.sqrt(sum_sq)
    std[constant] = 1.0  # avoid 0/0; the rows are overwritten below
    corr /= std[:, None]  # as np.corrcoef does; the two roundings may differ across the
    corr /= std  # diagonal, so the upper triangle is mirrored afterwards
    _mirror_upper(corr)
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
