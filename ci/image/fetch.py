"""Getting pinned inputs: a content-addressed cache, .debs through apt's own downloader,
wheels through pip — every file verified against its sha256 before it is used.

A file enters the cache only under the name of its verified digest, and is re-hashed
each time it is read, so neither a corrupted download nor a tampered cache can reach a
layer. Network is touched only for cache misses.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from ci.files import sha256_file
from ci.image import output
from ci.image.apt_index import APT_HELPER, Archive, IndexTarget, repo_uri
from ci.image.errors import ImageError, SupersededError
from ci.image.lock_format import DebPin, WheelPin

log = logging.getLogger(__name__)

CACHE_ENV = "BOT4_IMAGE_CACHE"


def default_cache() -> Path:
    """``$BOT4_IMAGE_CACHE``, else ``$XDG_CACHE_HOME/bot4/image`` (``~/.cache/bot4/image``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bot4" / "image"


class Cache:
    """A directory of files named by their sha256 (``sha256/<hex>``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where a blob with this digest lives (whether or not it is there)."""
        return self.root / "sha256" / sha256

    def get(self, sha256: str) -> Path | None:
        """The cached file, re-verified; a file whose content drifted is evicted."""
        path = self.path(sha256)
        if not path.is_file():
            return None
        if sha256_file(path) != sha256:
            log.warning("cache entry %s is corrupt; evicting it", path)
            path.unlink()
            return None
        return path

    def read(self, sha256: str, what: str) -> bytes:
        """The cached file's bytes, read once and checked: what the caller uses is exactly
        what was hashed, even if the shared entry is swapped a moment later (a path that
        was checked and is then opened again could hold other bytes by then)."""
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(
                f"{what} is not in the download cache ({exc.strerror}); "
                "run scripts/gate -s image first"
            ) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            path.unlink(missing_ok=True)
            raise ImageError(
                f"{what}: the cached {path} changed after its sha256 was checked; not using it "
                "(evicted: run the command again to fetch it anew)"
            )
        return data

    def copy_to(self, sha256: str, dest: Path, what: str) -> Path:
        """A private copy at ``dest`` of exactly the checked bytes (``read``), for what
        must open a file by path (the .deb reader, the wheel installer)."""
        data = self.read(sha256, what)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("xb") as handle:  # a fresh file in the caller's private directory
            handle.write(data)
        return dest

    def put(self, source: Path, sha256: str, what: str) -> Path:
        """Move a downloaded file into the cache after checking its digest."""
        actual = sha256_file(source)
        if actual != sha256:
            source.unlink(missing_ok=True)
            raise ImageError(
                f"{what}: sha256 {actual} does not match the lock's {sha256}; "
                "refusing to build (the lock was edited or the download was tampered with)"
            )
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), target)
        return target


@contextlib.contextmanager
def download_dir(cache: Cache) -> Iterator[Path]:
    """A download directory inside the cache (same file system: moves are renames),
    named so the next run removes it if this one is killed."""
    output.sweep(cache.root)
    tmp = output.scratch(cache.root, "fetch")
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# One download to fetch: (uri, dest, sha256, size in bytes), the last two as pinned.
Download = tuple[str, Path, str, int]
Downloader = Callable[[Sequence[Download]], None]
# apt's complaints when the mirror announces another size, or the writer passed the limit.
_WRONG_SIZE = re.compile(r"E: Failed to fetch \S+\s+File has unexpected size \((\d+) != \d+\)")
_CUT_OFF = re.compile(rf"E: Sub-process \S+ received signal {signal.SIGXFSZ.value}\.")


def apt_download(items: Sequence[Download]) -> None:
    """Download ``(uri, dest, sha256, size)`` items through ``apt-helper download-file``:
    apt's proxy, TLS and retry settings, and apt checks each hash.

    A hostile mirror could stream an endless body, read to the end before the hash is
    checked. So each item is fetched by its own apt-helper whose file-size limit
    (``RLIMIT_FSIZE``) is the pinned size: the kernel stops apt's writer at the first byte
    past the pin. apt is also told the size (``Checksum-FileSize``), so a mirror that
    announces another length is refused before the body is read."""
    for uri, dest, sha256, size in items:
        argv = [APT_HELPER, "download-file", uri, str(dest), f"SHA256:{sha256}"]
        argv.append(f"Checksum-FileSize:{size}")
        result = subprocess.run(  # noqa: S603  # nosec B603 - apt's own downloader
            argv, capture_output=True, text=True, check=False,
            preexec_fn=functools.partial(resource.setrlimit, resource.RLIMIT_FSIZE, (size, size)),
        )  # fmt: skip
        if result.returncode == 0:
            continue
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith(("E:", "Err"))]
        lines = errors or result.stderr.strip().splitlines() or ["no output"]
        announced = _WRONG_SIZE.match(lines[0])
        if any(_CUT_OFF.match(line) for line in lines):
            detail = f"{uri} sent more than the pinned {size} bytes; the download was cut off"
        elif announced:  # apt repeats it for every chunk read: one line says it
            detail = f"{uri} announced {announced[1]} bytes where {size} are pinned"
        else:
            detail = " ".join(line[:300] for line in lines[:2])
        raise ImageError(f"download of {Path(uri).name} failed: {detail}")


