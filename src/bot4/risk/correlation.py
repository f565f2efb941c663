"""Correlation and covariance of returns, with a vector (BLAS) and a scalar twin.

The vector path is one ``Xᵀ X`` through BLAS ``syrk`` (numpy hands a matrix times its
own transpose to ``syrk``; ``np.corrcoef`` gets the same call), with less around it
than ``np.corrcoef``: when every column's mean is small next to its spread (returns),
the product runs on the input itself and is centred afterwards by the rank-one
correction ``Xᵀ X − T·μ μᵀ`` — no 10 MB copy to centre into, no second pass over
it; otherwise the columns are centred first, into a per-thread buffer. Scaling by
the outer product of ``1/σ`` keeps the result symmetric bit for bit. A column
whose values are all equal has no defined correlation; we report 0 against every
other column and 1 on the diagonal (it carries no co-movement information, and a
0 keeps downstream maths such as portfolio variance finite instead of spreading
NaN). Constant columns are found by exact equality, not by a variance threshold,
so both paths agree on which columns they are. Columns whose squares would underflow
(values below ~1e-150) or overflow (above ~1e150) are first scaled by a power of two,
which is exact and leaves correlations unchanged.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.typing import NDArray

from bot4.infrastructure.platform import Path_, selected_path
from bot4.risk.errors import RiskError

F64 = NDArray[np.float64]

WORKSPACE_MAX = 1 << 22  # float64 entries (32 MiB): larger scratch arrays are fresh per call
# The uncentred product is used when T·μ² ≤ MEAN_SPREAD_MAX · Σ(x − μ)² for every column:
# its rounding error is then at most (1 + MEAN_SPREAD_MAX) times the centred product's.
MEAN_SPREAD_MAX = 1.0 / 16.0
# Centred sums of squares outside [T·SUM_SQ_MIN, SUM_SQ_MAX] mean products that underflowed
# (subnormal, so inexact) or overflowed, or 1/σᵢσⱼ out of range: the columns are rescaled.
SUM_SQ_MIN = 2.0**-900
SUM_SQ_MAX = 2.0**900
_HEAD_ROWS = 64  # rows that estimate the spread before choosing the uncentred product
_LOCAL = threading.local()


def _workspace(shape: tuple[int, int]) -> F64:
    """A per-thread scratch array (fresh when it would exceed ``WORKSPACE_MAX``).

    It holds the T × N centred returns, then (once they are multiplied) the N × N
    outer products. Why: a fresh 10 MB (or 2 MB) temporary per call is handed back to
    the kernel and faulted in again next time; that cost about an eighth of a
    T=2520 × N=500 correlation.
    """
    size = shape[0] * shape[1]
    if size > WORKSPACE_MAX:
        return np.empty(shape)
    buf: F64 | None = getattr(_LOCAL, "workspace", None)
    if buf is None or buf.shape[0] < size:
        buf = np.empty(max(size, 1024))
        _LOCAL.workspace = buf
    return buf[:size].reshape(shape)


def validate_returns(
    returns: object, *, min_rows: int = 2, name: str = "returns", check_finite: bool = True
) -> F64:
    """A finite 2-D float array with at least ``min_rows`` rows and one column, or RiskError.

    ``check_finite=False`` skips the full NaN/inf scan for callers that detect
    non-finite input from a column sum they compute anyway (see :func:`require_finite`).
    """
    try:
        raw = np.asarray(returns)
    except (TypeError, ValueError) as exc:
        raise RiskError(f"{name} must be numeric: {exc}") from exc
    if raw.dtype.kind == "c":  # float64 conversion would drop the imaginary part, warning only
        raise RiskError(f"{name} must be real numbers, got {raw.dtype}")
    if raw.dtype.kind not in "biufO":  # text, bytes, dates: float64 would parse or reinterpret
        raise RiskError(f"{name} must be numeric: dtype {raw.dtype} is not a number")
    try:
        arr = np.asarray(raw, dtype=np.float64)
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
    """Sample covariance of the columns (one centred BLAS product).

    Finite values whose sums overflow are rescaled by powers of two (exact) and the
    result scaled back; a covariance beyond float64's range is refused, never returned
    as inf (np.cov's answer, with a warning only).
    """
    arr = validate_returns(returns, min_rows=ddof + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        centred = arr - arr.mean(axis=0)
        cov: F64 = (centred.T @ centred) / (arr.shape[0] - ddof)
    if np.all(np.isfinite(cov)):
        return cov
    exponent = _column_exponents(arr)
    scaled = np.ldexp(arr, -exponent)
    centred = scaled - scaled.mean(axis=0)
    cov = (centred.T @ centred) / (arr.shape[0] - ddof)
    with np.errstate(over="ignore"):
        cov = np.ldexp(np.ldexp(cov, exponent[:, None]), exponent[None, :])
    if not np.all(np.isfinite(cov)):
        raise RiskError(
            "the covariance of these returns is beyond float64's range (about 1.8e308): "
            "rescale the returns first"
        )
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


def _uncentred_product(arr: F64, mean: F64) -> tuple[F64, F64] | None:
    """``Xᵀ X − T·μ μᵀ`` (the centred product) without centring ``X``, and a copy of its
    diagonal (the centred sums of squares, read once: the check below and the caller's
    scaling both use it), or None.

    None when some column's mean is not small next to its spread (prices rather than
    returns, a constant column other than 0, overflow) or when ``arr`` is a strided view
    (numpy would multiply it without BLAS): the caller then centres first.
    The choice is made on the first rows (cheap) and confirmed on the exact diagonal,
    so a head that misjudges the spread costs one extra product, never accuracy.
    Rounding: with T·μ² ≤ θ·Σ(x − μ)², the product's error relative to ``σᵢ σⱼ`` is at
    most (1 + θ) times the centred one's (Cauchy–Schwarz on Σ|xᵢ||xⱼ|).
    """
    if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        return None
    t = arr.shape[0]
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        scaled = mean * math.sqrt(t)  # scaled[i] · scaled[j] == scaled[j] · scaled[i]
        mean_sq = scaled * scaled
        head = arr[:_HEAD_ROWS]
        spread = np.square(head - mean).sum(axis=0) * (t / head.shape[0])
        if not np.all(mean_sq <= 0.25 * MEAN_SPREAD_MAX * spread):
            return None
        product: F64 = arr.T @ arr  # syrk on the caller's array: no copy
        product -= np.multiply(scaled[:, None], scaled, out=_workspace(product.shape))
        sum_sq = np.diag(product).copy()
        if not np.all(mean_sq <= MEAN_SPREAD_MAX * sum_sq):
            return None
    return product, sum_sq


def _rescaled(arr: F64) -> F64:
    """Each column times the power of two that brings its largest magnitude into [0.5, 1).

    Exact (bar values 2**1022 times smaller than their column's largest, which do not
    matter next to its spread), so the correlation is unchanged and no square under- or
    overflows.
    """
    scaled: F64 = np.ldexp(arr, -_column_exponents(arr))
    return scaled


def _column_exponents(arr: F64) -> NDArray[np.intc]:
    """Per column, the power of two that brings its largest magnitude into [0.5, 1)."""
    exponent: NDArray[np.intc] = np.frexp(np.max(np.abs(arr), axis=0))[1]
    return exponent


def correlation_vector(returns: object) -> F64:
    """Vector path: one ``Xᵀ X`` through BLAS, centred, scaled by ``1/σᵢ σⱼ``."""
    arr = validate_returns(returns, check_finite=False)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = arr.mean(axis=0)
    if not np.all(np.isfinite(mean)):  # NaN/inf anywhere in a column reaches its mean
        require_finite(arr)
        arr = _rescaled(arr)  # finite values whose column sums overflow
        mean = arr.mean(axis=0)
    corr, sum_sq, constant = _centred_product(arr, mean)
    in_range = (sum_sq >= arr.shape[0] * SUM_SQ_MIN) & (sum_sq <= SUM_SQ_MAX)
    if not np.all(in_range | constant):  # rare: tiny or huge values; one more product
        arr = _rescaled(arr)
        corr, sum_sq, constant = _centred_product(arr, arr.mean(axis=0))
    std = np.sqrt(sum_sq)
    std[constant] = 1.0  # avoid 0/0; the rows are overwritten below
    inv = 1.0 / std
    # inv[i]·inv[j] == inv[j]·inv[i] and numpy mirrors syrk's triangle: symmetric bit for bit
    corr *= np.multiply(inv[:, None], inv, out=_workspace(corr.shape))
    np.clip(corr, -1.0, 1.0, out=corr)
    corr[constant, :] = 0.0
    corr[:, constant] = 0.0
    np.fill_diagonal(corr, 1.0)
    return corr


def _centred_product(arr: F64, mean: F64) -> tuple[F64, F64, NDArray[np.bool_]]:
    """``(X − μ)ᵀ (X − μ)``, its diagonal and the constant columns, for finite ``arr``."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        uncentred = _uncentred_product(arr, mean)
        if uncentred is None:
            centred = np.subtract(arr, mean, out=_workspace(arr.shape))
            corr = centred.T @ centred  # the only full-size result: returned, scaled in place
            sum_sq = np.diag(corr).copy()
        else:
            corr, sum_sq = uncentred
        return corr, sum_sq, _constant_columns(arr, sum_sq)


def correlation_scalar(returns: object) -> F64:
    """Scalar path: pure Python sums (``math.fsum``) over lists; the oracle and the fallback."""
    arr = validate_returns(returns)
    columns = arr.T.tolist()
    t = len(columns[0])
    centred = []
    constant = []  # exact comparison, as in the vector path
    for raw in columns:
        # beyond 2**±256, scale by a power of two (exact): no product under- or overflows
        shift = -math.frexp(max(map(abs, raw)))[1]
        col = raw if abs(shift) <= 256 else [math.ldexp(x, shift) for x in raw]
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
