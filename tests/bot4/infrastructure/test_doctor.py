from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bot4 import cli
from bot4.infrastructure import doctor, platform
from bot4.infrastructure.platform import BlasLibrary, CpuFeatures, PlatformReport


def test_doctor_prints_cpu_features(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOT4_FORCE_SCALAR", raising=False)
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    cpu = platform.detect_cpu_features()
    assert f"simd found   {' '.join(cpu.vector_extensions) or 'none'}" in out
    assert "numpy        " in out and "path         " in out


def test_doctor_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOT4_FORCE_SCALAR", raising=False)
    assert cli.main(["doctor", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pointer_bits"] == 64
    assert data["cpu"]["vector_extensions"] == list(
        platform.detect_cpu_features().vector_extensions
    )


def test_forced_scalar_is_said_and_warned(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("BOT4_FORCE_SCALAR", "1")
    assert cli.main(["doctor"]) == 0
    assert "path         scalar: BOT4_FORCE_SCALAR=1: scalar path forced" in capsys.readouterr().out
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert caplog.records[0].getMessage().startswith("BOT4_FORCE_SCALAR=1: scalar path forced")


def test_bad_env_is_one_line_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT4_FORCE_SCALAR", "perhaps")
    assert cli.main(["doctor"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bot4: error: BOT4_FORCE_SCALAR must be")


def test_format_without_blas_or_simd() -> None:
    rep = PlatformReport(
        python="3.11.2",
        implementation="cpython",
        machine="riscv64",
        pointer_bits=64,
        numpy="2.4.6",
        cpu=CpuFeatures(detected=(), baseline=(), dispatch=()),
        kernel_targets={},
        blas=(),
        forced_scalar=False,
        path="scalar",
    )
    text = doctor.format_report(rep)
    assert "simd found   none" in text and "blas         none loaded" in text
    assert "using scalar fallback — performance degraded" in text
    with_blas = doctor.format_report(
        PlatformReport(
            **{**rep.__dict__, "blas": (BlasLibrary("blas", "openblas", None, None, 1, "/x.so"),)}
        )
    )
    assert "blas         openblas ? (?, 1 threads) /x.so" in with_blas


@pytest.mark.e2e
def test_console_entry_point_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot4", "doctor"],
        capture_output=True,
        text=True,
        check=False,
        env={"BOT4_FORCE_SCALAR": "1", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert "scalar path forced" in result.stdout
    assert result.stderr.startswith("bot4: WARNING: BOT4_FORCE_SCALAR=1: scalar path forced")
