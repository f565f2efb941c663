"""The one OCI layout reader and writer: hash-checked reads, whole-or-absent writes,
modes independent of the umask, hostile index entries refused before any path is built."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ci.oci import layout, mediatypes
from ci.oci.descriptor import REF_NAME, descriptor
from ci.oci.digest import canonical, sha256
from ci.oci.errors import OCIError
from ci.oci.index import index
from ci.oci.layout import Layout


def image() -> tuple[dict[str, bytes], bytes, str]:
    """(blobs, index.json bytes, manifest digest) of a one-layer image tagged ``1``."""
    config, layer = b"{}", b"layer"
    man = canonical(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.MANIFEST,
            "config": descriptor(mediatypes.CONFIG, config),
            "layers": [descriptor(mediatypes.LAYER, layer)],
        }
    )
    blobs = {sha256(b): b for b in (config, layer, man)}
    return blobs, index([descriptor(mediatypes.MANIFEST, man, {REF_NAME: "1"})]), sha256(man)


def test_create_then_read_back(tmp_path: Path) -> None:
    blobs, idx, digest = image()
    old = os.umask(0o077)
    try:
        layout.create(tmp_path / "oci", layout.files(blobs, idx))
    finally:
        os.umask(old)
    lay = Layout(tmp_path / "oci")
    assert lay.select().digest == lay.select("1").digest == digest
    assert lay.tag() == "1"
    assert all(lay.blob(d) == b for d, b in blobs.items())
    assert json.loads((tmp_path / "oci" / "oci-layout").read_bytes()) == layout.VERSION
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "oci").rglob("*")}
    assert {m for n, m in modes.items() if n not in {"blobs", "sha256"}} == {0o644}
    assert modes["blobs"] == modes["sha256"] == 0o755
    assert stat.S_IMODE((tmp_path / "oci").stat().st_mode) == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["oci"]  # no scratch left beside it


def test_create_refuses_an_existing_directory_and_leaves_it_alone(tmp_path: Path) -> None:
    blobs, idx, _ = image()
    (tmp_path / "oci").mkdir()
    (tmp_path / "oci" / "mine").write_text("keep")
    with pytest.raises(OCIError, match="already exists; choose a new directory"):
        layout.create(tmp_path / "oci", layout.files(blobs, idx))
    assert [p.name for p in (tmp_path / "oci").iterdir()] == ["mine"]


def test_a_failed_create_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs, idx, _ = image()

    def full(_dest: Path, _content: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(layout, "write", full)
    with pytest.raises(OSError, match="No space"):
        layout.create(tmp_path / "oci", layout.files(blobs, idx))
    assert list(tmp_path.iterdir()) == []


def test_a_blob_named_by_a_path_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(OCIError, match="not a sha256 digest"):
        layout.create(tmp_path / "oci", layout.files({"sha256:../../escape": b"x"}, b"{}"))
    assert list(tmp_path.iterdir()) == []


def test_the_index_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs, idx, _ = image()
    written: list[str] = []
    real_open = Path.open

    def spy(self: Path, *args: object, **kwargs: object) -> object:
        written.append(self.name)
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", spy)
    layout.write(tmp_path / "oci", layout.files(blobs, idx, {"manifest.json": b"[]"}))
    assert written[-1] == "index.json" and len(written) == 6


def test_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(OCIError, match="not an OCI image layout"):
        Layout(tmp_path).index()
    (tmp_path / "index.json").write_text('{"manifests": []}')
    with pytest.raises(OCIError, match="lists no manifests"):
        Layout(tmp_path).index()
    (tmp_path / "index.json").write_text('{"manifests": [{"digest": 1}]}')
    with pytest.raises(OCIError, match="a descriptor without a digest"):
        Layout(tmp_path).index()
    blobs, idx, digest = image()
    src = tmp_path / "src"
    layout.create(src, layout.files(blobs, idx))
    lay = Layout(src)
    with pytest.raises(OCIError, match="no manifest tagged 'nope'"):
        lay.select("nope")
    doc = json.loads(idx)
    doc["manifests"].append(doc["manifests"][0])
    (src / "index.json").write_text(json.dumps(doc))
    with pytest.raises(OCIError, match="2 manifests; name one"):
        lay.select()
    doc["manifests"] = [dict(doc["manifests"][0], mediaType="application/x-unknown")]
    (src / "index.json").write_text(json.dumps(doc))
    with pytest.raises(OCIError, match="unsupported manifest media type"):
        lay.select()
    doc["manifests"] = [
        dict(doc["manifests"][0], mediaType=mediatypes.MANIFEST, digest="sha256:../../x")
    ]
    (src / "index.json").write_text(json.dumps(doc))
    with pytest.raises(OCIError, match="not a sha256 digest"):
        lay.select()
    (src / "blobs" / "sha256" / digest[7:]).write_bytes(b"corrupt")
    with pytest.raises(OCIError, match="is corrupted"):
        lay.blob(digest)
    (src / "blobs" / "sha256" / digest[7:]).unlink()
    with pytest.raises(OCIError, match="missing"):
        lay.blob(digest)
