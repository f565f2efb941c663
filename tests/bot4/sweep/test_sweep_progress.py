"""The progress line: done/total, already done, rate and ETA; short in a log, live on a tty."""

from __future__ import annotations

import io
import re

from bot4.sweep.runner import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_every_5_percent_with_rate_and_eta() -> None:
    stream = io.StringIO()
    progress = Progress(total=50, skipped=10, stream=stream)
    for _ in range(40):
        progress.advance()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 20  # every 2 of the 40 cells run now
    assert lines[0].startswith("sweep [") and "12/50 cells (10 already done)" in lines[0]
    assert re.search(r"\d+\.\d\d cells/s ETA (\d+:\d\d|\?)$", lines[0])
    assert "50/50 cells" in lines[-1] and "[####################]" in lines[-1]


def test_a_terminal_gets_one_line_redrawn_in_place() -> None:
    stream = Tty()
    progress = Progress(total=3, skipped=0, stream=stream)
    for _ in range(3):
        progress.advance()
    progress.close()
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
