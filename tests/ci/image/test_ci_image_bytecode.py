"""Bytecode compiled by the rootfs's own interpreter."""

from __future__ import annotations

import importlib.util
import marshal
from pathlib import Path
from typing import Any

import pytest

from ci.image import bytecode
from ci.image.deb_unpack import unpack
from ci.image.errors import ImageError
from ci.image.tarball import Entry


def test_materialize_writes_every_kind(tmp_path: Path) -> None:
    bytecode.materialize(
        [
            Entry("a/f", "file", 0o755, b"x"),
            Entry("a/h", "hardlink", 0o755, b"", "a/f"),
            Entry("a/s", "symlink", 0o777, b"", "f"),
            Entry("d", "dir", 0o700),
        ],
        tmp_path,
    )
    assert (tmp_path / "a" / "f").read_bytes() == b"x"
    assert (tmp_path / "a" / "h").stat().st_ino == (tmp_path / "a" / "f").stat().st_ino
    assert (tmp_path / "a" / "s").readlink() == Path("f")
    assert (tmp_path / "d").is_dir()


def test_compile_with_the_rootfs_python(tmp_path: Path, distro: Any) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    bytecode.materialize(unpack(distro.debs["python3.11-minimal"]).entries, root)
    sources = [
        Entry("usr/local/lib/python3.11/dist-packages/m.py", "file", 0o644, b"X = 1\n"),
        Entry("usr/local/lib/python3.11/dist-packages/bad.py", "file", 0o644, b"def (:\n"),
        Entry("usr/local/lib/python3.11/dist-packages/data.txt", "file", 0o644, b"x"),
    ]
    (pyc,) = bytecode.compile_sources(root, sources)
    assert pyc.path == "usr/local/lib/python3.11/dist-packages/__pycache__/m.cpython-311.pyc"
    assert pyc.data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc.data[4:8], "little") == 0b01  # hash-based, unchecked
    code = marshal.loads(pyc.data[16:])  # noqa: S302 - bytecode this test just compiled
    assert code.co_filename == "/usr/local/lib/python3.11/dist-packages/m.py"
    again = tmp_path / "again"
    again.mkdir()
    bytecode.materialize(unpack(distro.debs["python3.11-minimal"]).entries, again)
    assert bytecode.compile_sources(again, sources) == [pyc]
    assert bytecode.compile_sources(root, []) == []


def test_missing_loader_or_broken_interpreter(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no dynamic loader"):
        bytecode.interpreter_argv(tmp_path)
    loader = tmp_path / "lib64" / "ld-linux-x86-64.so.2"
    loader.parent.mkdir()
    loader.symlink_to("/bin/false")
    with pytest.raises(ImageError, match="no dynamic loader"):
        bytecode.interpreter_argv(tmp_path)
    loader.unlink()
    loader.write_bytes(Path("/bin/false").read_bytes())
    loader.chmod(0o755)
    source = Entry("m.py", "file", 0o644, b"X = 1\n")
    with pytest.raises(ImageError, match="could not compile bytecode"):
        bytecode.compile_sources(tmp_path, [source])
