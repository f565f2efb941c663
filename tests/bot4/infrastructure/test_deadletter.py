"""Dead-letter file: JSON lines, 0600, appended, readable back, malformed lines reported."""

from __future__ import annotations

import math
import stat
from pathlib import Path

import pytest

from bot4.infrastructure.deadletter import DeadLetter, append_dead_letters, read_dead_letters
from bot4.infrastructure.errors import InfrastructureError


def test_round_trip_and_append(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    first = [DeadLetter("q", 0, 1.5, {"id": 1}), DeadLetter("q", 2, 1.5, [1, "x"])]
    assert append_dead_letters(path, first) == 2
    assert append_dead_letters(path, [DeadLetter("r", -1, 2.0, None)]) == 1
    assert read_dead_letters(path) == [*first, DeadLetter("r", -1, 2.0, None)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().splitlines()[0] == (
        b'{"drained_at": 1.5, "item": {"id": 1}, "priority": 0, "queue": "q"}'
    )


def test_a_bad_item_fails_the_whole_batch(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    with pytest.raises(ValueError, match="Out of range float"):
        append_dead_letters(path, [DeadLetter("q", 0, 0.0, 1), DeadLetter("q", 0, 0.0, math.nan)])
    assert not path.exists()


@pytest.mark.parametrize(
    "line",
    [
        b"not json\n",
        b'{"queue": "q"}\n',
        b'{"queue": "q", "priority": "x", "drained_at": 0, "item": 1}\n',
    ],
)
def test_malformed_lines_are_reported_with_their_number(tmp_path: Path, line: bytes) -> None:
    path = tmp_path / "dead.jsonl"
    append_dead_letters(path, [DeadLetter("q", 0, 0.0, 1)])
    with path.open("ab") as handle:
        handle.write(line)
    with pytest.raises(InfrastructureError, match=r"dead.jsonl line 2 is not a valid record"):
        read_dead_letters(path)
