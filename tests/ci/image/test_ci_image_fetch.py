"""The content-addressed cache and fetching through apt-helper (file:// mirror) and pip."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest

from ci.image import apt_index, fetch
from ci.image.errors import ImageError, SupersededError
from ci.image.lock_format import DebPin, WheelPin


def pin_for(deb: Path, name: str, version: str, suite: str = "bookworm") -> DebPin:
    sha = hashlib.sha256(deb.read_bytes()).hexdigest()
    return DebPin(
        name,
        version,
        "amd64",
        name,
        version,
        suite,
        f"pool/main/{name[0]}/{name}/{deb.name}",
        deb.stat().st_size,
        sha,
    )


def test_cache_put_get_and_eviction(tmp_path: Path) -> None:
    cache = fetch.Cache(tmp_path / "cache")
    src = tmp_path / "blob"
    src.write_bytes(b"content")
    sha = hashlib.sha256(b"content").hexdigest()
    assert cache.get(sha) is None
    stored = cache.put(src, sha, "blob")
    assert stored == cache.path(sha) and cache.get(sha) == stored
    stored.write_bytes(b"tampered")
    assert cache.get(sha) is None and not stored.exists()
    src.write_bytes(b"other")
    with pytest.raises(ImageError, match="does not match the lock"):
        cache.put(src, sha, "blob")
    assert not src.exists()


def test_default_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BOT4_IMAGE_CACHE", str(tmp_path / "c"))
    assert fetch.default_cache() == tmp_path / "c"
    monkeypatch.delenv("BOT4_IMAGE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fetch.default_cache() == tmp_path / "bot4" / "image"


def test_fetch_debs_from_a_file_mirror(tmp_path: Path, distro: Any) -> None:
    deb = distro.debs["tzdata"]
    pin = pin_for(deb, "tzdata", "2026a-0+t1")
    (tmp_path / "mirror" / pin.filename).parent.mkdir(parents=True)
    (tmp_path / "mirror" / pin.filename).write_bytes(deb.read_bytes())
    target = apt_index.IndexTarget(
        "bookworm", "bookworm", "main", "amd64", f"file://{tmp_path}/mirror/", tmp_path / "P"
    )
    cache = fetch.Cache(tmp_path / "cache")
    got = fetch.fetch_debs([pin], [target], cache)
    assert got["tzdata"] == cache.path(pin.sha256)
    # A one-byte change to the locked hash is refused before anything is built.
    flipped = ("1" if pin.sha256[0] == "0" else "0") + pin.sha256[1:]
    bad = DebPin(**{**vars(pin), "sha256": flipped})
    with pytest.raises(ImageError, match=r"download of .* failed"):
        fetch.fetch_debs([bad], [target], fetch.Cache(tmp_path / "cache2"))
    other = DebPin(**{**vars(pin), "suite": "sid", "sha256": "1" * 64})
    with pytest.raises(ImageError, match="suite sid is not configured"):
        fetch.fetch_debs([other], [target], cache)


def test_check_debs_superseded_edited_and_cached(tmp_path: Path) -> None:
    text = (
        "Package: libssl3\nVersion: 3.0.22-1\nArchitecture: amd64\n"
        "Filename: pool/updates/main/o/openssl/libssl3_3.0.22-1_amd64.deb\nSize: 1\n"
        f"SHA256: {'9' * 64}\n"
    )
    archive = apt_index.build_archive(apt_index.parse_packages(text, "bookworm-security"))
    cache = fetch.Cache(tmp_path / "cache")
    old = DebPin(
        "libssl3",
        "3.0.15-1",
        "amd64",
        "openssl",
        "3.0.15-1",
        "bookworm-security",
        "pool/x.deb",
        1,
        "8" * 64,
    )
    gone = DebPin("libgone1", "1", "amd64", "gone", "1", "bookworm", "pool/y.deb", 1, "7" * 64)
    with pytest.raises(SupersededError) as info:
        fetch.check_debs([old, gone], archive, cache)
    assert info.value.exit_code == 3 and info.value.names == ("libssl3", "libgone1")
    assert (
        "libssl3 3.0.15-1 superseded by a security update "
        "(the index now has 3.0.22-1 in bookworm-security)" in str(info.value)
    )
    assert "libgone1 1 removed from the archive" in str(info.value)
    assert str(info.value).endswith("run scripts/gate -s image-lock")
    edited = DebPin(
        "libssl3",
        "3.0.22-1",
        "amd64",
        "openssl",
        "3.0.22-1",
        "bookworm-security",
        "pool/updates/main/o/openssl/libssl3_3.0.22-1_amd64.deb",
        1,
        "6" * 64,
    )
    with pytest.raises(ImageError, match="refusing to build"):
        fetch.check_debs([edited], archive, cache)
    current = DebPin(**{**vars(edited), "sha256": "9" * 64})
    assert fetch.check_debs([current], archive, cache) == []
    blob = tmp_path / "b"
    blob.write_bytes(b"cached")
    sha = hashlib.sha256(b"cached").hexdigest()
    cache.put(blob, sha, "b")
    cached_old = DebPin(**{**vars(old), "sha256": sha})
    (warning,) = fetch.check_debs([cached_old], archive, cache)
    assert "building from the cached copy" in warning


def test_platform_tags() -> None:
    tags = fetch.platform_tags("manylinux_2_36_x86_64")
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_5_x86_64" in tags
    assert "manylinux2014_x86_64" in tags and "manylinux1_x86_64" in tags
    with pytest.raises(ImageError, match="manylinux_2_NN_ARCH"):
        fetch.platform_tags("linux_x86_64")


def test_find_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fetch.find_pip("/x/pip") == ["/x/pip"]
    assert fetch.find_pip(None)[:2] == [sys.executable, "-m"]
    monkeypatch.setattr("sys.executable", "/bin/false")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ImageError, match="no pip found"):
        fetch.find_pip(None)


def test_fetch_wheels_offline(tmp_path: Path, offline_pip: Path) -> None:
    wheel = offline_pip / "demodep-2.0-py3-none-any.whl"
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    pin = WheelPin("demodep", "2.0", wheel.name, sha)
    cache = fetch.Cache(tmp_path / "cache")
    pip = fetch.find_pip(None)
    got = fetch.fetch_wheels([pin], cache, pip, "manylinux_2_36_x86_64", "3.11")
    assert got["demodep"] == cache.path(sha)
    assert fetch.fetch_wheels([pin], cache, pip, "manylinux_2_36_x86_64", "3.11") == got
    wrong = WheelPin("demodep", "2.0", "demodep-2.0-other.whl", sha)
    with pytest.raises(ImageError, match="pip did not fetch"):
        fetch.fetch_wheels(
            [wrong], fetch.Cache(tmp_path / "c2"), pip, "manylinux_2_36_x86_64", "3.11"
        )
    missing = WheelPin("demodep", "9.9", wheel.name, sha)
    with pytest.raises(ImageError, match="pip download failed"):
        fetch.fetch_wheels(
            [missing], fetch.Cache(tmp_path / "c3"), pip, "manylinux_2_36_x86_64", "3.11"
        )


def test_cache_read_and_copy_use_exactly_the_checked_bytes(tmp_path: Path) -> None:
    """``read`` hashes the bytes it returns (no check-then-reopen); a drifted entry is
    refused in one line, evicted, and no copy is left behind."""
    cache = fetch.Cache(tmp_path / "cache")
    src = tmp_path / "blob"
    src.write_bytes(b"content")
    sha = hashlib.sha256(b"content").hexdigest()
    with pytest.raises(ImageError, match=r"^blob is not in the download cache \(No such file"):
        cache.read(sha, "blob")
    cache.put(src, sha, "blob")
    assert cache.read(sha, "blob") == b"content"
    copy = cache.copy_to(sha, tmp_path / "private" / "blob.deb", "blob")
    assert copy.read_bytes() == b"content"
    cache.path(sha).write_bytes(b"swapped")
    with pytest.raises(ImageError, match="changed after its sha256 was checked; not using it"):
        cache.copy_to(sha, tmp_path / "private" / "other.deb", "blob")
    assert not cache.path(sha).exists() and not (tmp_path / "private" / "other.deb").exists()
