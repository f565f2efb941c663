"""The base OS layer: the unpacked .debs merged, plus what maintainer scripts would have
made and what a distroless image adds (the ``nonroot`` user, the dpkg status entries
scanners read, the CA bundle, ``/etc/localtime``, the ``python3`` link, ``/tmp``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ci.image.deb_unpack import DebContents, status_entry
from ci.image.errors import ImageError
from ci.image.tarball import Entry

NONROOT_UID = 65532
NONROOT_HOME = "home/nonroot"
CA_DIR = "usr/share/ca-certificates/"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    f"nonroot:x:{NONROOT_UID}:{NONROOT_UID}:nonroot:/{NONROOT_HOME}:/sbin/nologin\n"
)
GROUP = f"root:x:0:\nnobody:x:65534:\nnonroot:x:{NONROOT_UID}:\n"
# Build-time tools whose job the builder does instead, and which cannot run in a shell-less
# image anyway (update-ca-certificates is a /bin/sh script; its bundle is made here).
REPLACED = frozenset({"usr/sbin/update-ca-certificates"})
# "localhost" must resolve without DNS (runc, unlike docker, mounts no /etc/hosts): the
# engine's metrics endpoint listens on localhost by default.
HOSTS = (  # the image's /etc/hosts names the loopback addresses themselves
    "127.0.0.1\tlocalhost\n"  # bot4: allow-ip (loopback in /etc/hosts)
    "::1\tlocalhost ip6-localhost ip6-loopback\n"  # bot4: allow-ip (loopback in /etc/hosts)
)
NSSWITCH = (
    "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
    "networks: files\nprotocols: files\nservices: files\n"
)


def merge(packages: Sequence[DebContents]) -> dict[str, Entry]:
    """All packages' entries by path. Directories may repeat; any other path owned by
    two packages must be byte-identical, else the lock is inconsistent."""
    merged: dict[str, Entry] = {}
    owner: dict[str, str] = {}
    for pkg in packages:
        for entry in pkg.entries:
            seen = merged.get(entry.path)
            if seen is None:
                merged[entry.path] = entry
                owner[entry.path] = pkg.name
            elif seen != entry and not (seen.kind == entry.kind == "dir"):
                raise ImageError(
                    f"/{entry.path} is shipped differently by {owner[entry.path]} and {pkg.name}"
                )
        status = status_entry(pkg)
        merged[status.path] = status
    return merged


def ca_bundle(entries: Iterable[Entry]) -> Entry:
    """What ``update-ca-certificates`` makes: every shipped certificate concatenated in
    path order."""
    certs = sorted(
        (
            e
            for e in entries
            if e.path.startswith(CA_DIR) and e.path.endswith(".crt") and e.kind == "file"
        ),
        key=lambda e: e.path,
    )
    if not certs:
        raise ImageError("no CA certificates among the packages (is ca-certificates locked?)")
    body = b"".join(c.data if c.data.endswith(b"\n") else c.data + b"\n" for c in certs)
    return Entry(CA_BUNDLE, "file", 0o644, body)


def additions(entries: dict[str, Entry], python: str = "python3.11") -> list[Entry]:
    """The files no package ships but the image needs."""
    out = [
        Entry("etc/passwd", "file", 0o644, PASSWD.encode()),
        Entry("etc/group", "file", 0o644, GROUP.encode()),
        Entry("etc/nsswitch.conf", "file", 0o644, NSSWITCH.encode()),
        Entry("etc/hosts", "file", 0o644, HOSTS.encode()),
        Entry("tmp", "dir", 0o1777),
        Entry("root", "dir", 0o700),
        Entry(NONROOT_HOME, "dir", 0o700, uid=NONROOT_UID, gid=NONROOT_UID),
        Entry("usr/bin/python3", "symlink", 0o777, linkname=python),
        ca_bundle(entries.values()),
        # OpenSSL's default CA file (openssl, which owns this link, is not installed).
        Entry("usr/lib/ssl/cert.pem", "symlink", 0o777, linkname=f"/{CA_BUNDLE}"),
    ]
    if "usr/share/zoneinfo/Etc/UTC" in entries:
        out.append(Entry("etc/localtime", "symlink", 0o777, linkname="/usr/share/zoneinfo/Etc/UTC"))
        out.append(Entry("etc/timezone", "file", 0o644, b"Etc/UTC\n"))
    return out


def base_layer(packages: Sequence[DebContents], python: str = "python3.11") -> list[Entry]:
    """Every entry of the base OS layer (unsorted; the tar writer sorts)."""
    merged = merge(packages)
    for path in REPLACED:
        merged.pop(path, None)
    for entry in additions(merged, python):
        merged[entry.path] = entry
    return list(merged.values())
