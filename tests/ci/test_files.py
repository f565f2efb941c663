"""The shared file helpers: whole-or-absent writes and streamed file hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ci.files import atomic_write, sha256_file


def test_sha256_file_streams_past_one_chunk(tmp_path: Path) -> None:
    data = bytes(range(256)) * 8193  # a little over 2 MiB: three reads
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_atomic_write_leaves_the_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "lock"
    atomic_write(target, "old\n")

    def broken(self: Path, _target: Path) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", broken)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["lock"]  # no temp sibling left
