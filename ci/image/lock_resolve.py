"""``python -m ci.image lock``: resolve ``image.toml`` into ``image.lock``.

Debian side: the Depends closure of the roots over the indexes apt holds, newest
version of each package across the release's suites (security updates included).
Python side: bot4's runtime requirements (plus the configured extras), followed
through each wheel's own ``Requires-Dist`` for the image's interpreter, every version
taken from the hashed runtime lock; pip picks the wheel file for the image platform
and its sha256 is recorded (and the file kept in the cache for the build).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from ci.compat import tomllib
from ci.files import sha256_file
from ci.gate.requirements import Pin, applicable, read_lock
from ci.image import apt_index
from ci.image.errors import ImageError
from ci.image.fetch import Cache, download_dir, pip_download
from ci.image.lock_format import DebPin, Lock, Spec, WheelPin
from ci.image.wheels import WheelMeta, read_meta, requirements, target_environment

log = logging.getLogger(__name__)

PYTHON_PACKAGE = "python3.11-minimal"


def upstream_version(debian_version: str) -> str:
    """``3.11.2-6+deb12u9`` → ``3.11.2`` (no epoch, no Debian revision)."""
    no_epoch = debian_version.split(":", 1)[-1]
    return no_epoch.rsplit("-", 1)[0] if "-" in no_epoch else no_epoch


def deb_pins(spec: Spec, archive: apt_index.Archive) -> tuple[DebPin, ...]:
    """The resolved Debian closure as lock entries."""
    return tuple(
        DebPin(
            p.name,
            p.version,
            p.architecture,
            p.source,
            p.source_version,
            p.suite,
            p.filename,
            p.size,
            p.sha256,
        )
        for p in apt_index.resolve(spec.roots, spec.excludes, archive)
    )


def engine_requirements(pyproject: Path, extras: Sequence[str]) -> tuple[str, ...]:
    """bot4's own Requires-Dist lines (dependencies plus the chosen extras)."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data.get("project", {})
    reqs = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise ImageError(
                f"image.toml asks for bot4[{extra}], which pyproject.toml does not define"
            )
        reqs.extend(optional[extra])
    return tuple(reqs)


def wheel_closure(
    roots: Sequence[str],
    pins: dict[str, Pin],
    fetch: WheelFetcher,
    environment: dict[str, str],
) -> tuple[list[WheelPin], list[WheelMeta]]:
    """Follow Requires-Dist from ``roots`` through the fetched wheels."""
    meta = WheelMeta("bot4", "", tuple(roots), "", "")
    frontier = list(requirements(meta, environment))
    done: dict[str, WheelPin] = {}
    metas: list[WheelMeta] = []
    while frontier:
        missing = [n for n in frontier if n not in pins]
        if missing:
            raise ImageError(
                f"{missing[0]} is needed in the image but not pinned in the runtime lock; "
                "run scripts/gate -s lock"
            )
        got = fetch([pins[n] for n in frontier])
        nxt: set[str] = set()
        for name in frontier:
            wheel, path = got[name]
            done[name] = wheel
            wmeta = read_meta(path)
            metas.append(wmeta)
            nxt.update(requirements(wmeta, environment))
        frontier = sorted(n for n in nxt if n not in done)
    return sorted(done.values(), key=lambda w: w.name), metas


class WheelFetcher:
    """Downloads pinned wheels with pip into the cache, remembering what it chose."""

    def __init__(self, cache: Cache, pip: Sequence[str], spec: Spec) -> None:
        self.cache = cache
        self.pip = list(pip)
        self.spec = spec

    def __call__(self, pins: Sequence[Pin]) -> dict[str, tuple[WheelPin, Path]]:
        """Fetch one pin set; return the chosen wheel and its cached path by name."""
        with download_dir(self.cache) as tmp:
            reqs = [
                (str(p.name), str(p.version), [h.removeprefix("sha256:") for h in p.hashes])
                for p in pins
            ]
            files = pip_download(
                self.pip, reqs, self.spec.platform, self.spec.python_version, Path(tmp)
            )
            out: dict[str, tuple[WheelPin, Path]] = {}
            for path in files:
                name = canonicalize_name(path.name.split("-", 1)[0])
                pin = next((p for p in pins if p.name == name), None)
                if pin is None:  # pragma: no cover - pip downloads only what it was asked
                    continue
                sha = sha256_file(path)
                wheel = WheelPin(str(pin.name), str(pin.version), path.name, sha)
                out[str(name)] = (wheel, self.cache.put(path, sha, path.name))
            for pin in pins:
                if pin.name not in out:
                    raise ImageError(
                        f"pip found no {self.spec.platform} wheel for {pin.name}=={pin.version}"
                    )
            return out


def make_lock(root: Path, spec: Spec, archive: apt_index.Archive, fetcher: WheelFetcher) -> Lock:
    """Resolve both sides into a Lock value (not yet written)."""
    debs = deb_pins(spec, archive)
    python = next((d for d in debs if d.name == PYTHON_PACKAGE), None)
    if python is None:
        raise ImageError(f"{PYTHON_PACKAGE} is not in the Debian closure; add it to the roots")
    environment = target_environment(upstream_version(python.version))
    runtime_path = root / spec.runtime_lock
    pins = applicable(read_lock(runtime_path), environment)
    wheels, _ = wheel_closure(
        engine_requirements(root / "pyproject.toml", spec.extras), dict(pins), fetcher, environment
    )
    return Lock(
        spec_sha256=spec.sha256,
        runtime_lock_sha256=hashlib.sha256(runtime_path.read_bytes()).hexdigest(),
        codename=spec.codename,
        architecture=spec.architecture,
        debs=debs,
        wheels=tuple(wheels),
    )
