"""The shared file helpers: whole-or-absent writes and streamed file hashes."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from ci.files import atomic_write, current_umask, sha256_file


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


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_gives_a_new_file_the_mode_a_plain_write_would(
    tmp_path: Path, umask: int, expected: int
) -> None:
    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "toolchain.lock", "x\n")
        with (tmp_path / "plain").open("w") as handle:
            handle.write("x\n")
        assert current_umask() == umask
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "toolchain.lock").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == expected


def test_atomic_write_keeps_an_existing_files_mode(tmp_path: Path) -> None:
    target = tmp_path / "run.sh"
    target.write_text("old\n")
    target.chmod(0o750)
    previous = os.umask(0o077)
    try:
        atomic_write(target, "new\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    assert target.read_text() == "new\n"
