"""Unpacking a .deb without dpkg: its control paragraph and its data archive as entries.

No maintainer script runs (there is no shell in the image to run one); what scripts
would have made — the CA bundle, the ``python3`` link, ``/etc/localtime`` — the
rootfs builder makes explicitly. Paths matching the drop globs (docs, man pages,
locales…) are left out as distroless does, except each package's copyright file.
"""

from __future__ import annotations

import fnmatch
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from debian import arfile, debfile

from ci.image.errors import ImageError
from ci.image.tarball import Entry, normal_mode

# A DEP-5 (machine-readable) copyright file names its licences in ``License:`` fields.
_DEP5 = re.compile(
    r"^Format:\s*https?://(www\.)?debian\.org/doc/packaging-manuals/copyright-format/"
)
_LICENSE = re.compile(r"^License:[ \t]*(\S[^\n]*)$", re.MULTILINE)


@dataclass(frozen=True)
class DebContents:
    """What the image needs from one .deb."""

    name: str
    version: str
    architecture: str
    control: str
    entries: tuple[Entry, ...]
    dropped: int
    licenses: tuple[str, ...]


def dropped(path: str, drop: Iterable[str], keep: Iterable[str]) -> bool:
    """Whether ``path`` matches a drop glob and no keep glob (fnmatch; ``*`` crosses ``/``)."""
    if any(fnmatch.fnmatchcase(path, pattern) for pattern in keep):
        return False
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in drop)


def copyright_licenses(text: str) -> tuple[str, ...]:
    """The licence names of a DEP-5 copyright file, in first-seen order; () otherwise."""
    if not _DEP5.match(text):
        return ()
    seen: dict[str, None] = {}
    for match in _LICENSE.finditer(text):
        seen.setdefault(match.group(1).strip(), None)
    return tuple(seen)


def _entry(info: tarfile.TarInfo, tar: tarfile.TarFile, path: str) -> Entry | None:
    if info.isreg():
        handle = tar.extractfile(info)
        data = handle.read() if handle is not None else b""
        return Entry(path, "file", normal_mode("file", info.mode), data)
    if info.isdir():
        return Entry(path, "dir", normal_mode("dir", info.mode))
    if info.issym():
        return Entry(path, "symlink", 0o777, b"", info.linkname)
    if info.islnk():
        target = info.linkname.removeprefix("./").lstrip("/")
        return Entry(path, "hardlink", normal_mode("file", info.mode), b"", target)
    return None


def unpack(path: Path, drop: Iterable[str] = (), keep: Iterable[str] = ()) -> DebContents:
    """Read a .deb's control paragraph and data entries (owners reset to root)."""
    drop, keep = tuple(drop), tuple(keep)
    try:
        deb = debfile.DebFile(str(path))
    except (debfile.DebError, arfile.ArError, OSError, tarfile.TarError) as exc:
        raise ImageError(f"{path.name}: not a readable .deb ({exc})") from None
    try:
        control = deb.control.debcontrol()
        entries: list[Entry] = []
        skipped = 0
        licenses: tuple[str, ...] = ()
        with deb.data.tgz() as tar:
            for info in tar:
                rel = info.name.removeprefix("./").strip("/")
                if rel in {"", "."}:
                    continue
                if dropped(rel, drop, keep):
                    skipped += 1
                    continue
                entry = _entry(info, tar, rel)
                if entry is None:
                    raise ImageError(f"{path.name}: {rel} is a device or fifo; not supported")
                if rel.startswith("usr/share/doc/") and rel.endswith("/copyright"):
                    licenses = copyright_licenses(entry.data.decode("utf-8", "replace"))
                entries.append(entry)
    except (debfile.DebError, tarfile.TarError, KeyError) as exc:
        raise ImageError(f"{path.name}: damaged .deb ({exc})") from None
    finally:
        deb.close()
    # Hard links whose target was dropped become plain copies of nothing: refuse them.
    paths = {e.path for e in entries}
    for entry in entries:
        if entry.kind == "hardlink" and entry.linkname not in paths:
            raise ImageError(f"{path.name}: {entry.path} links to dropped {entry.linkname}")
    return DebContents(
        name=control["Package"],
        version=control["Version"],
        architecture=control.get("Architecture", ""),
        control=str(control).rstrip("\n") + "\n",
        entries=tuple(entries),
        dropped=skipped,
        licenses=licenses,
    )


def status_entry(contents: DebContents) -> Entry:
    """``/var/lib/dpkg/status.d/<pkg>``: the distroless convention scanners read."""
    lines = contents.control.rstrip("\n").splitlines()
    # dpkg's status database puts Status right after Package.
    body = "\n".join([lines[0], "Status: install ok installed", *lines[1:]]) + "\n"
    return Entry(f"var/lib/dpkg/status.d/{contents.name}", "file", 0o644, body.encode())
