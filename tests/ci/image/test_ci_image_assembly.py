"""The image's layout and archive: whole, index last, modes independent of the umask,
and the same bytes as the documents say."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ci.image import assembly
from ci.image.tarball import Entry, gzip_bytes, read_tar, write_tar
from ci.oci.digest import sha256


def tiny() -> assembly.Image:
    tar = write_tar([Entry("etc/x", "file", 0o644, b"x")], 1)
    layer = assembly.Layer("one", gzip_bytes(tar), sha256(tar), "c")
    run = assembly.RunConfig("65532:65532", ("/bin/x",), (), (), "/", {})
    cfg = assembly.config([layer], run, 1)
    man = assembly.manifest(cfg, [layer], {})
    return assembly.Image((layer,), cfg, man, assembly.index(man, "1", {}), "1", "bot4")


def test_layout_modes_ignore_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        assembly.write_layout(tiny(), tmp_path / "oci")
    finally:
        os.umask(old)
    modes = {
        str(p.relative_to(tmp_path / "oci")): stat.S_IMODE(p.stat().st_mode)
        for p in (tmp_path / "oci").rglob("*")
    }
    assert modes["index.json"] == modes["oci-layout"] == modes["manifest.json"] == 0o644
    assert modes["blobs"] == modes["blobs/sha256"] == 0o755
    assert stat.S_IMODE((tmp_path / "oci").stat().st_mode) == 0o755
    assert {m for k, m in modes.items() if k.startswith("blobs/sha256/")} == {0o644}


def test_index_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = tiny()
    assert len(assembly.layout_files(image)) == 6
    written: list[str] = []
    real_open = Path.open

    def spy(self: Path, *args: object, **kwargs: object) -> object:
        written.append(self.name)
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", spy)
    assembly.write_layout(image, tmp_path / "oci")
    assert written[-1] == "index.json"


def test_the_archive_holds_the_layout_files(tmp_path: Path) -> None:
    image = tiny()
    entries = {e.path: e.data for e in read_tar(assembly.archive(image, 1)) if e.kind == "file"}
    assert entries == assembly.layout_files(image)
    assert entries["blobs/sha256/" + image.digest.removeprefix("sha256:")] == image.manifest
