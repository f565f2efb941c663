from __future__ import annotations

import importlib
import json
import logging

import numpy as np
import pytest

from bot4.infrastructure import platform
from bot4.infrastructure.platform import CpuFeatures, PlatformError


def test_64bit_interpreter_is_accepted() -> None:
    platform.require_64bit()


@pytest.mark.parametrize(("maxsize", "pointer"), [(2**31 - 1, 4), (2**63 - 1, 4), (2**31 - 1, 8)])
def test_32bit_interpreter_is_refused(maxsize: int, pointer: int) -> None:
    with pytest.raises(PlatformError, match="needs a 64-bit Python interpreter"):
        platform.require_64bit(maxsize=maxsize, pointer_size=pointer)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", False),
        ("0", False),
        ("false", False),
        ("No", False),
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
    ],
)
def test_force_scalar_values(value: str, expected: bool) -> None:
    assert platform.force_scalar({"BOT4_FORCE_SCALAR": value}) is expected
    assert platform.force_scalar({}) is False


def test_force_scalar_rejects_garbage() -> None:
    with pytest.raises(PlatformError, match="BOT4_FORCE_SCALAR must be one of"):
        platform.force_scalar({"BOT4_FORCE_SCALAR": "maybe"})


def test_detected_features_match_numpy() -> None:
    features = importlib.import_module("numpy._core._multiarray_umath").__cpu_features__
    cpu = platform.detect_cpu_features()
    assert set(cpu.detected) == {k for k, v in features.items() if v}
    assert cpu.vector_extensions == tuple(
        e for e in platform.VECTOR_EXTENSIONS if e in cpu.detected
    )


def test_best_extension_and_path_choice() -> None:
    avx = CpuFeatures(detected=("AVX", "AVX2", "SSE2"), baseline=("SSE2",), dispatch=("AVX2",))
    assert avx.best == "AVX2"
    assert platform.choose_path(avx, forced_scalar=False) == "vector"
    assert platform.choose_path(avx, forced_scalar=True) == "scalar"
    assert platform.describe_path(avx, False) == "AVX2 acceleration enabled"
    assert "scalar path forced" in platform.describe_path(avx, True)
    none = CpuFeatures(detected=("POPCNT",), baseline=(), dispatch=())
    assert none.best is None
    assert platform.choose_path(none, forced_scalar=False) == "scalar"
    assert "using scalar fallback — performance degraded" in platform.describe_path(none, False)


def test_kernel_summary_counts_current_targets() -> None:
    info = {
        "add": {"f": {"current": "AVX2", "available": "AVX2"}, "d": {"current": "AVX2"}},
        "abs": {"f": {"current": "baseline(SSE2)"}, "x": {}},
    }
    assert platform.summarize_kernel_targets(info) == {"AVX2": 2, "baseline(SSE2)": 1, "unknown": 1}
    real = platform.summarize_kernel_targets(np.lib.introspect.opt_func_info())
    assert sum(real.values()) > 0


def test_report_is_json_ready_and_honours_env() -> None:
    rep = platform.report({"BOT4_FORCE_SCALAR": "1", "OPENBLAS_CORETYPE": "Haswell"})
    assert rep.forced_scalar and rep.path == "scalar"
    assert rep.openblas_env == {"OPENBLAS_CORETYPE": "Haswell"}
    assert rep.pointer_bits == 64 and rep.numpy == np.__version__
    data = json.loads(json.dumps(rep.to_json()))
    assert data["cpu"]["best"] == rep.cpu.best
    assert any(lib["user_api"] == "blas" for lib in data["blas"])


def test_selected_path_is_decided_once_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    platform.selected_path.cache_clear()
    monkeypatch.setenv("BOT4_FORCE_SCALAR", "1")
    with caplog.at_level(logging.INFO, logger="bot4.infrastructure.platform"):
        assert platform.selected_path() == "scalar"
        monkeypatch.setenv("BOT4_FORCE_SCALAR", "0")
        assert platform.selected_path() == "scalar"  # cached: decided once per process
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    platform.selected_path.cache_clear()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bot4.infrastructure.platform"):
        expected = "vector" if platform.detect_cpu_features().best else "scalar"
        assert platform.selected_path() == expected
    platform.selected_path.cache_clear()
