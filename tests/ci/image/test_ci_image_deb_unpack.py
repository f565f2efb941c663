"""Unpacking real .debs built with dpkg-deb."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ci.image.deb_unpack import copyright_licenses, dropped, status_entry, unpack
from ci.image.errors import ImageError

DEP5 = (
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
    "Files: *\nLicense: MIT\n\nFiles: x/*\nLicense: GPL-2+\n\nFiles: y/*\nLicense: MIT\n"
)


def test_unpack_keeps_types_modes_and_copyright(tmp_path: Path, deb_factory: Any) -> None:
    deb = deb_factory(
        tmp_path,
        "demo",
        "1:1.0-1",
        {
            "usr/bin/demo": b"#!/bin/sh\n",
            "usr/lib/libdemo.so.1": b"ELF",
            "usr/share/doc/demo/copyright": DEP5.encode(),
            "usr/share/doc/demo/changelog": b"x",
            "usr/share/man/man1/demo.1": b"man",
        },
        links={"usr/lib/libdemo.so": "libdemo.so.1"},
        hardlinks={"usr/bin/demo2": "usr/bin/demo"},
        modes={"usr/bin/demo": 0o700},
        source="demo-src (1.0-1)",
    )
    got = unpack(deb, ["usr/share/doc/*", "usr/share/man/*"], ["usr/share/doc/*/copyright"])
    by_path = {e.path: e for e in got.entries}
    assert got.name == "demo" and got.version == "1:1.0-1" and got.architecture == "amd64"
    assert got.licenses == ("MIT", "GPL-2+")
    assert got.dropped == 4  # doc/demo and man/man1 (directories), changelog, demo.1
    assert by_path["usr/bin/demo"].mode == 0o755 and by_path["usr/bin/demo"].uid == 0
    assert by_path["usr/lib/libdemo.so"].kind == "symlink"
    assert by_path["usr/lib/libdemo.so"].linkname == "libdemo.so.1"
    assert {by_path["usr/bin/demo2"].kind, by_path["usr/bin/demo"].kind} == {"file", "hardlink"}
    assert "usr/share/doc/demo/changelog" not in by_path
    status = status_entry(got)
    assert status.path == "var/lib/dpkg/status.d/demo"
    lines = status.data.decode().splitlines()
    assert lines[:2] == ["Package: demo", "Status: install ok installed"]
    assert "Source: demo-src (1.0-1)" in lines


def test_dropping_a_hard_link_target_is_refused(tmp_path: Path, deb_factory: Any) -> None:
    deb = deb_factory(tmp_path, "hl", "1", {"a/file": b"x"}, hardlinks={"b/file": "a/file"})
    with pytest.raises(ImageError, match="links to dropped"):
        unpack(deb, ["a/*"])


def test_not_a_deb(tmp_path: Path) -> None:
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"not an ar archive")
    with pytest.raises(ImageError, match=r"not a readable \.deb"):
        unpack(bad)


def test_copyright_that_is_not_dep5_has_no_licences() -> None:
    assert copyright_licenses("This is free software.\nLicense: MIT\n") == ()


def test_dropped_globs() -> None:
    assert dropped("usr/share/doc/x/README", ["usr/share/doc/*"], [])
    assert not dropped("usr/share/doc/x/copyright", ["usr/share/doc/*"], ["*/copyright"])
    assert not dropped("usr/bin/x", ["usr/share/*"], [])
