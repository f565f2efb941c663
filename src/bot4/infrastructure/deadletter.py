"""The dead-letter file: JSON lines appended and fsync'd, so a drained item survives a crash.

Each line is one item: ``{"queue", "priority", "drained_at", "item"}`` with sorted
keys. The file is created with mode 0600 (items may carry order details) and its
directory is fsync'd when the file is new, so the file itself survives a crash too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot4.infrastructure.errors import InfrastructureError


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One drained item as written to (and read back from) the file."""

    queue: str
    priority: int
    drained_at: float
    item: Any

    def to_line(self) -> bytes:
        """The JSON line; raises ``TypeError``/``ValueError`` if the item is not JSON-ready."""
        record = {
            "queue": self.queue,
            "priority": self.priority,
            "drained_at": self.drained_at,
            "item": self.item,
        }
        return json.dumps(record, sort_keys=True, allow_nan=False).encode() + b"\n"


def append_dead_letters(path: Path, letters: Iterable[DeadLetter]) -> int:
    """Append ``letters`` to ``path`` and fsync; returns how many were written.

    Every line is serialised before anything is written, so a bad item fails the
    whole batch and leaves the file untouched.
    """
    lines = [letter.to_line() for letter in letters]
    data = b"".join(lines)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return len(lines)


def read_dead_letters(path: Path) -> list[DeadLetter]:
    """Read a dead-letter file back (to replay it); a malformed line is a clear error."""
    letters: list[DeadLetter] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                record = json.loads(raw)
                letters.append(
                    DeadLetter(
                        queue=str(record["queue"]),
                        priority=int(record["priority"]),
                        drained_at=float(record["drained_at"]),
                        item=record["item"],
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise InfrastructureError(
                    f"dead-letter file {path} line {number} is not a valid record ({exc}); "
                    "fix or remove that line before replaying"
                ) from None
    return letters
