"""``python -m ci.image build``: image.lock + a git revision → OCI layout, archive, digest.

Three layers, each a pure function of its inputs: the base OS (locked .debs), the
Python dependencies (locked wheels) and the engine (its wheel built from the commit).
Nothing in them depends on the build host's clock, umask, locale, user or file order.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.utils import canonicalize_name

from ci.files import sha256_file
from ci.image import apt_index, assembly, bytecode, elf, engine, output
from ci.image.deb_unpack import DebContents, unpack
from ci.image.errors import ImageError
from ci.image.fetch import Cache, check_debs, fetch_debs, fetch_wheels
from ci.image.lock_format import LOCK_FILE, SPEC_FILE, Lock, Spec, check_fresh, read_lock, read_spec
from ci.image.rootfs import NONROOT_HOME, NONROOT_UID, base_layer
from ci.image.tarball import Entry, gzip_bytes, write_tar
from ci.image.wheels import Installed, finish, install
from ci.oci.digest import sha256

log = logging.getLogger(__name__)

REPOSITORY = "bot4"
LICENSE = "Apache-2.0"
ARCHIVE_NAME = "bot4-image.tar"


@dataclass(frozen=True)
class Inputs:
    """Everything a build consumes, verified and on disk."""

    spec: Spec
    lock: Lock
    debs: dict[str, Path]
    wheels: dict[str, Path]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Result:
    """A finished build."""

    image: assembly.Image
    layout: Path
    archive: Path
    revision: engine.Revision
    version: str
    debs: tuple[DebContents, ...]
    dists: tuple[Installed, ...]
    uncompressed: int
    warnings: tuple[str, ...]


Log = Callable[[str], None]


def gather(root: Path, cache: Cache, pip: Sequence[str], say: Log) -> Inputs:
    """Read and check the lock, then get every pinned input into the cache.

    The archive index is consulted only when a .deb must be downloaded: it decides
    whether a missing pin was superseded (``SupersededError``) or edited (refused).
    """
    spec = read_spec(root / SPEC_FILE)
    lock = read_lock(root / LOCK_FILE)
    stale = check_fresh(lock, spec, root / spec.runtime_lock)
    if stale:
        raise ImageError("; ".join(stale))
    warnings: list[str] = []
    if any(cache.get(pin.sha256) is None for pin in lock.debs):
        targets = apt_index.index_targets(spec.architecture, spec.codename)
        archive = apt_index.load_archive(targets)
        warnings += check_debs(lock.debs, archive, cache)
        say(f"fetching {sum(cache.get(p.sha256) is None for p in lock.debs)} .deb(s)")
        debs = fetch_debs(lock.debs, targets, cache)
    else:
        debs = {pin.name: cache.path(pin.sha256) for pin in lock.debs}
    wheels = fetch_wheels(lock.wheels, cache, pip, spec.platform, spec.python_version)
    return Inputs(spec, lock, debs, wheels, tuple(warnings))


def private_copies(inputs: Inputs, cache: Cache, dest: Path) -> Inputs:
    """The inputs as copies in ``dest`` (the build's private directory) of exactly the
    bytes checked against the lock: the cache is shared, and a path ``gather`` checked
    can hold other bytes by the time the build opens it."""
    debs = {
        pin.name: cache.copy_to(
            pin.sha256, dest / Path(pin.filename).name, f"{pin.name} {pin.version}"
        )
        for pin in inputs.lock.debs
    }
    wheels = {
        pin.name: cache.copy_to(pin.sha256, dest / pin.filename, pin.filename)
        for pin in inputs.lock.wheels
    }
    return replace(inputs, debs=debs, wheels=wheels)


def _layer(
    name: str, entries: Sequence[Entry], epoch: int, comment: str
) -> tuple[assembly.Layer, int]:
    tar = write_tar(entries, epoch)
    return assembly.Layer(name, gzip_bytes(tar), sha256(tar), comment), len(tar)


def run_config(spec: Spec, version: str) -> assembly.RunConfig:
    """How the image runs: as nonroot, ``bot4`` as the entrypoint."""
    return assembly.RunConfig(
        user=f"{NONROOT_UID}:{NONROOT_UID}",
        entrypoint=(f"/{spec.scripts}/bot4",),
        cmd=("doctor",),
        env=(
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "LANG=C.UTF-8",
            "PYTHONDONTWRITEBYTECODE=1",
            "PYTHONUNBUFFERED=1",
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        ),
        workdir=f"/{NONROOT_HOME}",
        labels={
            "org.opencontainers.image.title": "bot4",
            "org.opencontainers.image.version": version,
        },
    )


def assemble(
    inputs: Inputs, engine_wheel: Path, revision: engine.Revision, workdir: Path, say: Log
) -> tuple[assembly.Image, tuple[DebContents, ...], tuple[Installed, ...], int]:
    """Unpack, install, compile and write the three layers and the OCI documents."""
    spec = inputs.spec
    debs = tuple(unpack(inputs.debs[pin.name], spec.drop, spec.keep) for pin in inputs.lock.debs)
    base = list(elf.strip_entries(base_layer(debs), spec.strip))
    say(f"base layer: {len(debs)} packages, {len(base)} entries")
    deps = tuple(
        _stripped(
            install(inputs.wheels[w.name], spec.site_packages, spec.scripts, spec.drop, spec.keep),
            spec.strip,
        )
        for w in inputs.lock.wheels
    )
    own = _stripped(
        install(engine_wheel, spec.site_packages, spec.scripts, spec.drop, spec.keep), spec.strip
    )
    rootfs = workdir / "rootfs"
    rootfs.mkdir()
    bytecode.materialize(base, rootfs)
    compiled = bytecode.compile_sources(rootfs, [e for d in (*deps, own) for e in d.entries])
    by_path = {e.path: e for e in compiled}

    def with_pyc(dist: Installed) -> tuple[Entry, ...]:
        pycs = [by_path[p] for p in _pyc_paths(dist) if p in by_path]
        return finish(dist, pycs)

    python_entries = [e for d in deps for e in with_pyc(d)]
    engine_entries = list(with_pyc(own))
    layers_in = (
        ("debian packages", base, f"{len(debs)} locked .debs from {spec.codename}"),
        (
            "python dependencies",
            python_entries,
            ", ".join(f"{d.meta.name}=={d.meta.version}" for d in deps),
        ),
        ("engine", engine_entries, f"{own.meta.name}=={own.meta.version} at {revision.commit}"),
    )
    with ThreadPoolExecutor(max_workers=3) as pool:  # zlib releases the GIL
        done = list(
            pool.map(lambda args: _layer(args[0], args[1], revision.epoch, args[2]), layers_in)
        )
    layers = tuple(layer for layer, _ in done)
    uncompressed = sum(size for _, size in done)
    version = own.meta.version
    cfg = assembly.config(layers, run_config(spec, version), revision.epoch, spec.architecture)
    annotations = {
        "org.opencontainers.image.created": assembly.timestamp(revision.epoch),
        "org.opencontainers.image.revision": revision.commit,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.licenses": LICENSE,
    }
    if revision.source:  # the origin remote's URL, when the clone has one
        annotations["org.opencontainers.image.source"] = revision.source
    man = assembly.manifest(cfg, layers, annotations)
    idx = assembly.index(man, version, {"org.opencontainers.image.revision": revision.commit})
    return (
        assembly.Image(layers, cfg, man, idx, version, REPOSITORY),
        debs,
        (*deps, own),
        uncompressed,
    )


def _stripped(dist: Installed, globs: Sequence[str]) -> Installed:
    """The distribution with its shared objects' symbol tables removed (``[paths] strip``)."""
    return replace(dist, entries=elf.strip_entries(dist.entries, globs))


def _pyc_paths(dist: Installed) -> list[str]:
    out = []
    for entry in dist.entries:
        if entry.path.endswith(".py"):
            head, _, name = entry.path.rpartition("/")
            out.append(f"{head}/__pycache__/{name[:-3]}.cpython-311.pyc")
    return out


def build_sbom(
    inputs: Inputs,
    debs: Sequence[DebContents],
    dists: Sequence[Installed],
    digest: str | None,
    epoch: int | None,
) -> str:
    """The SBOM of a build (``digest`` set) or of its inputs only (``digest`` None)."""
    from ci.image import sbom  # noqa: PLC0415 - cyclonedx's validator is a heavy import

    own = dists[-1]
    deb_licenses = {d.name: d.licenses for d in debs}
    wheel_licenses = {canonicalize_name(d.meta.name): d.meta.license for d in dists[:-1]}
    engine_pin = sbom.Engine(own.meta.name, own.meta.version, own.wheel_sha256 if digest else None)
    bom = sbom.build_bom(
        inputs.lock,
        inputs.spec.release,
        deb_licenses,
        {w.name: wheel_licenses.get(canonicalize_name(w.name), "") for w in inputs.lock.wheels},
        engine_pin,
        digest,
        epoch,
    )
    return sbom.render(bom)


def fingerprint(root: Path, commit: str) -> dict[str, str]:
    """What a build's output depends on: the commit, the work-tree lock and spec files
    it reads, and the toolkit's own code (an edited builder must not reuse old output)."""
    out = {"commit": commit}
    for name in (LOCK_FILE, SPEC_FILE, "locks/runtime.txt"):
        path = root / name
        out[name] = sha256_file(path) if path.exists() else "missing"
    toolkit = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        toolkit.update(source.name.encode() + b"\0" + source.read_bytes())
    out["toolkit"] = toolkit.hexdigest()
    return out


def reusable(root: Path, out: Path, rev: str = "HEAD") -> str | None:
    """The digest of the output in ``out`` if it is whole and built from these inputs."""
    return output.current(out, fingerprint(root, engine.resolve(root, rev).commit))


def build(
    root: Path, out: Path, cache: Cache, pip: Sequence[str], rev: str = "HEAD", say: Log = log.info
) -> Result:
    """Build the image of ``rev`` into ``out`` (layout in ``out/oci``, archive beside it).

    Everything is written into a sibling scratch directory, the completion marker last,
    and swapped into place in one step: ``out`` is always the old build or the new one."""
    inputs = gather(root, cache, pip, say)
    for warning in inputs.warnings:
        say(f"warning: {warning}")
    revision = engine.resolve(root, rev)
    with tempfile.TemporaryDirectory(prefix="bot4-image-") as tmp:
        work = Path(tmp)
        inputs = private_copies(inputs, cache, work / "inputs")
        wheel = engine.build_wheel(root, revision, work)
        say(f"engine wheel {wheel.name} (SOURCE_DATE_EPOCH={revision.epoch})")
        image, debs, dists, size = assemble(inputs, wheel, revision, work, say)
    output.sweep(out.parent)
    staged = output.scratch(out.parent, "build")
    try:
        staged.chmod(0o755)
        assembly.write_layout(image, staged / "oci")
        for name, body in (
            (ARCHIVE_NAME, assembly.archive(image, revision.epoch)),
            (
                "sbom.cdx.json",
                build_sbom(inputs, debs, dists, image.digest, revision.epoch).encode(),
            ),
            ("digest", (image.digest + "\n").encode()),
        ):
            (staged / name).write_bytes(body)
            (staged / name).chmod(0o644)
        output.stamp(staged, fingerprint(root, revision.commit), image.digest)
        output.publish(staged, out)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return Result(
        image,
        out / "oci",
        out / ARCHIVE_NAME,
        revision,
        image.tag,
        debs,
        dists,
        size,
        inputs.warnings,
    )
