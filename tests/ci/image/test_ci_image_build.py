"""End to end on the fixture project: lock → build → same digest twice → SBOM → scan."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from ci.image import build, lock_format
from ci.image.errors import ImageError
from ci.image.fetch import Cache


def test_lock_pins_the_closure_and_the_wheels(locked: Any) -> None:
    lock = lock_format.read_lock(locked.root / "image.lock")
    assert [d.name for d in lock.debs] == [
        "ca-certificates",
        "libc6",
        "python3.11-minimal",
        "tzdata",
    ]
    libc = next(d for d in lock.debs if d.name == "libc6")
    assert (libc.source, libc.source_version, libc.suite) == ("glibc", "2.36-9+t1", "bookworm")
    assert [(w.name, w.version) for w in lock.wheels] == [("demo", "1.0"), ("demodep", "2.0")]
    assert "http" not in (locked.root / "image.lock").read_text(encoding="utf-8")


def test_build_is_deterministic_and_complete(locked: Any, tmp_path: Path) -> None:
    cache = Cache(locked.cache)
    lines: list[str] = []
    first = build.build(locked.root, tmp_path / "a", cache, ["pip"], say=lines.append)
    second = build.build(locked.root, tmp_path / "b", cache, ["pip"], say=lines.append)
    assert first.image.digest == second.image.digest
    assert (tmp_path / "a" / "bot4-image.tar").read_bytes() == (
        tmp_path / "b" / "bot4-image.tar"
    ).read_bytes()
    assert (tmp_path / "a" / "digest").read_text(encoding="utf-8") == first.image.digest + "\n"
    assert any("base layer: 4 packages" in line for line in lines)

    index = json.loads((first.layout / "index.json").read_text(encoding="utf-8"))
    assert index["manifests"][0]["digest"] == first.image.digest
    manifest = json.loads(first.image.manifest)
    assert manifest["annotations"]["org.opencontainers.image.revision"] == first.revision.commit
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2026-01-02T03:04:06Z"
    config = json.loads(first.image.config)
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/bot4"]
    assert len(config["rootfs"]["diff_ids"]) == 3

    names: dict[str, tarfile.TarInfo] = {}
    for layer in first.image.layers:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.blob))) as tar:
            for info in tar:
                assert info.mtime == first.revision.epoch and info.uname == "" and info.gname == ""
                names[info.name] = info
    assert "usr/share/doc/libc6/copyright" in names
    assert "usr/share/doc/libc6/README" not in names and "usr/share/man/man1/x.1" not in names
    assert "usr/bin/debconf" not in names  # excluded package
    assert "var/lib/dpkg/status.d/libc6" in names
    assert names["home/nonroot"].uid == 65532
    assert names["tmp"].mode == 0o1777
    site = "usr/local/lib/python3.11/dist-packages"
    assert f"{site}/demo/__pycache__/__init__.cpython-311.pyc" in names
    assert f"{site}/demo/__pycache__/bad.cpython-311.pyc" not in names  # does not compile
    assert f"{site}/demo/tests/test_demo.py" not in names
    assert f"{site}/bot4/__pycache__/cli.cpython-311.pyc" in names
    assert "usr/local/bin/bot4" in names and "usr/local/bin/demo-tool" in names
    assert "etc/ssl/certs/ca-certificates.crt" in names

    bom = json.loads((tmp_path / "a" / "sbom.cdx.json").read_text(encoding="utf-8"))
    assert bom["metadata"]["component"]["hashes"][0]["content"] == first.image.digest[7:]
    purls = {c["purl"] for c in bom["components"]}
    assert "pkg:deb/debian/libc6@2.36-9%2Bt1?arch=amd64&distro=debian-12" in purls
    assert "pkg:pypi/demo@1.0" in purls and "pkg:pypi/bot4@0.1.0" in purls


def test_a_changed_spec_refuses_to_build(locked: Any, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(locked.root, root, symlinks=True)
    spec = root / "ci" / "image" / "image.toml"
    spec.write_text(spec.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    with pytest.raises(ImageError, match=r"changed since image\.lock was made"):
        build.gather(root, Cache(locked.cache), ["pip"], print)


def test_a_cache_entry_swapped_after_its_check_is_not_built_from(
    locked: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache re-hashes an entry and hands out its path; whoever can write the shared
    cache can swap the file before the build opens it. The swap is made at exactly that
    moment: the build refuses, and a swap after its private copy changes nothing."""
    cache = Cache(tmp_path / "cache")
    shutil.copytree(locked.cache, cache.root)  # the session's cache stays untouched
    lock = lock_format.read_lock(locked.root / "image.lock")
    libc = next(d for d in lock.debs if d.name == "libc6")
    other = next(d for d in lock.debs if d.name == "tzdata")  # a real .deb, another package
    genuine = build.build(locked.root, tmp_path / "genuine", cache, ["pip"], say=print).image
    checked = Cache.get

    def get_then_swap(self: Cache, sha256: str) -> Path | None:
        path = checked(self, sha256)
        if path is not None and sha256 == libc.sha256:
            path.write_bytes(self.path(other.sha256).read_bytes())
        return path

    monkeypatch.setattr(Cache, "get", get_then_swap)
    with pytest.raises(ImageError, match=r"libc6 .*changed after its sha256 was checked"):
        build.build(locked.root, tmp_path / "swapped", cache, ["pip"], say=print)
    assert not (tmp_path / "swapped").exists()
    # the swap right after the build's private copy is made: the image is the genuine one
    monkeypatch.setattr(Cache, "get", checked)
    shutil.rmtree(cache.root)
    shutil.copytree(locked.cache, cache.root)
    copied = Cache.copy_to

    def copy_then_swap(self: Cache, sha256: str, dest: Path, what: str) -> Path:
        made = copied(self, sha256, dest, what)
        self.path(sha256).write_bytes(self.path(other.sha256).read_bytes())
        return made

    monkeypatch.setattr(Cache, "copy_to", copy_then_swap)
    again = build.build(locked.root, tmp_path / "again", cache, ["pip"], say=print).image
    assert again.digest == genuine.digest
