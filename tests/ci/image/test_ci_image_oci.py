"""The OCI layout writer: whole, index last, modes independent of the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ci.image import oci
from ci.image.tarball import Entry, gzip_bytes, sha256, write_tar


def tiny() -> oci.Image:
    tar = write_tar([Entry("etc/x", "file", 0o644, b"x")], 1)
    layer = oci.Layer("one", gzip_bytes(tar), sha256(tar), "c")
    run = oci.RunConfig("65532:65532", ("/bin/x",), (), (), "/", {})
    cfg = oci.config([layer], run, 1)
    man = oci.manifest(cfg, [layer], {})
    return oci.Image((layer,), cfg, man, oci.index(man, "1", {}), "1", "bot4")


def test_layout_modes_ignore_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        oci.write_layout(tiny(), tmp_path / "oci")
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
    order = [
        e.path for e in sorted(oci.layout_entries(image), key=lambda e: e.path == "index.json")
    ]
    assert order[-1] == "index.json" and len(order) == 6
    written: list[str] = []
    real_open = Path.open

    def spy(self: Path, *args: object, **kwargs: object) -> object:
        written.append(self.name)
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", spy)
    oci.write_layout(image, tmp_path / "oci")
    assert written[-1] == "index.json"
