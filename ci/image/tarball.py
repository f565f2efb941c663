"""The deterministic tar writer every layer and archive goes through.

Same entries in → same bytes out, whatever the host: entries sorted by path, every
parent directory present, mtime fixed (SOURCE_DATE_EPOCH), numeric uid/gid only (no
user or group names), no PAX atime/ctime, modes exactly as given (normalise them with
``normal_mode``), hard links pointing at the lexicographically first path of their
group, symlinks kept as symlinks. gzip with mtime 0, no file name, a fixed level.
"""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ci.image.errors import ImageError

Kind = Literal["file", "dir", "symlink", "hardlink"]
GZIP_LEVEL = 6
_TYPES: Mapping[Kind, bytes] = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
}


@dataclass(frozen=True)
class Entry:
    """One filesystem object of a layer; ``path`` is relative to / with no leading slash."""

    path: str
    kind: Kind
    mode: int
    data: bytes = field(default=b"", repr=False)
    linkname: str = ""
    uid: int = 0
    gid: int = 0

    def __post_init__(self) -> None:
        check_path(self.path)
        if self.kind in {"symlink", "hardlink"} and not self.linkname:
            raise ImageError(f"{self.path}: a {self.kind} needs a target")
        if self.kind != "file" and self.data:
            raise ImageError(f"{self.path}: only regular files carry data")


def check_path(path: str) -> None:
    """Refuse paths that could escape the root or that are not in canonical form."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in {"", ".", ".."} for p in parts):
        raise ImageError(f"unsafe or non-canonical path in a layer: {path!r}")


def normal_mode(kind: Kind, mode: int) -> int:
    """The modes a layer stores: 0755/0644 by the owner's exec bit, directories 0755,
    symlinks 0777; setuid/setgid/sticky bits are kept (the scan judges them), and a
    sticky world-writable directory (``/tmp``) stays 1777."""
    special = mode & 0o7000
    if kind == "symlink":
        return 0o777
    if kind == "dir":
        if mode & stat.S_ISVTX and mode & 0o002:
            return 0o1777
        return 0o755 | special
    return (0o755 if mode & 0o100 else 0o644) | special


def _parents(paths: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts)):
            out.add("/".join(parts[:i]))
    return out


def complete(entries: Iterable[Entry]) -> list[Entry]:
    """Entries sorted by path, with missing parent directories (root-owned 0755) added
    and each hard-link group rewritten so its first path carries the data."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        if entry.path in by_path and by_path[entry.path] != entry:
            raise ImageError(f"{entry.path}: two different entries for one path")
        by_path[entry.path] = entry
    for parent in _parents(by_path):
        existing = by_path.get(parent)
        if existing is None:
            by_path[parent] = Entry(parent, "dir", 0o755)
        elif existing.kind != "dir":
            raise ImageError(f"{parent}: is a {existing.kind} but has children")
    _relink(by_path)
    return [by_path[path] for path in sorted(by_path, key=_sort_key)]


def _sort_key(path: str) -> tuple[str, ...]:
    # Component-wise order keeps a directory next to its children ("a/b" before "a-b").
    return tuple(path.split("/"))


def _relink(by_path: dict[str, Entry]) -> None:
    groups: dict[str, list[str]] = {}
    for path, entry in by_path.items():
        if entry.kind == "hardlink":
            target = by_path.get(entry.linkname)
            if target is None or target.kind != "file":
                raise ImageError(f"{path}: hard link to {entry.linkname!r}, not a regular file")
            groups.setdefault(entry.linkname, [entry.linkname]).append(path)
    for source, members in groups.items():
        data = by_path[source]
        first = min(members, key=_sort_key)
        for member in members:
            if member == first:
                by_path[member] = Entry(
                    member, "file", data.mode, data.data, "", data.uid, data.gid
                )
            else:
                by_path[member] = Entry(
                    member, "hardlink", data.mode, b"", first, data.uid, data.gid
                )


