"""Reproducibility helpers: a failing child build and the diffoscope report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ci.image import reproduce
from ci.image.errors import ImageError


def test_a_failing_build_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"build control failed: .*image\.toml: not found"):
        reproduce.build_once(
            tmp_path, tmp_path / "out", reproduce.VARIANTS[0], [], "HEAD", tmp_path / "home"
        )


def test_diffoscope_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("".join(f"line {i}\n" for i in range(200)), encoding="utf-8")
    b.write_text("".join(f"line {i * 2}\n" for i in range(200)), encoding="utf-8")
    if shutil.which("diffoscope"):
        report = reproduce.diffoscope(a, b)
        assert "a.txt" in report and "more lines" in report
    monkeypatch.setattr("shutil.which", lambda _name: None)
    assert "diffoscope is not installed" in reproduce.diffoscope(a, b)
