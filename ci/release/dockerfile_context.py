"""The Dockerfile's build context, and the check that its image equals the hermetic one.

The Dockerfile installs wheels with pip ``--require-hashes --no-deps --no-index`` from a
wheelhouse in its context, so a Docker build needs no index and no network. The context
(``docker-context``) is made from what the hermetic build already verified:

- ``requirements.txt``: every ``[[wheel]]`` of ``image.lock`` as ``NAME==VERSION
  --hash=sha256:…`` (the exact file the image holds; ``locks/runtime.txt`` also pins the
  optional extras, which the image leaves out), plus the engine wheel by path and hash;
- ``wheels/``: those files from the image cache, re-hashed on the way;
- ``dist/``: the engine wheel.

``dockerfile-check`` builds it on a dockerd it starts itself (legacy builder, network
none), both bases pulled by digest from a loopback registry: ``BASE`` is the hermetic
image's Debian layer; ``BUILDER`` is that layer plus pip from its hash-pinned wheel
(``locks/toolchain.txt``). Then it compares the result with the hermetic image
(``compare``).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.files import sha256_file
from ci.image.deb_unpack import dropped
from ci.image.lock_format import Lock
from ci.image.tarball import Entry
from ci.release.errors import ReleaseError

SITE = "usr/local/lib/python3.11/dist-packages"
LAUNCHER = "usr/local/bin/bot4"
# Files pip and the hermetic installer write differently by design (who installed it,
# the list of installed files, pip's "requested" marker and local-file origin), and
# bytecode (the hermetic image compiles with its own interpreter; Docker users' pip
# is told --no-compile so the image is not tied to the builder).
_INSTALLER_OWNED = re.compile(
    r"\.dist-info/(RECORD|INSTALLER|REQUESTED|direct_url\.json)$|(^|/)__pycache__(/|$)|\.pyc$"
)
_CONFIG_KEYS = ("User", "Entrypoint", "Cmd", "WorkingDir")


def requirements(lock: Lock, engine: Path) -> str:
    """The hashed requirements file of the image's wheels and the engine wheel."""
    lines = [f"{w.name}=={w.version} --hash=sha256:{w.sha256}" for w in lock.wheels]
    lines.append(f"dist/{engine.name} --hash=sha256:{sha256_file(engine)}")
    return "\n".join(lines) + "\n"


def prepare_context(
    lock: Lock, wheels: Mapping[str, Path], engine: Path, dockerfile: Path, out: Path
) -> Path:
    """Write the build context into ``out`` (which must not exist); returns ``out``.

    ``wheels`` maps each locked wheel's name to a local file; each is re-hashed here.
    """
    if out.exists():
        raise ReleaseError(f"{out} already exists; remove it or name another directory")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "wheels").mkdir(parents=True)
    (staging / "dist").mkdir()
    for pin in lock.wheels:
        source = wheels.get(pin.name)
        if source is None or sha256_file(source) != pin.sha256:
            raise ReleaseError(
                f"{pin.filename}: missing or not the locked file (sha256 {pin.sha256}); "
                "build the image first (scripts/gate -s image) so the cache holds it"
            )
        shutil.copyfile(source, staging / "wheels" / pin.filename)
    shutil.copyfile(engine, staging / "dist" / engine.name)
    (staging / "requirements.txt").write_text(requirements(lock, engine), encoding="utf-8")
    shutil.copyfile(dockerfile, staging / "Dockerfile")
    staging.rename(out)
    return out


@dataclass(frozen=True)
class Comparison:
    """What differs between the Docker-built image and the hermetic one."""

    only_docker: tuple[str, ...]
    only_hermetic: tuple[str, ...]
    different: tuple[str, ...]
    config: tuple[str, ...]
    compared: int

    @property
    def equivalent(self) -> bool:
        """Same files, same bytes, same run configuration."""
        return not (self.only_docker or self.only_hermetic or self.different or self.config)

    def summary(self) -> str:
        """One line: what matched, or the first differences of each kind."""
        if self.equivalent:
            return f"equivalent: {self.compared} files and the run configuration match"
        parts = []
        for label, items in (
            ("only in the Docker build", self.only_docker),
            ("only in the hermetic image", self.only_hermetic),
            ("different content", self.different),
            ("different configuration", self.config),
        ):
            if items:
                shown = ", ".join(items[:3]) + (" …" if len(items) > 3 else "")
                parts.append(f"{len(items)} {label} ({shown})")
        return "not equivalent: " + "; ".join(parts)


def _files(entries: Iterable[Entry], drop: Sequence[str], keep: Sequence[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for entry in entries:
        path = entry.path.removeprefix("/")
        in_scope = path == LAUNCHER or path.startswith(SITE + "/")
        if not in_scope or entry.kind != "file" or _INSTALLER_OWNED.search(path):
            continue
        if dropped(path, drop, keep):
            continue
        out[path] = entry.data
    return out


def _launcher_body(data: bytes) -> bytes:
    """What a console script does: its interpreter, what it imports, what it calls.

    Installers differ in layout only (pip imports inside ``if __name__ …``, quotes)."""
    lines = [ln.strip() for ln in data.splitlines()]
    kept = [ln for ln in lines[1:] if ln.startswith((b"from ", b"sys.exit("))]
    return b"\n".join([*lines[:1], *kept])


def compare(
    docker: Iterable[Entry],
    hermetic: Iterable[Entry],
    docker_config: Mapping[str, object],
    hermetic_config: Mapping[str, object],
    drop: Sequence[str] = (),
    keep: Sequence[str] = (),
) -> Comparison:
    """Compare the site-packages and entrypoint of two root filesystems and their config.

    The image spec's trimmed paths (``drop`` unless ``keep``) are ignored on both sides
    (the Dockerfile installs whole wheels), and so are installer-owned files and bytecode.
    """
    ours = _files(docker, drop, keep)
    theirs = _files(hermetic, drop, keep)
    common = sorted(ours.keys() & theirs.keys())
    different = []
    for path in common:
        a, b = ours[path], theirs[path]
        if path == LAUNCHER:
            a, b = _launcher_body(a), _launcher_body(b)
        if a != b:
            different.append(path)
    config = [
        f"{key}: {docker_config.get(key)!r} != {hermetic_config.get(key)!r}"
        for key in _CONFIG_KEYS
        if (docker_config.get(key) or None) != (hermetic_config.get(key) or None)
    ]
    env_a = set(_strings(docker_config.get("Env")))
    env_b = set(_strings(hermetic_config.get("Env")))
    if env_a != env_b:
        config.append(f"Env: {sorted(env_a ^ env_b)}")
    return Comparison(
        tuple(sorted(ours.keys() - theirs.keys())),
        tuple(sorted(theirs.keys() - ours.keys())),
        tuple(different),
        tuple(config),
        len(common),
    )


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
