"""The image's layout and archive: whole, index last, modes independent of the umask,
and the same bytes as the documents say."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

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


def test_the_archive_holds_the_layout_files(tmp_path: Path) -> None:
    image = tiny()
    entries = {e.path: e.data for e in read_tar(assembly.archive(image, 1)) if e.kind == "file"}
    assert entries == assembly.layout_files(image)
    assert entries["blobs/sha256/" + image.digest.removeprefix("sha256:")] == image.manifest


def test_documents_and_archive_are_byte_stable() -> None:
    """Pinned from the code before ci.oci existed: moving the documents, digests and layout
    into the shared core changed no byte of an image (its digest is its identity)."""
    image = tiny()
    assert image.digest == "sha256:dbcb67f2e8437f3c02124a43e617ed5361c7bd81a87ffdf7f3b13ae3abfd3bda"
    archive = hashlib.sha256(assembly.archive(image, 7)).hexdigest()
    # pragma: allowlist nextline secret - a digest, not a secret
    assert archive == "c49a7d7c0476f3a5fbcb47972ecccb8e261502ba8096c496d46b6d79b371f484"
