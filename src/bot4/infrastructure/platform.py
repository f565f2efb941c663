"""The portability contract: a 64-bit interpreter, and what the CPU and BLAS can do.

Vectorized paths (risk checks, correlation) are only worth taking when numpy's
kernels dispatch to a SIMD extension; otherwise the scalar twins are used. The
decision is made once, from this module, so every caller agrees on it and the
operator can see why (``bot4 doctor``). ``BOT4_FORCE_SCALAR=1`` forces the
scalar paths, e.g. to reproduce a suspected SIMD bug.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform as _stdlib_platform
import struct
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any, Literal

from bot4.errors import Bot4Error

log = logging.getLogger(__name__)

FORCE_SCALAR_ENV = "BOT4_FORCE_SCALAR"
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# SIMD extensions in order of preference, per architecture family, as numpy names them.
# The first one the CPU has is reported as "the" acceleration in logs.
VECTOR_EXTENSIONS: tuple[str, ...] = (
    "AVX512_SPR",
    "AVX512_ICL",
    "AVX512_CNL",
    "AVX512_CLX",
    "AVX512_SKX",
    "AVX512F",
    "AVX2",
    "AVX",
    "SSE42",
    "SSE41",
    "SSSE3",
    "SSE3",
    "SSE2",
    "SVE",
    "ASIMDHP",
    "ASIMD",
    "NEON",
    "VSX4",
    "VSX3",
    "VSX2",
    "VSX",
    "VXE2",
    "VXE",
    "VX",
    "RVV",
    "LSX",
)

Path_ = Literal["vector", "scalar"]


class PlatformError(Bot4Error):
    """The machine or environment breaks the portability contract."""


def require_64bit(maxsize: int = sys.maxsize, pointer_size: int | None = None) -> None:
    """Refuse to run on a non-64-bit interpreter (both the C ``ssize_t`` and pointers)."""
    size = struct.calcsize("P") if pointer_size is None else pointer_size
    if maxsize <= 2**32 or size != 8:
        raise PlatformError(
            f"bot4 needs a 64-bit Python interpreter; this one has {size * 8}-bit pointers "
            f"and sys.maxsize={maxsize}. Install a 64-bit CPython 3.11."
        )


def force_scalar(environ: Mapping[str, str] | None = None) -> bool:
    """Read ``BOT4_FORCE_SCALAR``; an unrecognised value is an error, not a silent default."""
    env = os.environ if environ is None else environ
    raw = env.get(FORCE_SCALAR_ENV, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise PlatformError(
        f"{FORCE_SCALAR_ENV} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}"
    )


@dataclass(frozen=True)
class CpuFeatures:
    """What numpy detected on this CPU and what its kernels were built for."""

    detected: tuple[str, ...]
    baseline: tuple[str, ...]
    dispatch: tuple[str, ...]

    @property
    def vector_extensions(self) -> tuple[str, ...]:
        """Detected SIMD extensions, best first."""
        have = set(self.detected)
        return tuple(name for name in VECTOR_EXTENSIONS if name in have)

    @property
    def best(self) -> str | None:
        """The best SIMD extension found, or ``None`` when there is none."""
        ext = self.vector_extensions
        return ext[0] if ext else None


@dataclass(frozen=True)
class BlasLibrary:
    """One BLAS/LAPACK/OpenMP library loaded in this process (from threadpoolctl)."""

    user_api: str
    internal_api: str
    version: str | None
    architecture: str | None
    num_threads: int
    filepath: str


@dataclass(frozen=True)
class PlatformReport:
    """Everything ``bot4 doctor`` prints: enough to explain which path will run."""

    python: str
    implementation: str
    machine: str
    pointer_bits: int
    numpy: str
    cpu: CpuFeatures
    kernel_targets: dict[str, int]
    blas: tuple[BlasLibrary, ...]
    forced_scalar: bool
    path: Path_
    openblas_env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (stable key order) including the derived fields."""
        data = asdict(self)
        data["cpu"]["vector_extensions"] = list(self.cpu.vector_extensions)
        data["cpu"]["best"] = self.cpu.best
        return data


def detect_cpu_features() -> CpuFeatures:
    """Ask numpy which CPU features it detected and which targets it was built for."""
    # numpy's private module: the only place it exposes its runtime CPU detection.
    umath = importlib.import_module("numpy._core._multiarray_umath")
    features: dict[str, bool] = dict(umath.__cpu_features__)
    return CpuFeatures(
        detected=tuple(sorted(name for name, ok in features.items() if ok)),
        baseline=tuple(umath.__cpu_baseline__),
        dispatch=tuple(umath.__cpu_dispatch__),
    )


def summarize_kernel_targets(info: Mapping[str, Mapping[str, Mapping[str, str]]]) -> dict[str, int]:
    """Count numpy's dispatched kernels by the target they currently run on.

    ``info`` is ``numpy.lib.introspect.opt_func_info()``: function → dtype signature →
    {"current": target, "available": ...}.
    """
    counts: Counter[str] = Counter()
    for signatures in info.values():
        for target in signatures.values():
            counts[target.get("current", "unknown")] += 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def detect_blas() -> tuple[BlasLibrary, ...]:
    """The BLAS libraries numpy loaded, as threadpoolctl reports them."""
    import numpy  # noqa: F401, PLC0415 - load numpy's BLAS before asking
    from threadpoolctl import threadpool_info  # noqa: PLC0415

    return tuple(
        BlasLibrary(
            user_api=str(lib.get("user_api")),
            internal_api=str(lib.get("internal_api")),
            version=lib.get("version"),
            architecture=lib.get("architecture"),
            num_threads=int(lib.get("num_threads", 0)),
            filepath=str(lib.get("filepath")),
        )
        for lib in threadpool_info()
    )


def choose_path(cpu: CpuFeatures, forced_scalar: bool) -> Path_:
    """Vector when a SIMD extension exists and scalar is not forced."""
    if forced_scalar or cpu.best is None:
        return "scalar"
    return "vector"


def report(environ: Mapping[str, str] | None = None) -> PlatformReport:
    """Build the full platform report for this process."""
    import numpy  # noqa: PLC0415

    env = os.environ if environ is None else environ
    cpu = detect_cpu_features()
    forced = force_scalar(env)
    return PlatformReport(
        python=_stdlib_platform.python_version(),
        implementation=sys.implementation.name,
        machine=_stdlib_platform.machine(),
        pointer_bits=struct.calcsize("P") * 8,
        numpy=numpy.__version__,
        cpu=cpu,
        kernel_targets=summarize_kernel_targets(numpy.lib.introspect.opt_func_info()),
        blas=detect_blas(),
        forced_scalar=forced,
        path=choose_path(cpu, forced),
        openblas_env={name: env[name] for name in OPENBLAS_ENV if name in env},
    )


def describe_path(cpu: CpuFeatures, forced_scalar: bool) -> str:
    """The one log line that says which path runs and why."""
    if forced_scalar:
        return f"{FORCE_SCALAR_ENV}=1: scalar path forced — performance degraded"
    if cpu.best is None:
        return "no SIMD extension detected: using scalar fallback — performance degraded"
    return f"{cpu.best} acceleration enabled"


@cache
def selected_path() -> Path_:
    """The process-wide vector/scalar decision, made and logged once."""
    cpu = detect_cpu_features()
    forced = force_scalar()
    chosen = choose_path(cpu, forced)
    message = describe_path(cpu, forced)
    if chosen == "scalar":
        log.warning(message)
    else:
        log.info(message)
    return chosen
