"""Stripping shared objects in pure Python: real wheel binaries (a Cython extension and
patchelf-repaired OpenBLAS from numpy's wheel), loaded after stripping, plus the layouts
the stripper must refuse to touch."""

from __future__ import annotations

import ctypes
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from ci.image import elf
from ci.image.tarball import Entry

NUMPY = Path(numpy.__file__).parent
SHDR = struct.Struct("<IIQQQQIIQQ")
PHDR = struct.Struct("<IIQQQQQQ")


def _pcg64() -> bytes:
    return next((NUMPY / "random").glob("_pcg64.cpython-*.so")).read_bytes()


def _openblas() -> Path:
    found = sorted((NUMPY.parent / "numpy.libs").glob("libscipy_openblas*.so"))
    assert found, "numpy's wheel bundles OpenBLAS under numpy.libs/"
    return found[0]


def _header(data: bytes) -> tuple[int, int, int, int, int]:
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phnum, _, shnum, shstrndx = struct.unpack_from("<HHHH", data, 56)
    return phoff, shoff, phnum, shnum, shstrndx


def _sections(data: bytes) -> dict[str, tuple[int, ...]]:
    """Active sections by name: (index, type, flags, offset, size, link)."""
    _, shoff, _, shnum, shstrndx = _header(data)
    raw = [SHDR.unpack_from(data, shoff + i * SHDR.size) for i in range(shnum)]
    names = data[raw[shstrndx][4] : raw[shstrndx][4] + raw[shstrndx][5]]
    out: dict[str, tuple[int, ...]] = {}
    for i, r in enumerate(raw):
        if r[1]:
            name = names[r[0] : names.index(b"\0", r[0])].decode()
            out[name] = (i, r[1], r[2], r[4], r[5], r[6])
    return out


def _loads(data: bytes) -> list[tuple[int, ...]]:
    phoff, _, phnum, _, _ = _header(data)
    headers = [PHDR.unpack_from(data, phoff + i * PHDR.size) for i in range(phnum)]
    return [p for p in headers if p[0] == 1]


def _same_segments(before: bytes, after: bytes) -> None:
    old, new = _loads(before), _loads(after)
    assert [p[3] for p in old] == [p[3] for p in new]  # same addresses
    for o, n in zip(old, new, strict=True):
        assert (n[2] - n[3]) % n[7] == 0  # offset ≡ address (mod alignment)
        # The headers at the start of the first segment carry the new offsets; all else
        # is the same bytes.
        skip = _header(after)[0] + _header(after)[2] * PHDR.size if not n[2] else 0
        assert after[n[2] + skip : n[2] + n[5]] == before[o[2] + skip : o[2] + o[5]]
    phoff, _, phnum, _, _ = _header(after)
    for i in range(phnum):  # program headers: only p_offset may differ
        a, b = (
            PHDR.unpack_from(after, phoff + i * PHDR.size),
            PHDR.unpack_from(before, phoff + i * PHDR.size),
        )
        assert a[:2] + a[3:] == b[:2] + b[3:]


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


def _shdr_at(data: bytes, name: str) -> int:
    _, shoff, _, _, _ = _header(data)
    return shoff + _sections(data)[name][0] * SHDR.size


def test_strip_drops_the_symbol_table_of_an_extension_and_it_still_loads(tmp_path: Path) -> None:
    before = _pcg64()
    after = elf.strip(before)
    assert {".symtab", ".strtab"} <= _sections(before).keys()
    names = _sections(after).keys()
    assert ".symtab" not in names and ".strtab" not in names
    assert {".dynsym", ".dynstr", ".text", ".shstrtab", ".comment"} <= names
    assert len(after) < len(before) - 8000
    assert elf.strip(before) == after  # deterministic
    assert elf.strip(after) == after  # nothing left to remove
    _same_segments(before, after)
    lib = tmp_path / "_pcg64.so"
    lib.write_bytes(after)
    assert ctypes.CDLL(str(lib)).PyInit__pcg64 is not None