def check_debs(pins: Sequence[DebPin], archive: Archive, cache: Cache) -> list[str]:
    """Compare the pins the cache lacks with the archive index, before any download.

    A pin whose version the index no longer carries raises ``SupersededError`` naming
    every such package and its replacement; the same version with another hash is a
    hard error (the lock was edited). Returns warnings for cached-but-superseded pins.
    """
    superseded: list[str] = []
    names: list[str] = []
    warnings: list[str] = []
    for pin in pins:
        found = archive.find(pin.name, pin.version)
        if found is not None:
            if found.sha256 != pin.sha256 or found.filename != pin.filename:
                raise ImageError(
                    f"{pin.name} {pin.version}: image.lock says sha256 {pin.sha256[:12]}…, "
                    f"the signed archive index says {found.sha256[:12]}…; refusing to build "
                    "(run scripts/gate -s image-lock if the lock was edited by hand)"
                )
            continue
        newest = archive.newest(pin.name)
        now = f"{newest.version} in {newest.suite}" if newest else "no version at all"
        reason = "superseded by a security update" if newest else "removed from the archive"
        line = f"{pin.name} {pin.version} {reason} (the index now has {now})"
        if cache.get(pin.sha256) is not None:
            warnings.append(
                f"{line}; building from the cached copy — run scripts/gate -s image-lock"
            )
            continue
        superseded.append(line)
        names.append(pin.name)
    if superseded:
        raise SupersededError(
            "; ".join(superseded) + "; run scripts/gate -s image-lock", tuple(names)
        )
    return warnings


def fetch_debs(
    pins: Sequence[DebPin],
    targets: Sequence[IndexTarget],
    cache: Cache,
    download: Downloader = apt_download,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Every pinned .deb as a verified cache path, downloading the misses (each bounded
    by its pinned size)."""
    uris = {t.suite: t.repo_uri for t in targets}
    missing = [pin for pin in pins if cache.get(pin.sha256) is None]
    for pin in missing:
        if pin.suite not in uris:
            raise ImageError(
                f"{pin.name}: suite {pin.suite} is not configured in apt; "
                "add it or run scripts/gate -s image-lock"
            )
    if missing:
        with download_dir(cache) as tmp:
            items = [
                (
                    repo_uri(uris[p.suite], p.suite, environ) + p.filename,
                    Path(tmp) / f"{i}.deb",
                    p.sha256,
                    p.size,
                )
                for i, p in enumerate(missing)
            ]
            log.info("fetching %d .deb(s)", len(items))
            download(items)
            for pin, (_, dest, _, _) in zip(missing, items, strict=True):
                cache.put(dest, pin.sha256, f"{pin.name} {pin.version}")
    return {pin.name: cache.path(pin.sha256) for pin in pins}


def platform_tags(platform: str) -> tuple[str, ...]:
    """``manylinux_2_36_x86_64`` → every manylinux tag a glibc 2.36 system accepts
    (pip's ``--platform`` takes the list literally)."""
    prefix, _, rest = platform.partition("_2_")
    minor, _, arch = rest.partition("_")
    if prefix != "manylinux" or not minor.isdigit() or not arch:
        raise ImageError(f"platform must look like manylinux_2_NN_ARCH, got {platform!r}")
    tags = [f"manylinux_2_{m}_{arch}" for m in range(int(minor), 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{arch}" for m, name in legacy.items() if int(minor) >= m]
    return tuple(tags)


def find_pip(explicit: str | None) -> list[str]:
    """The pip to run: ``--pip``, this interpreter's pip, or ``pip3`` on PATH."""
    if explicit:
        return [explicit]
    probe = subprocess.run(  # nosec B603
        [sys.executable, "-m", "pip", "--version"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        return [sys.executable, "-m", "pip"]
    found = shutil.which("pip3")
    if found is None:
        raise ImageError("no pip found to download wheels; pass --pip PATH")
    return [found]


def pip_download(
    pip: Sequence[str],
    requirements: Sequence[tuple[str, str, Sequence[str]]],
    platform: str,
    python_version: str,
    dest: Path,
    extra: Sequence[str] = (),
) -> list[Path]:
    """Download exact wheels for the image's platform with ``--require-hashes``.

    ``requirements`` are ``(name, version, sha256 hex digests)``. pip reads the
    machine's own configuration for the index (a mirror is configured there); ``extra``
    adds pip options (e.g. ``--no-index --find-links DIR`` for an offline wheelhouse).
    """
    dest.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes)
        for name, version, hashes in requirements
    ]
    reqfile = dest / "requirements.txt"
    reqfile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    abi = "cp" + python_version.replace(".", "")
    argv = [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "--require-hashes"]
    for tag in platform_tags(platform):
        argv += ["--platform", tag]
    argv += ["--python-version", python_version, "--implementation", "cp", "--abi", abi]
    argv += [*extra, "-d", str(dest), "-r", str(reqfile)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603  # nosec B603
    reqfile.unlink()
    if result.returncode != 0:
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("ERROR")]
        detail = (errors or result.stderr.strip().splitlines() or ["no output"])[0]
        raise ImageError(f"pip download failed: {detail}")
    return sorted(p for p in dest.iterdir() if p.suffix == ".whl")


def fetch_wheels(
    pins: Sequence[WheelPin], cache: Cache, pip: Sequence[str], platform: str, python_version: str
) -> dict[str, Path]:
    """Every pinned wheel as a verified cache path (one pip call for all misses)."""
    out: dict[str, Path] = {}
    missing: list[WheelPin] = []
    for pin in pins:
        cached = cache.get(pin.sha256)
        if cached is None:
            missing.append(pin)
        else:
            out[pin.name] = cached
    if missing:
        with download_dir(cache) as tmp:
            got = pip_download(
                pip,
                [(p.name, p.version, [p.sha256]) for p in missing],
                platform,
                python_version,
                Path(tmp),
            )
            by_file = {p.name: p for p in got}
            for pin in missing:
                path = by_file.get(pin.filename)
                if path is None:
                    raise ImageError(
                        f"pip did not fetch {pin.filename}; run scripts/gate -s image-lock"
                    )
                out[pin.name] = cache.put(path, pin.sha256, pin.filename)
    return out
