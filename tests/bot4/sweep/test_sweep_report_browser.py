"""The report page opened in a real headless Chromium: it renders, images and all.

The page must stand alone (PNG inlined, no script, no network): Chromium runs with
networking off, screenshots the page, and the screenshot must show the heatmap's colours
(the red-to-green ramp) — which only appear if the inlined PNGs decoded and were drawn.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from bot4 import cli

CHROMIUM = ("chromium", "chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--window-size=1000,1400",
)


def chromium() -> str:
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not installed (Debian package chromium; scripts/gate installs it)")


def coloured_pixels(png: Path) -> tuple[int, int]:
    """Saturated (colour, not grey) pixels and non-white pixels of a screenshot."""
    data = Image.open(png).convert("RGB").tobytes()
    saturated = ink = 0
    for i in range(0, len(data), 3):
        pixel = data[i : i + 3]
        saturated += max(pixel) - min(pixel) > 40
        ink += pixel != b"\xff\xff\xff"
    return saturated, ink


def screenshot(browser: str, page: Path, tmp: Path) -> tuple[int, int]:
    shot = tmp / f"{page.stem}.png"
    run = subprocess.run(
        [
            browser,
            *FLAGS,
            f"--user-data-dir={tmp / 'profile'}",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return coloured_pixels(shot)


@pytest.mark.e2e
def test_report_renders_in_headless_chromium(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    browser = chromium()
    out = workspace / "out"
    spec = str(workspace / "spec.toml")
    assert cli.main(["sweep", spec, "--out", str(out), "--executor", "serial"]) == 0
    assert cli.main(["sweep", "report", str(out)]) == 0
    capsys.readouterr()
    page = out / "report.html"
    saturated, ink = screenshot(browser, page, tmp_path)
    assert ink > 50_000, "the page looks blank"
    assert saturated > 50_000, (saturated, ink)  # the plots were decoded and drawn
    # The check can fail: the same page with its images broken shows no colour.
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("base64,", "base64,AAAA"))
    assert screenshot(browser, broken, tmp_path)[0] < 5_000
    dom = subprocess.run(
        [
            browser,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    ).stdout
    assert "4 cells" in dom and dom.count('src="data:image/png;base64,') == 2
