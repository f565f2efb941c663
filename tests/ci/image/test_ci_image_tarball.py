"""The deterministic tar writer."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from ci.image.errors import ImageError
from ci.image.tarball import Entry, complete, gzip_bytes, normal_mode, read_tar, sha256, write_tar


def sample() -> list[Entry]:
    return [
        Entry("usr/bin/tool", "file", 0o755, b"#!x\n"),
        Entry("usr/lib/a.so", "file", 0o644, b"lib"),
        Entry("usr/lib/b.so", "hardlink", 0o644, b"", "usr/lib/a.so"),
        Entry("usr/lib/aa.so", "hardlink", 0o644, b"", "usr/lib/a.so"),
        Entry("usr/bin/link", "symlink", 0o777, b"", "tool"),
        Entry("home/nonroot", "dir", 0o700, uid=65532, gid=65532),
        Entry("x/" + "d" * 120 + "/long-name-needs-pax", "file", 0o644, b"long"),
    ]


def test_same_entries_in_any_order_give_the_same_bytes() -> None:
    one = write_tar(sample(), 1_700_000_000)
    two = write_tar(list(reversed(sample())), 1_700_000_000)
    assert one == two
    assert write_tar(sample(), 1) != one  # mtime is part of the content


def test_headers_are_normalised_and_parents_added() -> None:
    data = write_tar(sample(), 42)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        infos = {i.name: i for i in tar}
        names = list(infos)
    assert names[:3] == ["home", "home/nonroot", "usr"]
    assert all(i.mtime == 42 and i.uname == "" and i.gname == "" for i in infos.values())
    assert infos["home/nonroot"].uid == 65532 and infos["home"].mode == 0o755
    assert infos["usr/bin/link"].issym() and infos["usr/bin/link"].linkname == "tool"
    # The hard-link group is carried by its first path in order.
    assert infos["usr/lib/a.so"].isreg()
    assert infos["usr/lib/aa.so"].islnk() and infos["usr/lib/aa.so"].linkname == "usr/lib/a.so"
    assert all(
        "atime" not in i.pax_headers and "ctime" not in i.pax_headers for i in infos.values()
    )
    long = next(n for n in names if n.endswith("long-name-needs-pax"))
    assert len(long) > 100


def test_hard_link_group_is_rewritten_to_its_first_path() -> None:
    entries = complete(
        [Entry("b", "file", 0o644, b"data"), Entry("a", "hardlink", 0o644, b"", "b")]
    )
    by_path = {e.path: e for e in entries}
    assert by_path["a"].kind == "file" and by_path["a"].data == b"data"
    assert by_path["b"].kind == "hardlink" and by_path["b"].linkname == "a"


def test_directory_order_is_component_wise() -> None:
    entries = complete([Entry("a-b", "file", 0o644), Entry("a/b", "file", 0o644)])
    assert [e.path for e in entries] == ["a", "a/b", "a-b"]


def test_round_trip_through_read_tar() -> None:
    back = {e.path: e for e in read_tar(gzip_bytes(write_tar(sample(), 7)))}
    assert back["usr/bin/tool"].data == b"#!x\n" and back["usr/bin/tool"].mode == 0o755
    assert back["usr/lib/b.so"].kind == "hardlink"
    assert back["usr/bin/link"].kind == "symlink"
    assert back["home/nonroot"].kind == "dir"


def test_gzip_has_no_timestamp_or_name() -> None:
    blob = gzip_bytes(b"payload" * 100)
    assert blob == gzip_bytes(b"payload" * 100)
    assert blob[4:8] == b"\0\0\0\0"  # MTIME
    assert blob[3] & 0x08 == 0  # no FNAME
    assert gzip.decompress(blob) == b"payload" * 100
    assert sha256(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("kind", "mode", "want"),
    [
        ("file", 0o700, 0o755),
        ("file", 0o640, 0o644),
        ("file", 0o4755, 0o4755),
        ("dir", 0o700, 0o755),
        ("dir", 0o1777, 0o1777),
        ("dir", 0o1755, 0o1755),
        ("symlink", 0o644, 0o777),
    ],
)
def test_normal_mode(kind: str, mode: int, want: int) -> None:
    assert normal_mode(kind, mode) == want  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["", "/abs", "a/../b", "a//b", "./a", "a/."])
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(ImageError, match="unsafe or non-canonical"):
        Entry(path, "file", 0o644)


def test_bad_entries_are_refused() -> None:
    with pytest.raises(ImageError, match="needs a target"):
        Entry("a", "symlink", 0o777)
    with pytest.raises(ImageError, match="only regular files"):
        Entry("a", "dir", 0o755, b"x")
    with pytest.raises(ImageError, match="two different entries"):
        complete([Entry("a", "file", 0o644, b"1"), Entry("a", "file", 0o644, b"2")])
    with pytest.raises(ImageError, match="has children"):
        complete([Entry("a", "file", 0o644), Entry("a/b", "file", 0o644)])
    with pytest.raises(ImageError, match="not a regular file"):
        complete([Entry("a", "hardlink", 0o644, b"", "missing")])