def test_strip_cuts_the_hole_patchelf_leaves_between_segments(tmp_path: Path) -> None:
    source = _openblas()
    before = source.read_bytes()
    after = elf.strip(before)
    # patchelf put segments after the symbol table: whole pages are cut out of the middle.
    assert len(before) - len(after) > 500_000
    assert ".symtab" not in _sections(after) and ".dynsym" in _sections(after)
    _same_segments(before, after)
    lib = tmp_path / source.name
    lib.write_bytes(after)
    script = (
        "import ctypes, sys\n"
        "lib = ctypes.CDLL(sys.argv[1])\n"
        "ddot = lib.scipy_cblas_ddot64_\n"
        "ddot.restype = ctypes.c_double\n"
        "ddot.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,"
        " ctypes.c_void_p, ctypes.c_int64]\n"
        "x = (ctypes.c_double * 3)(1.0, 2.0, 3.0)\n"
        "print(ddot(3, x, 1, x, 1))\n"
    )
    env = {**os.environ, "LD_LIBRARY_PATH": str(source.parent), "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(lib)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert result.stdout.strip() == "14.0"


@pytest.mark.parametrize(
    "data",
    [b"", b"#!/bin/sh\n", b"\x7fELF\x01\x01" + bytes(60), b"\x7fELF\x02\x02" + bytes(80)],
    ids=["empty", "script", "elf32", "big-endian"],
)
def test_strip_leaves_what_is_not_an_elf64_le_object(data: bytes) -> None:
    assert elf.strip(data) == data


def test_strip_leaves_relocatable_objects_and_odd_headers() -> None:
    data = _pcg64()
    assert elf.strip(_patch(data, 16, "<H", 1)) != elf.strip(data)  # ET_REL: untouched
    assert elf.strip(_patch(data, 16, "<H", 1)) == _patch(data, 16, "<H", 1)
    no_names = _patch(data, 62, "<H", 0)  # e_shstrndx 0: no section names
    assert elf.strip(no_names) == no_names
    past_end = _patch(data, 40, "<Q", len(data))  # section headers beyond the file
    assert elf.strip(past_end) == past_end


def test_strip_refuses_when_a_kept_section_points_at_a_removed_one() -> None:
    data = _pcg64()
    symtab = _sections(data)[".symtab"][0]
    linked = _patch(data, _shdr_at(data, ".comment") + 40, "<I", symtab)
    assert elf.strip(linked) == linked
    info = _patch(data, _shdr_at(data, ".comment") + 8, "<Q", 0x40)  # SHF_INFO_LINK
    info = _patch(info, _shdr_at(data, ".comment") + 44, "<I", symtab)
    assert elf.strip(info) == info


def test_strip_refuses_a_removed_section_inside_a_segment() -> None:
    data = _pcg64()
    inside = _patch(data, _shdr_at(data, ".strtab") + 24, "<Q", 0x100)
    assert elf.strip(inside) == inside


@pytest.mark.parametrize("align", [0x3000, 1 << 22], ids=["not-a-power-of-two", "huge"])
def test_strip_refuses_alignments_it_cannot_keep(align: int) -> None:
    data = _pcg64()
    phoff = _header(data)[0]
    odd = _patch(data, phoff + 48, "<Q", align)  # first program header is a LOAD
    assert elf.strip(odd) == odd


def test_removable_names() -> None:
    assert elf.removable(".symtab") and elf.removable(".strtab")
    assert elf.removable(".debug_info") and elf.removable(".zdebug_line")
    assert not elf.removable(".dynsym") and not elf.removable(".comment")


def test_strip_entries_follows_the_globs() -> None:
    data = _pcg64()
    entries = [
        Entry("site/pkg/a.so", "file", 0o755, data),
        Entry("site/pkg/b.so.1", "file", 0o755, data),
        Entry("usr/lib/c.so", "file", 0o644, data),
        Entry("site/pkg", "dir", 0o755),
    ]
    got = elf.strip_entries(entries, ["site/*.so", "site/*.so.*"])
    assert len(got[0].data) < len(data) and got[1].data == got[0].data
    assert got[2].data == data and got[3] == entries[3]
    assert elf.strip_entries(entries, []) == tuple(entries)
