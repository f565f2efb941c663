"""Dropping the static symbol table and debug sections from shared objects, in pure
Python, so the result is the same on every build host (``strip`` output depends on the
host's binutils version).

Only what the dynamic loader never reads goes: non-allocated ``.symtab``, ``.strtab``
and ``.debug*`` sections of ELF64 little-endian shared objects and executables. The
loaded segments keep their bytes; the file space the removed sections took is cut in
whole multiples of the largest alignment, so every segment keeps its offset ≡ address
congruence. Removed section headers become inactive (``SHT_NULL``) rather than being
renumbered, so symbol tables' section indices stay valid. Wheels repaired by patchelf
put segments after their symbol table; the cut handles that layout too. Anything the
code does not fully understand is returned unchanged.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ci.image.deb_unpack import dropped
from ci.image.tarball import Entry

_MAGIC = b"\x7fELF"
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_ET_EXEC, _ET_DYN = 2, 3
_SHT_NOBITS = 8
_SHF_ALLOC = 0x2
_SHF_INFO_LINK = 0x40
_SHN_LORESERVE = 0xFF00
_MAX_ALIGN = 1 << 21  # larger segment alignments are left alone (nothing is cut)


@dataclass(frozen=True)
class _Section:
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    align: int
    raw: tuple[int, ...]

    @property
    def in_file(self) -> bool:
        return self.type != _SHT_NOBITS and self.size > 0


def removable(name: str) -> bool:
    """Sections the loader never reads and ``strip --strip-unneeded`` drops from a .so."""
    return name in {".symtab", ".strtab"} or name.startswith((".debug", ".zdebug"))


def _sections(data: bytes, shoff: int, shnum: int, shentsize: int, shstrndx: int) -> list[_Section]:
    raw = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    names_at, names_size = raw[shstrndx][4], raw[shstrndx][5]
    names = data[names_at : names_at + names_size]

    def name(offset: int) -> str:
        end = names.find(b"\0", offset)
        return names[offset : end if end >= 0 else len(names)].decode("ascii", "replace")

    return [_Section(name(r[0]), r[1], r[2], r[4], r[5], r[6], r[7], max(r[8], 1), r) for r in raw]


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _overlaps(a: tuple[int, int], ranges: Sequence[tuple[int, int]]) -> bool:
    return any(a[0] < end and start < a[1] for start, end in ranges)


@dataclass(frozen=True)
class _Elf:
    phoff: int
    phnum: int
    phdrs: tuple[tuple[int, ...], ...]
    sections: tuple[_Section, ...]
    shstrndx: int


def _parse(data: bytes) -> _Elf | None:
    """The headers of an ELF64 LE shared object/executable; None for anything else."""
    if len(data) < _EHDR.size or data[:4] != _MAGIC or data[4:6] != b"\x02\x01":
        return None
    fields = _EHDR.unpack_from(data)
    etype, phoff, shoff = fields[1], fields[5], fields[6]
    phentsize, phnum, shentsize, shnum, shstrndx = fields[9:14]
    if (
        etype not in {_ET_EXEC, _ET_DYN}
        or phentsize != _PHDR.size
        or shentsize != _SHDR.size
        or not 0 < shstrndx < shnum < _SHN_LORESERVE
        or shoff + shnum * shentsize > len(data)
        or phoff + phnum * phentsize > len(data)
    ):
        return None
    phdrs = tuple(_PHDR.unpack_from(data, phoff + i * phentsize) for i in range(phnum))
    sections = tuple(_sections(data, shoff, shnum, shentsize, shstrndx))
    return _Elf(phoff, phnum, phdrs, sections, shstrndx)


def _span(s: _Section) -> tuple[int, int]:
    return (s.offset, s.offset + s.size)


def _doomed(obj: _Elf) -> set[int] | None:
    """Indexes of the sections to remove; None when a kept section refers to one."""
    gone = {
        i
        for i, s in enumerate(obj.sections)
        if i and i != obj.shstrndx and not s.flags & _SHF_ALLOC and removable(s.name)
    }
    for i, s in enumerate(obj.sections):
        if i not in gone and (s.link in gone or (s.flags & _SHF_INFO_LINK and s.info in gone)):
            return None
    return gone


def _cuts(fixed: Sequence[tuple[int, int]], align: int) -> list[tuple[int, int]]:
    """(start, length) of whole alignments cut from each gap between fixed ranges."""
    cuts = []
    for (_, gap_start), (gap_end, _) in itertools.pairwise(fixed):
        length = (gap_end - gap_start) // align * align
        if length:
            cuts.append((gap_start, length))
    return cuts


def _moved(offset: int, cuts: Sequence[tuple[int, int]]) -> int:
    shift = 0
    for start, length in cuts:
        if offset >= start + length:
            shift += length
        elif offset > start:
            shift += offset - start
    return offset - shift


def strip(data: bytes) -> bytes:
    """``data`` without its symbol table and debug sections; unchanged when it is not an
    ELF64 LE shared object/executable, has nothing to remove, or has a layout this
    function does not handle."""
    obj = _parse(data)
    gone = _doomed(obj) if obj is not None else None
    if obj is None or not gone:
        return data
    sections = obj.sections
    # What must stay where it is, relative to the rest: headers, segments, allocated
    # sections. Kept non-allocated sections outside those move to the end.
    fixed = _merge(
        [(0, _EHDR.size), (obj.phoff, obj.phoff + obj.phnum * _PHDR.size)]
        + [(p[2], p[2] + p[5]) for p in obj.phdrs if p[5] > 0]
        + [_span(s) for s in sections if s.in_file and s.flags & _SHF_ALLOC]
    )
    if any(_overlaps(_span(sections[i]), fixed) for i in gone):
        return data
    movable = [
        i
        for i, s in enumerate(sections)
        if i not in gone and s.in_file and not _overlaps(_span(s), fixed)
    ]
    fixed = _merge(
        [*fixed]
        + [_span(s) for i, s in enumerate(sections) if s.in_file and i not in {*gone, *movable}]
    )
    align = max(
        [1, *(p[7] for p in obj.phdrs if p[0] == 1)]
        + [s.align for s in sections if s.flags & _SHF_ALLOC]
    )
    if align & (align - 1) or align > _MAX_ALIGN:
        return data
    cuts = _cuts(fixed, align)
    body = bytearray()
    for k, (start, end) in enumerate(fixed):
        body += data[start:end]
        if k + 1 < len(fixed):  # the rest of the gap: zeros (nothing kept lives there)
            body += bytes(fixed[k + 1][0] - end - next((n for s, n in cuts if s == end), 0))
    new_offsets: dict[int, int] = {}
    for i in movable:
        body += bytes(-len(body) % sections[i].align)
        new_offsets[i] = len(body)
        body += data[sections[i].offset : sections[i].offset + sections[i].size]
    body += bytes(-len(body) % 8)
    new_shoff = len(body)
    for i, s in enumerate(sections):  # removed sections become inactive (SHT_NULL)
        raw = [*s.raw[:4], new_offsets.get(i, _moved(s.offset, cuts)), *s.raw[5:]]
        body += bytes(_SHDR.size) if i in gone else _SHDR.pack(*raw)
    new_phoff = _moved(obj.phoff, cuts)
    for i, p in enumerate(obj.phdrs):
        _PHDR.pack_into(body, new_phoff + i * _PHDR.size, p[0], p[1], _moved(p[2], cuts), *p[3:])
    header = list(_EHDR.unpack_from(data))
    header[5], header[6] = new_phoff, new_shoff
    _EHDR.pack_into(body, 0, *header)
    return bytes(body)


def strip_entries(entries: Iterable[Entry], globs: Sequence[str]) -> tuple[Entry, ...]:
    """Entries with every regular file matching ``globs`` stripped (others untouched)."""
    return tuple(
        replace(e, data=strip(e.data))
        if globs and e.kind == "file" and dropped(e.path, globs, ())
        else e
        for e in entries
    )