def write_tar(entries: Iterable[Entry], mtime: int) -> bytes:
    """An uncompressed tar of ``entries`` (completed and sorted) after a ``./`` root
    entry, byte-stable."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        # The root itself, so an unpacker (runc's bundle, umoci, docker) never gives "/"
        # the host's umask: 0755 root:root at the fixed mtime.
        root = tarfile.TarInfo("./")
        root.type, root.mode, root.mtime = tarfile.DIRTYPE, 0o755, mtime
        root.uname = root.gname = ""
        tar.addfile(root)
        for entry in complete(entries):
            info = tarfile.TarInfo(entry.path)
            info.type = _TYPES[entry.kind]
            info.mode = entry.mode & 0o7777
            info.uid, info.gid = entry.uid, entry.gid
            info.uname = info.gname = ""
            info.mtime = mtime
            info.linkname = entry.linkname
            if entry.kind == "file":
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def gzip_bytes(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """gzip with no timestamp and no file name, so equal input gives equal output."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=level, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def read_tar(data: bytes) -> list[Entry]:
    """Entries of a tar (gzip-compressed or not), for the scan and the tests."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    out: list[Entry] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            path = info.name.removeprefix("./").rstrip("/")
            if path in {"", "."}:  # the root entry
                continue
            if info.isreg():
                handle = tar.extractfile(info)
                body = handle.read() if handle is not None else b""
                out.append(Entry(path, "file", info.mode, body, "", info.uid, info.gid))
            elif info.isdir():
                out.append(Entry(path, "dir", info.mode, uid=info.uid, gid=info.gid))
            elif info.issym():
                out.append(
                    Entry(path, "symlink", info.mode, b"", info.linkname, info.uid, info.gid)
                )
            elif info.islnk():
                link = info.linkname.removeprefix("./")
                out.append(Entry(path, "hardlink", info.mode, b"", link, info.uid, info.gid))
    return out


_EXTRACTABLE = {
    tarfile.REGTYPE,
    tarfile.AREGTYPE,
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
}


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _member_name(info: tarfile.TarInfo) -> str:
    """The member's canonical relative name ("" for the root), or ``ImageError``."""
    name = info.name
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    if info.type not in _EXTRACTABLE:
        raise ImageError(f"{info.name!r}: refusing a tar member of type {info.type!r}")
    if info.name.startswith("/") or "\0" in name or ".." in name.split("/"):
        raise ImageError(f"{info.name!r}: refusing an absolute or '..' path in a tar")
    if name in {"", "."} and not info.isdir():
        raise ImageError(f"{info.name!r}: the root entry must be a directory")
    return "" if name == "." else name


def _link_target(info: tarfile.TarInfo, name: str, root: Path, absolute_links: bool) -> Path:
    """Where a link member points; refused when that leaves ``root``. Symlinks are
    judged lexically (they are never followed while unpacking; writing through one that
    resolves outside is refused separately), hard links by their real target."""
    link = info.linkname
    if info.islnk():
        resolved = (root / link.removeprefix("./")).resolve()
        if link.startswith("/") or not _inside(resolved, root):
            raise ImageError(f"{info.name!r}: refusing a hard link that leaves the tree")
        return resolved
    if link.startswith("/"):
        if not absolute_links:
            raise ImageError(f"{info.name!r}: refusing an absolute symlink target")
        return root
    lexical = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
    if lexical == ".." or lexical.startswith("../"):
        raise ImageError(f"{info.name!r}: refusing a symlink that leaves the tree")
    return root / lexical


def extract(data: bytes, dest: Path, *, owners: bool, absolute_links: bool) -> None:
    """Unpack a tar (gzip or not) into ``dest`` without ``extractall(filter=…)``, which
    Debian's CPython 3.11.2 lacks: a member is refused (``ImageError``, nothing outside
    ``dest`` touched) when its name is absolute or has ``..``, when it would be written
    through a symlink that leaves ``dest``, when a hard link or relative symlink points
    outside ``dest``, or when it is not a file, directory or link (devices, FIFOs).

    ``owners`` keeps numeric uid/gid (root only; a rootfs); ``absolute_links`` allows
    ``/…`` symlink targets, which a rootfs resolves inside its container. Modes are set
    exactly (no umask), including ``dest`` itself from a ``./`` entry; directory modes
    and times are applied last, deepest first, as tar does.
    """
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    dirs: list[tuple[Path, tarfile.TarInfo]] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            name = _member_name(info)
            if not name:
                dirs.append((root, info))
                continue
            parent = (root / name).parent.resolve()
            if not _inside(parent, root):
                raise ImageError(f"{info.name!r}: refusing to write through a link out of the tree")
            source = None
            if info.issym() or info.islnk():
                source = _link_target(info, name, root, absolute_links)
            try:
                _place(tar, info, parent / Path(name).name, source, dirs, owners)
            except OSError as exc:
                raise ImageError(f"{info.name!r}: cannot extract ({exc.strerror})") from None
    for path, info in sorted(dirs, key=lambda d: str(d[0]), reverse=True):
        _attributes(path, info, owners)


def _attributes(path: Path, info: tarfile.TarInfo, owners: bool) -> None:
    if owners:
        os.lchown(path, info.uid, info.gid)
    if not info.issym():
        path.chmod(info.mode & 0o7777)
    os.utime(path, (info.mtime, info.mtime), follow_symlinks=False)


def _place(
    tar: tarfile.TarFile,
    info: tarfile.TarInfo,
    target: Path,
    link_source: Path | None,
    dirs: list[tuple[Path, tarfile.TarInfo]],
    owners: bool,
) -> None:
    """Create one member at ``target`` (replacing a non-directory already there)."""
    is_dir = target.is_dir() and not target.is_symlink()
    if info.isdir() and is_dir:
        dirs.append((target, info))
        return
    if is_dir:
        raise ImageError(f"{info.name!r}: would replace a directory")
    target.unlink(missing_ok=True)
    if info.isdir():
        target.mkdir(mode=0o700)
        dirs.append((target, info))
    elif info.issym():
        target.symlink_to(info.linkname)
        _attributes(target, info, owners)
    elif info.islnk() and link_source is not None:
        os.link(link_source, target, follow_symlinks=False)
    else:
        body = tar.extractfile(info)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            if body is not None:
                shutil.copyfileobj(body, handle)
        _attributes(target, info, owners)
