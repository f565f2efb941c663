"""Debian archive indexes: which Packages files apt knows, what they hold, and the
Depends closure of the image's root packages.

The indexes are the ones apt downloaded (``apt-get update``) from the machine's
configured mirrors; ``apt-get indextargets`` says where they are and which suite each
belongs to, and ``apt-helper cat-file`` decompresses them. Versions are ordered with
python-debian's implementation of Debian policy, never as strings.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from debian import deb822
from debian.debian_support import version_compare

from ci.image.errors import ImageError

log = logging.getLogger(__name__)

APT_HELPER = "/usr/lib/apt/apt-helper"
# Environment variables that replace the apt-configured archive locations.
MIRROR_ENV = "BOT4_DEBIAN_MIRROR"
SECURITY_MIRROR_ENV = "BOT4_DEBIAN_SECURITY_MIRROR"
_FIELDS = [
    "Package",
    "Version",
    "Architecture",
    "Source",
    "Depends",
    "Pre-Depends",
    "Provides",
    "Filename",
    "Size",
    "SHA256",
    "Multi-Arch",
]


@dataclass(frozen=True)
class IndexTarget:
    """One Packages index apt has on disk, and the archive it came from."""

    suite: str
    codename: str
    component: str
    architecture: str
    repo_uri: str
    path: Path


@dataclass(frozen=True)
class Package:
    """One binary package paragraph of a Packages index."""

    name: str
    version: str
    architecture: str
    source: str
    source_version: str
    depends: str
    provides: tuple[str, ...]
    filename: str
    size: int
    sha256: str
    suite: str

    def relations(self) -> tuple[tuple[tuple[str, str | None, str | None], ...], ...]:
        """Pre-Depends and Depends as groups of ``(name, relation, version)`` alternatives
        (parsed on demand: only the closure's packages ever need it)."""
        return relations(self.depends) if self.depends else ()


def compare(a: str, b: str) -> int:
    """Debian version ordering: negative, zero or positive like ``cmp``."""
    return int(version_compare(a, b))


def satisfies(version: str, relation: str | None, wanted: str | None) -> bool:
    """Whether ``version`` meets a Depends constraint such as ``(>= 2.34)``."""
    if relation is None or wanted is None:
        return True
    c = compare(version, wanted)
    checks = {"<<": c < 0, "<=": c <= 0, "=": c == 0, ">=": c >= 0, ">>": c > 0}
    if relation not in checks:
        raise ImageError(f"unknown version relation {relation!r}")
    return checks[relation]


def _run(argv: Sequence[str]) -> str:
    try:
        result = subprocess.run(  # noqa: S603  # nosec B603
            list(argv), capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise ImageError(f"{argv[0]} not found: this needs Debian's apt") from None
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImageError(f"{' '.join(argv[:2])} failed: {detail}")
    return result.stdout


def parse_index_targets(text: str, architecture: str) -> tuple[IndexTarget, ...]:
    """The binary Packages indexes of ``architecture`` in ``apt-get indextargets`` output."""
    targets: list[IndexTarget] = []
    for para in deb822.Deb822.iter_paragraphs(text.splitlines()):
        if para.get("Identifier") != "Packages" or para.get("Target-Of") != "deb":
            continue
        if para.get("Architecture") != architecture:
            continue
        targets.append(
            IndexTarget(
                suite=para.get("Release", para.get("Suite", "")),
                codename=para.get("Codename", ""),
                component=para.get("Component", ""),
                architecture=architecture,
                repo_uri=para["Repo-URI"],
                path=Path(para["Filename"]),
            )
        )
    return tuple(sorted(targets, key=lambda t: (t.suite, t.component)))


def index_targets(
    architecture: str, codename: str, text: str | None = None
) -> tuple[IndexTarget, ...]:
    """The Packages indexes apt holds for one release (e.g. bookworm and its -updates
    and -security suites); an error says to run ``apt-get update`` when none is there.
    ``text`` is ``apt-get indextargets`` output (default: ask apt)."""
    if text is None:
        text = _run(["apt-get", "indextargets"])
    targets = tuple(
        t
        for t in parse_index_targets(text, architecture)
        if codename in {t.codename, t.suite} or t.suite.startswith(f"{codename}-")
    )
    present = tuple(t for t in targets if t.path.exists())
    if not present:
        raise ImageError(
            f"no {codename}/{architecture} Packages index on this machine; "
            "configure a Debian mirror in apt and run apt-get update"
        )
    return present


def read_index(target: IndexTarget) -> str:
    """The decompressed text of an index (apt keeps them lz4/zstd/gz-compressed)."""
    if target.path.suffix in {".lz4", ".zst", ".gz", ".xz", ".bz2", ".lzma"}:
        return _run([APT_HELPER, "cat-file", str(target.path)])
    return target.path.read_text(encoding="utf-8")


def relations(raw: str) -> tuple[tuple[tuple[str, str | None, str | None], ...], ...]:
    groups: list[tuple[tuple[str, str | None, str | None], ...]] = []
    for group in deb822.PkgRelation.parse_relations(raw):
        alts: list[tuple[str, str | None, str | None]] = []
        for alt in group:
            version = alt.get("version")
            rel, wanted = (version[0], version[1]) if version else (None, None)
            alts.append((str(alt["name"]), rel, wanted))
        groups.append(tuple(alts))
    return tuple(groups)


def parse_packages(text: str | Iterable[str], suite: str) -> Iterator[Package]:
    """Every package paragraph of a Packages index, typed."""
    lines = text.splitlines() if isinstance(text, str) else text
    for para in deb822.Packages.iter_paragraphs(lines, use_apt_pkg=False, fields=_FIELDS):
        name = para.get("Package")
        if not name or "Filename" not in para or "SHA256" not in para:
            continue
        version = para["Version"]
        source, _, source_version = para.get("Source", name).partition(" ")
        depends = ", ".join(part for part in (para.get("Pre-Depends"), para.get("Depends")) if part)
        provides = tuple(
            part.split("(")[0].split(":")[0].strip()
            for part in para.get("Provides", "").split(",")
            if part.strip()
        )
        yield Package(
            name=name,
            version=version,
            architecture=para.get("Architecture", ""),
            source=source,
            source_version=source_version.strip("()") or version,
            depends=depends,
            provides=provides,
            filename=para["Filename"],
            size=int(para.get("Size", "0")),
            sha256=para["SHA256"],
            suite=suite,
        )


@dataclass(frozen=True)
class Archive:
    """Every version of every package across the release's suites, newest first."""

    versions: Mapping[str, tuple[Package, ...]]
    providers: Mapping[str, tuple[str, ...]]

    def newest(self, name: str) -> Package | None:
        """The candidate apt would install: the highest version in any suite."""
        found = self.versions.get(name)
        return found[0] if found else None

    def find(self, name: str, version: str) -> Package | None:
        """The exact version, when some suite still carries it."""
        for pkg in self.versions.get(name, ()):
            if pkg.version == version:
                return pkg
        return None


def build_archive(packages: Iterable[Package]) -> Archive:
    """Index packages by name (newest version first) and virtual names by provider."""
    by_name: dict[str, list[Package]] = {}
    providers: dict[str, set[str]] = {}
    for pkg in packages:
        by_name.setdefault(pkg.name, []).append(pkg)
        for virtual in pkg.provides:
            providers.setdefault(virtual, set()).add(pkg.name)
    versions: dict[str, tuple[Package, ...]] = {}
    for name, pkgs in by_name.items():
        ordered: list[Package] = []
        for pkg in pkgs:
            # Insertion sort with the Debian ordering; ties keep the first suite seen.
            index = 0
            while index < len(ordered) and compare(ordered[index].version, pkg.version) >= 0:
                index += 1
            ordered.insert(index, pkg)
        versions[name] = tuple(ordered)
    return Archive(versions, {k: tuple(sorted(v)) for k, v in providers.items()})


def load_archive(targets: Sequence[IndexTarget]) -> Archive:
    """The archive made of these indexes (``index_targets`` gives apt's)."""
    packages: list[Package] = []
    for target in targets:
        packages.extend(parse_packages(read_index(target), target.suite))
    return build_archive(packages)


def local_targets(
    specs: Sequence[str], architecture: str, codename: str
) -> tuple[IndexTarget, ...]:
    """``SUITE=PATH`` Packages files given on the command line (offline locking)."""
    out = []
    for spec in specs:
        suite, sep, path = spec.partition("=")
        if not sep or not suite or not path:
            raise ImageError(f"--index expects SUITE=PATH, got {spec!r}")
        if not Path(path).is_file():
            raise ImageError(f"{path}: Packages file not found")
        out.append(IndexTarget(suite, codename, "main", architecture, "", Path(path)))
    return tuple(out)


def resolve(roots: Sequence[str], excludes: Iterable[str], archive: Archive) -> tuple[Package, ...]:
    """The Depends + Pre-Depends closure of ``roots``, sorted by name.

    A dependency group with an excluded alternative is dropped (the image ships no
    package manager, so debconf, dpkg and friends are excluded on purpose); otherwise the
    first alternative that a real package satisfies wins, or a provider of a virtual
    one (an already selected provider first, then by name). Unsatisfiable → error.
    """
    excluded = frozenset(excludes)
    chosen: dict[str, Package] = {}
    queue = list(roots)
    for name in roots:
        if archive.newest(name) is None:
            raise ImageError(f"root package {name!r} is not in the archive index")
    while queue:
        name = queue.pop(0)
        if name in chosen or name in excluded:
            continue
        pkg = archive.newest(name)
        if pkg is None:  # pragma: no cover - resolve() only queues names it found
            raise ImageError(f"{name} is not in the archive index")
        chosen[name] = pkg
        for group in pkg.relations():
            if any(alt[0] in excluded for alt in group):
                continue
            pick = _pick(group, archive, chosen)
            if pick is None:
                wanted = " | ".join(a[0] + (f" ({a[1]} {a[2]})" if a[1] else "") for a in group)
                raise ImageError(f"{pkg.name} {pkg.version} depends on {wanted}: not satisfiable")
            queue.append(pick)
    return tuple(chosen[name] for name in sorted(chosen))


def _pick(
    group: tuple[tuple[str, str | None, str | None], ...],
    archive: Archive,
    chosen: Mapping[str, Package],
) -> str | None:
    for name, rel, wanted in group:
        real = archive.newest(name)
        if real is not None and satisfies(real.version, rel, wanted):
            return name
        if rel is None:
            providers = archive.providers.get(name, ())
            for provider in sorted(providers, key=lambda p: (p not in chosen, p)):
                return provider
    return None


def repo_uri(target_uri: str, suite: str, environ: Mapping[str, str] | None = None) -> str:
    """The archive base URI for a suite: the apt-configured one, unless overridden by
    ``BOT4_DEBIAN_MIRROR`` (main archive suites) or ``BOT4_DEBIAN_SECURITY_MIRROR``."""
    env = os.environ if environ is None else environ
    key = SECURITY_MIRROR_ENV if suite.endswith("-security") else MIRROR_ENV
    uri = env.get(key) or target_uri
    return uri if uri.endswith("/") else uri + "/"
