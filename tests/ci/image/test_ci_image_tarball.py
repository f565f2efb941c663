"""The deterministic tar writer."""

from __future__ import annotations

import ast
import gzip
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from ci.image.errors import ImageError
from ci.image.tarball import (
    Entry,
    complete,
    extract,
    gzip_bytes,
    normal_mode,
    read_tar,
    write_tar,
)
from ci.oci.digest import sha256


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
    assert names[:4] == [".", "home", "home/nonroot", "usr"]
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


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, body in members:
            info.size = len(body) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(body) if info.isreg() else None)
    return buf.getvalue()


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


HOSTILE = {
    "absolute path": [(_member("/abs"), b"x")],
    "dot-dot path": [(_member("a/../../escape"), b"x")],
    "symlink then write through it": [
        (_member("out", tarfile.SYMTYPE, "../outside"), b""),
    ],
    "absolute symlink then write through it": [
        (_member("etc", tarfile.SYMTYPE, "OUTSIDE"), b""),
        (_member("etc/passwd"), b"owned"),
    ],
    "hard link out of the tree": [(_member("h", tarfile.LNKTYPE, "../outside/secret"), b"")],
    "absolute hard link": [(_member("h", tarfile.LNKTYPE, "/etc/passwd"), b"")],
    "character device": [(_member("dev/null", tarfile.CHRTYPE), b"")],
    "block device": [(_member("sda", tarfile.BLKTYPE), b"")],
    "fifo": [(_member("pipe", tarfile.FIFOTYPE), b"")],
    "file as the root": [(_member("./"), b"x")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_extract_refuses_hostile_tars(case: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    members = [
        (
            _member(i.name, i.type, str(outside) if i.linkname == "OUTSIDE" else i.linkname),
            body,
        )
        for i, body in HOSTILE[case]
    ]
    dest = tmp_path / "dest"
    with pytest.raises(ImageError, match=r"refusing|root entry"):
        extract(_tar(*members), dest, owners=False, absolute_links=case.startswith("absolute sym"))
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"
    assert not any(p.name in {"h", "sda", "pipe", "null", "passwd"} for p in dest.rglob("*"))


def test_extract_refuses_absolute_symlinks_unless_asked(tmp_path: Path) -> None:
    data = _tar((_member("localtime", tarfile.SYMTYPE, "/usr/share/zoneinfo/UTC"), b""))
    with pytest.raises(ImageError, match="absolute symlink"):
        extract(data, tmp_path / "src", owners=False, absolute_links=False)
    extract(data, tmp_path / "rootfs", owners=False, absolute_links=True)
    assert (tmp_path / "rootfs" / "localtime").readlink() == Path("/usr/share/zoneinfo/UTC")


def test_extract_a_layer_exactly_under_umask_077(tmp_path: Path) -> None:
    entries = [
        Entry("usr/bin/tool", "file", 0o755, b"#!x\n"),
        Entry("usr/lib/a.so", "file", 0o644, b"lib"),
        Entry("usr/lib/b.so", "hardlink", 0o644, b"", "usr/lib/a.so"),
        Entry("usr/lib/link", "symlink", 0o777, b"", "a.so"),
        Entry("tmp", "dir", 0o1777),
    ]
    dest = tmp_path / "rootfs"
    old = os.umask(0o077)
    try:
        dest.mkdir()
        extract(
            gzip_bytes(write_tar(entries, 1_700_000_000)), dest, owners=True, absolute_links=True
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755  # from the './' entry
    assert stat.S_IMODE((dest / "usr").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "usr/bin/tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "tmp").stat().st_mode) == 0o1777
    assert (dest / "usr/lib/b.so").stat().st_ino == (dest / "usr/lib/a.so").stat().st_ino
    assert (dest / "usr/lib/link").readlink() == Path("a.so")
    assert (dest / "usr/bin/tool").stat().st_mtime == 1_700_000_000


def test_every_layer_starts_with_a_root_entry() -> None:
    with tarfile.open(fileobj=io.BytesIO(write_tar(sample(), 7))) as tar:
        first = tar.getmembers()[0]
    assert (first.name, first.type, first.mode, first.uid, first.gid, first.mtime) == (
        ".",
        tarfile.DIRTYPE,
        0o755,
        0,
        0,
        7,
    )


def test_extract_runs_on_debians_python_3_11_2(tmp_path: Path) -> None:
    """The unpacker runs in Debian containers: prove it on Debian's own interpreter."""
    debian_python = Path("/usr/bin/python3.11")
    assert debian_python.exists(), "Debian's python3.11 is required (apt-get install python3.11)"
    archive = tmp_path / "layer.tar"
    archive.write_bytes(write_tar(sample(), 7))
    hostile = tmp_path / "hostile.tar"
    hostile.write_bytes(_tar((_member("../x"), b"x")))
    script = (
        "import sys; from pathlib import Path; from ci.image.tarball import extract\n"
        "from ci.image.errors import ImageError\n"
        "kw = {'owners': False, 'absolute_links': True}\n"
        "extract(Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]), **kw)\n"
        "try:\n extract(Path(sys.argv[3]).read_bytes(), Path(sys.argv[2]), **kw)\n"
        "except ImageError as e:\n print('refused:', e)\n"
        "print(sys.version.split()[0])\n"
    )
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [
            str(debian_python),
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(root)!r})\n{script}",
            str(archive),
            str(tmp_path / "out"),
            str(hostile),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "refused: '../x'" in result.stdout
    assert (tmp_path / "out" / "usr" / "bin" / "tool").read_bytes() == b"#!x\n"
    print(f"extract ran on Debian's CPython {result.stdout.split()[-1]}")


def test_no_extractall_filter_in_container_code() -> None:
    """``extractall(filter=…)`` is missing from Debian's 3.11.2: nothing in ci/ may use it."""
    root = Path(__file__).resolve().parents[3] / "ci"
    offenders = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"extractall", "extract"}
                and any(k.arg == "filter" for k in node.keywords)
            ):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
